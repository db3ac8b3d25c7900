import Foundation
import GRDB

/// What `fleet-images merge` needs to know about the state it merges into.
public struct MergeTarget: Sendable {
    /// The manifest's `fleet`: every merged run must carry the same.
    public var fleet: String
    /// ``StateSecretKey/identity(of:)`` of this state's key: every merged run must carry the same,
    /// or its inputs digests could never match this state's.
    public var stateKeyID: String
    /// Where this fleet's images are (`<manifest folder>/<output.directory>`): merged image paths
    /// are moved there, since the images of every shard are brought into it.
    public var outputDirectory: String
    /// This state's `logs` folder: build logs found in a shard's state are copied below it.
    public var logDirectory: String

    public init(fleet: String, stateKeyID: String, outputDirectory: String, logDirectory: String) {
        self.fleet = fleet
        self.stateKeyID = stateKeyID
        self.outputDirectory = outputDirectory
        self.logDirectory = logDirectory
    }
}

/// What merging one shard state changed.
public struct ShardMergeResult: Sendable, Equatable {
    /// The shard's state folder.
    public var directory: String
    public var runsAdded = 0
    public var runsUpdated = 0
    public var runsUnchanged = 0
    public var buildsAdded = 0
    public var buildsUpdated = 0
    public var buildsUnchanged = 0
    /// Runs the shard still marks running although no process holds its lock: recorded interrupted.
    public var runsEndedAsInterrupted = 0

    public var changedNothing: Bool { runsAdded + runsUpdated + buildsAdded + buildsUpdated == 0 }
}

/// A shard state that cannot be merged. Nothing was written when one is thrown.
public struct MergeRefusal: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Shard states read and checked against the state they are to be merged into (nothing written):
/// ``ProvenanceStore/merge(_:into:now:)`` then brings them in.
public struct ShardStates {
    let snapshots: [ShardSnapshot]

    /// Reads each shard state (a folder holding a `provenance.sqlite`, or the file itself), read-only.
    ///
    /// - Throws: ``MergeRefusal`` for a shard that does not exist, holds no database, was written
    ///   by another schema, is held by a running build, or has a run of another fleet or state key.
    public static func read(_ shards: [String], for target: MergeTarget) throws -> ShardStates {
        var snapshots: [ShardSnapshot] = []
        var seen: Set<String> = []
        for shard in shards {
            let snapshot = try ProvenanceStore.readShard(shard, target: target)
            guard seen.insert(snapshot.databasePath).inserted else { continue }
            snapshots.append(snapshot)
        }
        return ShardStates(snapshots: snapshots)
    }

    /// Runs and builds read, over all shards.
    public var runCount: Int { snapshots.reduce(0) { $0 + $1.runs.count } }
    public var buildCount: Int { snapshots.reduce(0) { $0 + $1.builds.values.reduce(0) { $0 + $1.count } } }
}

/// One shard state as read, before anything is written.
struct ShardSnapshot {
    var directory: String
    var databasePath: String
    var runs: [RunRecord]
    var builds: [Int64: [BuildRecord]]
    var inputs: [Int64: [BuildInputRecord]]
    /// Shard build id → (its run's uuid, its origin id): how `reusedBuildID` is found again.
    var buildKeys: [Int64: (run: String, origin: Int64)]
    /// Shard log file path → the file it is read from in the shard's state folder.
    var logSources: [String: String]
}

