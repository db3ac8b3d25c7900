import FleetImagesCore
import Foundation
import GRDB

/// Issue 13: merging shard records. A generated fleet of 3 × `perShard` sites is built as 3 shards
/// (sleep-0 builder; set-up, not the benchmark), each into its own state folder under one shared
/// state key, as three hosts would. Timed: `ShardStates.read` + `ProvenanceStore.merge` of the
/// three into an empty state (goal < 1 s for 3 × 1,000 builds), and the same as the
/// `fleet-images merge` process when the release binary exists. The anchor is the bare floor of
/// moving the same rows and logs: one SQLite transaction that attaches each shard database and
/// copies every table with `INSERT … SELECT`, plus a copy of every build log.
struct MergeBenchmark {
    var perShard = 1000
    var rounds = 3
    var binary: String?
    var keep = false

    func run() async throws {
        let shards = 3
        Report.header("merge: \(shards) shard states × \(perShard) builds into one database (issue 13)")
        let folder = try TemporaryFolder.make("merge")
        defer { if !keep { TemporaryFolder.remove(folder) } else { print("  kept \(folder)") } }
        let fleet = try BenchFleet.make(sites: shards * perShard, in: folder)
        let key = (0..<StateSecretKey.byteCount).map { _ in UInt8.random(in: 0...255) }
        let states = (1...shards).map { folder + "/state-\($0)" }
        for state in states { try installKey(key, in: state) }

        let setUp = try await Stopwatch.time {
            for (index, state) in states.enumerated() {
                var options = BuildOptions(manifestPath: fleet.manifestPath, statePath: state, parallel: 4,
                                           commandLine: "fleet-images-bench merge", environment: [:])
                options.shard = Shard(index: index + 1, count: shards)
                let runner = BuildRunner(options: options, makeBuilder: { _, _ in SleepBuilder(seconds: 0) },
                                         detectOS: { _, _, _, _ in .benchBookworm })
                let summary = try await runner.run()
                guard summary.status == .succeeded, summary.count(.built) >= perShard - 1 else {
                    throw BenchError("shard \(index + 1)/\(shards) built \(summary.count(.built)) variants (\(summary.status))")
                }
            }
        }
        Report.measurement("set-up: \(shards) shard runs, \(shards * perShard) variants (sleep-0 builder; not the benchmark)", seconds: setUp)

        guard let manifest = ManifestReader.read(path: fleet.manifestPath).manifest else { throw BenchError("the generated manifest does not read") }
        let hub = folder + "/hub"
        func target() -> MergeTarget {
            MergeTarget(fleet: manifest.fleet, stateKeyID: StateSecretKey.identity(of: key),
                        outputDirectory: folder + "/" + manifest.output.directory, logDirectory: hub + "/logs")
        }
        func freshHub() throws {
            TemporaryFolder.remove(hub)
            try installKey(key, in: hub)
        }

        var mergeTimes: [Double] = [], anchorTimes: [Double] = [], againTimes: [Double] = [], readTimes: [Double] = []
        var merged = 0
        for _ in 0..<rounds {
            try freshHub()
            var readTime = 0.0
            mergeTimes.append(try Stopwatch.time {
                var read: ShardStates?
                readTime = try Stopwatch.time { read = try ShardStates.read(states, for: target()) }
                let store = try ProvenanceStore.open(at: hub + "/provenance.sqlite")
                let results = try store.merge(read!, into: target())
                try store.close()
                merged = results.reduce(0) { $0 + $1.buildsAdded }
            })
            readTimes.append(readTime)
            guard merged == shards * perShard else { throw BenchError("the merge added \(merged) builds, not \(shards * perShard)") }
            againTimes.append(try Stopwatch.time {
                let read = try ShardStates.read(states, for: target())
                let store = try ProvenanceStore.open(at: hub + "/provenance.sqlite")
                let results = try store.merge(read, into: target())
                try store.close()
                guard results.allSatisfy(\.changedNothing) else { throw BenchError("merging the same shards again changed something") }
            })
            anchorTimes.append(try Stopwatch.time { try bareCopy(states, into: folder + "/anchor") })
        }
        let best = mergeTimes.min()!, worst = mergeTimes.max()!, anchor = anchorTimes.min()!
        Report.measurement("anchor: one transaction of INSERT … SELECT from the attached shards + copy of every log", seconds: anchor,
                           detail: "best of \(rounds): \(Report.list(anchorTimes))")
        Report.measurement("ShardStates.read + ProvenanceStore.merge (\(merged) builds)", seconds: best,
                           detail: "best of \(rounds): \(Report.list(mergeTimes))")
        Report.measurement("  of which ShardStates.read (3 shard databases read and checked)", seconds: readTimes.min()!,
                           detail: "best of \(rounds): \(Report.list(readTimes))")
        Report.measurement("the same merge again (idempotent: nothing changes)", seconds: againTimes.min()!,
                           detail: "best of \(rounds): \(Report.list(againTimes))")
        Report.goal("merge time (worst of \(rounds))", value: Report.format(worst) + " s", goal: "< 1 s", met: worst < 1)
        Report.line("ratio merge / anchor: \(Report.ratio(best / anchor)) (what checking, id mapping and path moves cost beyond copying the rows)")

        if let binary, FileManager.default.isExecutableFile(atPath: binary) {
            var cliTimes: [Double] = []
            for _ in 0..<rounds {
                try freshHub()
                cliTimes.append(try Stopwatch.time {
                    try Shell.run(binary, ["merge", "--manifest", fleet.manifestPath, "--state", hub] + states)
                })
            }
            Report.measurement("`fleet-images merge` of the 3 shard states (process, fresh state)", seconds: cliTimes.min()!,
                               detail: "best of \(rounds): \(Report.list(cliTimes))")
            Report.goal("merge CLI time (worst of \(rounds))", value: Report.format(cliTimes.max()!) + " s", goal: "< 1 s", met: cliTimes.max()! < 1)
        }
    }

    private func installKey(_ key: [UInt8], in state: String) throws {
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        guard FileManager.default.createFile(atPath: state + "/" + StateSecretKey.fileName, contents: Data(key),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw BenchError("cannot write the state key in \(state)")
        }
    }

    /// The floor: the shards' rows copied table by table into one database in one transaction,
    /// and their build logs copied, with nothing checked or rewritten.
    private func bareCopy(_ states: [String], into directory: String) throws {
        TemporaryFolder.remove(directory)
        try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: directory + "/copy.sqlite")
        try queue.writeWithoutTransaction { db in
            for (index, state) in states.enumerated() {
                try db.execute(sql: "ATTACH DATABASE ? AS shard\(index)", arguments: [state + "/provenance.sqlite"])
            }
            try db.inTransaction {
                let tables = try String.fetchAll(db, sql: "SELECT name FROM shard0.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                for table in tables {
                    try db.execute(sql: "CREATE TABLE main.\"\(table)\" AS SELECT * FROM shard0.\"\(table)\" WHERE 0")
                    for index in states.indices {
                        try db.execute(sql: "INSERT INTO main.\"\(table)\" SELECT * FROM shard\(index).\"\(table)\"")
                    }
                }
                return .commit
            }
        }
        let manager = FileManager.default
        for (index, state) in states.enumerated() {
            let logs = state + "/logs"
            for case let path as String in manager.enumerator(atPath: logs) ?? NSEnumerator() where path.hasSuffix(".log") {
                let destination = directory + "/logs/\(index)/" + path
                try manager.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try manager.copyItem(atPath: logs + "/" + path, toPath: destination)
            }
        }
    }
}