extension ProvenanceStore {
    /// Brings the runs, builds and inputs of shard states (folders holding a `provenance.sqlite`
    /// written by `build --shard`, or the database files themselves) into this database, all in one
    /// transaction: either every shard is merged or nothing is.
    ///
    /// Merging is idempotent: a run is known by its uuid and a build by its run and the id it had
    /// where it was built, so merging the same shard again changes nothing, and merging it after it
    /// ran again (a re-run after a kill) brings only what changed. Every run keeps its origin host;
    /// builds get new ids here (ids are only unique per database). Image, signature and provenance
    /// paths move into `target.outputDirectory`; build logs are copied below `target.logDirectory`.
    ///
    /// Refused, with nothing written (``MergeRefusal``): a shard of another fleet, one whose digests
    /// were made under another state key, one written by a fleet-images with another schema, a shard
    /// a running build holds, and this database itself.
    public func merge(_ shards: ShardStates, into target: MergeTarget, now: Date = Date()) throws -> [ShardMergeResult] {
        let snapshots = shards.snapshots
        if let own = snapshots.first(where: { Self.sameFile($0.databasePath, path) }) {
            throw MergeRefusal("\(own.databasePath) is this state's own database: merge other states into it")
        }
        // Logs first: a copy left behind by a failed transaction is harmless, a record naming a
        // log that is not there is not.
        var logCopies: [String: String] = [:]  // shard log path → where it is here
        for snapshot in snapshots {
            for run in snapshot.runs {
                for build in snapshot.builds[run.id!] ?? [] {
                    guard let recorded = build.logPath, let source = snapshot.logSources[recorded] else { continue }
                    let destination = target.logDirectory + "/merged/" + run.uuid + "/" + (source as NSString).lastPathComponent
                    try Self.copyIfChanged(source, to: destination)
                    logCopies[recorded] = destination
                }
            }
        }
        return try write("merging shard states") { db in
            // Runs of all shards in the order they started, so that ids here follow time.
            var order: [(shard: Int, run: RunRecord)] = []
            for (index, snapshot) in snapshots.enumerated() {
                order += snapshot.runs.map { (index, $0) }
            }
            order.sort { ($0.run.startedAt, $0.shard, $0.run.id!) < ($1.run.startedAt, $1.shard, $1.run.id!) }
            var results = snapshots.map { ShardMergeResult(directory: $0.directory) }
            var runIDs: [String: Int64] = [:]  // run uuid → id here
            for (index, shardRun) in order {
                let snapshot = snapshots[index]
                let runID = try mergeRun(db, shardRun, from: snapshot, now: now, result: &results[index])
                runIDs[shardRun.uuid] = runID
                try mergeBuilds(db, of: shardRun, runID: runID, from: snapshot, target: target, logCopies: logCopies,
                                runIDs: runIDs, result: &results[index])
            }
            return results
        }
    }

    /// Reads one shard state and checks that it belongs here; writes nothing.
    fileprivate static func readShard(_ argument: String, target: MergeTarget) throws -> ShardSnapshot {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
            throw MergeRefusal("\(argument): no such shard state (give a state folder or its \(Self.defaultFileName))")
        }
        let databasePath = URL(fileURLWithPath: isDirectory.boolValue ? argument + "/" + Self.defaultFileName : argument).standardizedFileURL.path
        let directory = URL(fileURLWithPath: (databasePath as NSString).deletingLastPathComponent).standardizedFileURL.path
        if let holder = RunLock.holder(path: directory + "/lock") {
            throw MergeRefusal("\(directory): a build is running in this shard state (\(holder)); merge it once that run has ended")
        }
        let shard: ProvenanceStore
        do {
            guard let opened = try Self.openReadOnly(at: databasePath) else {
                throw MergeRefusal("\(databasePath): no provenance database there (the shard has built nothing yet)")
            }
            shard = opened
        } catch let refusal as MergeRefusal {
            throw refusal
        } catch let error as ProvenanceError {
            switch error {
            case .newerSchema, .database:
                throw MergeRefusal("\(databasePath): written by another fleet-images version (its schema is not this version's); merge with the fleet-images that built the shards (\(FleetImagesVersion.current) here). \(error)")
            default:
                throw MergeRefusal("\(error)")
            }
        }
        defer { try? shard.close() }
        return try shard.read("reading the shard state") { db in
            let runs = try RunRecord.order(RunRecord.Columns.id).fetchAll(db)
            for run in runs {
                let what = "\(databasePath): run \(run.id!) (\(run.uuid), on \(run.host))"
                guard let fleet = run.fleet else {
                    throw MergeRefusal("\(what) does not say which fleet it built (recorded by a fleet-images older than merging); it cannot be merged")
                }
                guard fleet == target.fleet else {
                    throw MergeRefusal("\(what) built the fleet \"\(fleet)\", not \"\(target.fleet)\": merge it into that fleet's state")
                }
                guard run.stateKeyID == target.stateKeyID else {
                    throw MergeRefusal("\(what) digested its secrets under another state key (\(run.stateKeyID ?? "none recorded"), here \(target.stateKeyID)), so its inputs digests can never match this state's. Give every shard this state's \(StateSecretKey.fileName) before it builds (see the README, Shards)")
                }
            }
            var builds: [Int64: [BuildRecord]] = [:]
            var buildKeys: [Int64: (run: String, origin: Int64)] = [:]
            let uuids = Dictionary(uniqueKeysWithValues: runs.map { ($0.id!, $0.uuid) })
            for build in try BuildRecord.order(BuildRecord.Columns.id).fetchAll(db) {
                builds[build.runID, default: []].append(build)
                buildKeys[build.id!] = (uuids[build.runID] ?? "", build.originID ?? build.id!)
            }
            var inputs: [Int64: [BuildInputRecord]] = [:]
            for input in try BuildInputRecord.order(Column("id")).fetchAll(db) {
                inputs[input.buildID, default: []].append(input)
            }
            var logSources: [String: String] = [:]
            for build in builds.values.joined() {
                if let log = build.logPath, let source = Self.locate(log, below: directory + "/logs") { logSources[log] = source }
            }
            return ShardSnapshot(directory: directory, databasePath: databasePath, runs: runs, builds: builds, inputs: inputs, buildKeys: buildKeys, logSources: logSources)
        }
    }

    /// The run as it is to be recorded here; inserts or updates it and returns its id here.
    private func mergeRun(_ db: Database, _ shardRun: RunRecord, from snapshot: ShardSnapshot, now: Date,
                          result: inout ShardMergeResult) throws -> Int64 {
        var incoming = shardRun
        incoming.id = nil
        if incoming.status == .running {
            // Nobody holds the shard's lock (checked when it was read): the process that ran it is
            // gone. Recorded as the shard's own next run would recover it, at its last known time.
            incoming.status = .interrupted
            let times = (snapshot.builds[shardRun.id!] ?? []).flatMap { [$0.startedAt] + ($0.finishedAt.map { [$0] } ?? []) }
            incoming.finishedAt = ([shardRun.startedAt] + times).max()
            result.runsEndedAsInterrupted += 1
        }
        incoming.mergedFrom = snapshot.directory
        incoming.mergedAt = now
        guard let existing = try RunRecord.filter(RunRecord.Columns.uuid == shardRun.uuid).fetchOne(db) else {
            try incoming.insert(db)
            result.runsAdded += 1
            return incoming.id!
        }
        guard existing.mergedFrom != nil else {
            throw MergeRefusal("\(snapshot.directory): run \(shardRun.uuid) was recorded in this state itself, not merged into it: a shard state cannot hold this state's own runs (was it copied from here?)")
        }
        incoming.id = existing.id
        var comparable = existing
        comparable.mergedFrom = incoming.mergedFrom
        comparable.mergedAt = incoming.mergedAt
        if comparable == incoming {
            result.runsUnchanged += 1
        } else {
            try incoming.update(db)
            result.runsUpdated += 1
        }
        return existing.id!
    }

    private func mergeBuilds(_ db: Database, of shardRun: RunRecord, runID: Int64, from snapshot: ShardSnapshot, target: MergeTarget,
                             logCopies: [String: String], runIDs: [String: Int64], result: inout ShardMergeResult) throws {
        let existing = try BuildRecord.filter(BuildRecord.Columns.runID == runID).fetchAll(db)
        var existingByOrigin: [Int64: BuildRecord] = [:]
        for build in existing { existingByOrigin[build.originID ?? build.id!] = build }
        let runEnded = shardRun.status != .running
        for shardBuild in snapshot.builds[shardRun.id!] ?? [] {
            let origin = shardBuild.originID ?? shardBuild.id!
            var incoming = shardBuild
            incoming.id = nil
            incoming.runID = runID
            incoming.originID = origin
            if incoming.status == .running {
                incoming.status = .interrupted
                incoming.finishedAt = incoming.finishedAt ?? shardRun.finishedAt ?? incoming.startedAt
                incoming.errorMessage = incoming.errorMessage ?? (runEnded
                    ? "its run ended without finishing this build"
                    : "process \(shardRun.pid) on \(shardRun.host) ended without finishing this build")
            }
            incoming.artifactPath = incoming.artifactPath.map { Self.relocate($0, variant: incoming.variantID, into: target.outputDirectory) }
            incoming.signaturePath = incoming.signaturePath.map { Self.relocate($0, variant: incoming.variantID, into: target.outputDirectory) }
            incoming.provenancePath = incoming.provenancePath.map { Self.relocate($0, variant: incoming.variantID, into: target.outputDirectory) }
            incoming.compressedPath = incoming.compressedPath.map { Self.relocate($0, variant: incoming.variantID, into: target.outputDirectory) }
            incoming.blockMapPath = incoming.blockMapPath.map { Self.relocate($0, variant: incoming.variantID, into: target.outputDirectory) }
            incoming.logPath = incoming.logPath.map { logCopies[$0] ?? $0 }
            incoming.reusedBuildID = try shardBuild.reusedBuildID.flatMap { reused -> Int64? in
                guard let key = snapshot.buildKeys[reused], let reusedRun = runIDs[key.run] else { return nil }
                return try Int64.fetchOne(db, sql: "SELECT id FROM build WHERE runID = ? AND coalesce(originID, id) = ?",
                                          arguments: [reusedRun, key.origin])
            }
            if let current = existingByOrigin[origin] {
                incoming.id = current.id
                if current == incoming {
                    result.buildsUnchanged += 1
                } else {
                    try incoming.update(db)
                    result.buildsUpdated += 1
                }
                continue  // a build's inputs are recorded with its start, once: they never change
            }
            try incoming.insert(db)
            var inputs = snapshot.inputs[shardBuild.id!] ?? []
            if inputs.isEmpty, incoming.reusedBuildID == nil, let reused = shardBuild.reusedBuildID {
                // An up-to-date row has its reused build's inputs; that build is not here, so they are copied.
                inputs = snapshot.inputs[reused] ?? []
            }
            try BuildInputRecord.insertAll(inputs, buildID: incoming.id!, db)
            result.buildsAdded += 1
        }
    }

    static func sameFile(_ one: String, _ other: String) -> Bool {
        var first = stat(), second = stat()
        return stat(one, &first) == 0 && stat(other, &second) == 0 && first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }

    /// `<anything>/<variant>/<stamp>/<file>` (the output layout) → `<output>/<variant>/<stamp>/<file>`;
    /// any other path is kept as recorded.
    static func relocate(_ path: String, variant: String, into output: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts[parts.count - 3] == variant else { return path }
        return output + "/" + parts.suffix(3).joined(separator: "/")
    }

    /// The file below `logs` that a recorded log path (`…/logs/<rest>` on the shard's host) names.
    static func locate(_ recorded: String, below logs: String) -> String? {
        var search = recorded.startIndex..<recorded.endIndex
        while let found = recorded.range(of: "/logs/", range: search) {
            let candidate = logs + "/" + recorded[found.upperBound...]
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            search = found.upperBound..<recorded.endIndex
        }
        return nil
    }

    /// Brings `source` to `destination` unless a file of the same size is already there: a hard
    /// link when both are on one file system (a build log never changes once its build ended, and
    /// a merge brings thousands: one system call each instead of a copy), else a copy through a
    /// temporary file and a rename, owner-only.
    static func copyIfChanged(_ source: String, to destination: String) throws {
        let manager = FileManager.default
        var there = stat(), here = stat()
        guard stat(source, &here) == 0 else { throw MergeRefusal("cannot read the build log \(source): \(String(cString: strerror(errno)))") }
        if stat(destination, &there) == 0, there.st_size == here.st_size { return }
        let folder = (destination as NSString).deletingLastPathComponent
        do {
            var folderInfo = stat()
            if stat(folder, &folderInfo) != 0 {
                try manager.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            }
            // Not there yet (the usual case): one link. There with another size: replaced by one rename.
            if link(source, destination) == 0 { return }
            let temporary = destination + ".tmp-\(getpid())"
            unlink(temporary)
            if link(source, temporary) == 0 {
                guard rename(temporary, destination) == 0 else { throw ProvenanceError.io(path: destination, operation: "rename", errno: errno) }
                return
            }
            try manager.copyItem(atPath: source, toPath: temporary)
            try manager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: temporary)
            guard rename(temporary, destination) == 0 else { throw ProvenanceError.io(path: destination, operation: "rename", errno: errno) }
        } catch let error as ProvenanceError {
            throw error
        } catch {
            throw MergeRefusal("cannot copy the build log \(source) to \(destination): \(error.localizedDescription)")
        }
    }
}
