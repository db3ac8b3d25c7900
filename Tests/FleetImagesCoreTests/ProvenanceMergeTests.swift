import Foundation
import Testing
@testable import FleetImagesCore

/// `fleet-images merge`: shard databases brought into one, in one transaction, idempotently,
/// refusing what does not belong, with every row's origin kept.
@Suite("Merging shard states", .serialized)
struct ProvenanceMergeTests {
    static let fleet = "demo-fleet"
    static let keyID = "0123456789abcdef0123456789abcdef"
    static let t0 = ProvenanceFixture.t0
    var t0: Date { Self.t0 }

    /// A shard's state folder with its own database.
    struct Shard {
        let directory: String
        let store: ProvenanceStore

        init(_ folder: ProvenanceTempDirectory, _ name: String) throws {
            directory = folder.file(name)
            try FileManager.default.createDirectory(atPath: directory + "/logs/1", withIntermediateDirectories: true)
            store = try ProvenanceStore.open(at: directory + "/provenance.sqlite")
        }

        func beginRun(host: String, at seconds: Double, fleet: String = ProvenanceMergeTests.fleet,
                      keyID: String? = ProvenanceMergeTests.keyID, pid: Int32 = 4242) throws -> Int64 {
            var start = ProvenanceFixture.runStart(at: t0.addingTimeInterval(seconds), pid: pid)
            start.host = host
            start.fleet = fleet
            start.stateKeyID = keyID
            start.shard = "1/2"
            return try store.beginRun(start)
        }

        /// A succeeded build of `variant` whose image sits at `/runner/<host>/out/<variant>/<stamp>/<variant>.img`.
        func built(_ variant: String, run: Int64, host: String, at seconds: Double) throws -> Int64 {
            let start = t0.addingTimeInterval(seconds)
            let log = directory + "/logs/1/\(variant).log"
            try Data("log of \(variant)\n".utf8).write(to: URL(fileURLWithPath: log))
            let id = try store.beginBuild(
                runID: run,
                BuildStart(variantID: variant, site: variant, builder: "inject", inputsDigest: "inputs-\(variant)", startedAt: start,
                           logPath: "/runner/\(host)/.fleet-images/logs/1/\(variant).log"),
                inputs: ProvenanceFixture.inputs(site: variant))
            let folder = "/runner/\(host)/out/\(variant)/20250601T020000Z-abc-b\(id)"
            try store.finishBuild(id: id, .succeeded(
                BuildArtifact(path: folder + "/\(variant).img", size: 1024, sha256: "sha-\(variant)",
                              signaturePath: folder + "/\(variant).img.sig", signingKeyFingerprint: "key-of-\(host)"),
                provenancePath: folder + "/\(variant).img.intoto.json", finishedAt: start.addingTimeInterval(5)))
            return id
        }
    }

    func target(_ folder: ProvenanceTempDirectory) throws -> (store: ProvenanceStore, target: MergeTarget) {
        try FileManager.default.createDirectory(atPath: folder.file("main"), withIntermediateDirectories: true)
        let store = try ProvenanceStore.open(at: folder.file("main/provenance.sqlite"))
        return (store, MergeTarget(fleet: Self.fleet, stateKeyID: Self.keyID, outputDirectory: "/srv/fleet/out",
                                   logDirectory: folder.file("main/logs")))
    }

    /// Every row of the three tables, as text: what "changes nothing" is checked against.
    func dump(_ path: String) throws -> [String] {
        try ProvenanceTool.sqlite(path, "SELECT * FROM run ORDER BY id")
            + ProvenanceTool.sqlite(path, "SELECT * FROM build ORDER BY id")
            + ProvenanceTool.sqlite(path, "SELECT * FROM buildInput ORDER BY id")
    }

    @Test func mergesEveryShardOnceKeepingOriginsAndReuse() throws {
        let folder = try ProvenanceTempDirectory()
        let one = try Shard(folder, "shard-1"), two = try Shard(folder, "shard-2")
        let runA = try one.beginRun(host: "runner-a", at: 0)
        _ = try one.built("zrh-lab", run: runA, host: "runner-a", at: 1)
        try one.store.finishRun(id: runA, status: .succeeded, counts: RunCounts(planned: 1, built: 1), finishedAt: t0.addingTimeInterval(10))
        let runB = try two.beginRun(host: "runner-b", at: 2)
        let gva = try two.built("gva-plant", run: runB, host: "runner-b", at: 3)
        try two.store.finishRun(id: runB, status: .succeeded, counts: RunCounts(planned: 1, built: 1), finishedAt: t0.addingTimeInterval(12))
        // The next night on runner-b: gva-plant up to date (a row reusing build `gva`).
        let runB2 = try two.beginRun(host: "runner-b", at: 86_400)
        try two.store.recordUpToDate(runID: runB2, reusing: gva, at: t0.addingTimeInterval(86_401))
        try two.store.finishRun(id: runB2, status: .succeeded, counts: RunCounts(planned: 1, upToDate: 1), finishedAt: t0.addingTimeInterval(86_402))

        let (store, target) = try target(folder)
        // This state's own history: a build recorded here before the merge.
        var ownStart = ProvenanceFixture.runStart(at: t0.addingTimeInterval(-100))
        ownStart.fleet = Self.fleet
        let ownRun = try store.beginRun(ownStart)
        try store.finishRun(id: ownRun, status: .succeeded, counts: RunCounts())

        let shards = try ShardStates.read([one.directory, two.directory + "/provenance.sqlite"], for: target)
        #expect(shards.runCount == 3 && shards.buildCount == 3)
        let results = try store.merge(shards, into: target, now: t0.addingTimeInterval(100_000))
        #expect(results.map(\.runsAdded) == [1, 2] && results.map(\.buildsAdded) == [1, 2])

        let runs = try store.runs(limit: 10)
        #expect(runs.map(\.host) == ["runner-b", "runner-b", "runner-a", "builder-1"], "newest first, each with its origin host")
        #expect(runs.prefix(3).allSatisfy { $0.mergedFrom != nil && $0.fleet == Self.fleet && $0.shard == "1/2" })
        #expect(runs.last?.mergedFrom == nil)

        let latest = try store.latestBuilds()
        #expect(latest.map(\.variantID) == ["gva-plant", "zrh-lab"])
        let gvaHere = try #require(latest.first)
        #expect(gvaHere.status == .upToDate)
        #expect(gvaHere.artifactPath?.hasPrefix("/srv/fleet/out/gva-plant/20250601T020000Z-abc-b") == true, "\(gvaHere.artifactPath ?? "")")
        #expect(gvaHere.signaturePath == gvaHere.artifactPath.map { $0 + ".sig" })
        #expect(gvaHere.signingKeyFingerprint == "key-of-runner-b", "the image stays signed by the key of the host that built it")
        // The reuse points at the merged copy of the build it reused, under its id here.
        let reusedID = try #require(gvaHere.reusedBuildID)
        let reused = try #require(try store.build(id: reusedID))
        #expect(reused.variantID == "gva-plant" && reused.status == .succeeded && reused.runID != gvaHere.runID)
        #expect(try store.inputs(buildID: gvaHere.id!).count == ProvenanceFixture.inputs(site: "gva-plant").count)
        #expect(try store.latestSuccessfulBuild(variantID: "zrh-lab", inputsDigest: "inputs-zrh-lab") != nil)
        // Logs came along and the record names the copy.
        let log = try #require(reused.logPath)
        #expect(log.hasPrefix(target.logDirectory + "/merged/"))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "log of gva-plant\n")
        // Build ids are this database's: unique, and distinct from the shards' own.
        let ids = try ProvenanceTool.sqlite(store.path, "SELECT count(*), count(DISTINCT id) FROM build")
        #expect(ids == ["3|3"])

        // Merging again, in another order, changes nothing at all.
        let before = try dump(store.path)
        let again = try store.merge(try ShardStates.read([two.directory, one.directory, one.directory], for: target), into: target,
                                    now: t0.addingTimeInterval(200_000))
        #expect(again.allSatisfy { $0.changedNothing }, "\(again)")
        #expect(try dump(store.path) == before)
    }

    @Test func aShardKilledMidRunIsRecordedInterruptedThenCorrectedByItsReRun() throws {
        let folder = try ProvenanceTempDirectory()
        let shard = try Shard(folder, "shard-1")
        // kill -9 during the run: one image built, one build in flight.
        let killed = try shard.beginRun(host: "runner-a", at: 0, pid: 999_999)
        _ = try shard.built("zrh-lab", run: killed, host: "runner-a", at: 1)
        _ = try shard.store.beginBuild(runID: killed, BuildStart(variantID: "gva-plant", site: "gva-plant", builder: "inject",
                                                                   inputsDigest: "inputs-gva-plant", startedAt: t0.addingTimeInterval(2)),
                                       inputs: [])
        let (store, target) = try target(folder)
        let first = try store.merge(try ShardStates.read([shard.directory], for: target), into: target)
        #expect(first[0].runsEndedAsInterrupted == 1)
        #expect(try store.runs().first?.status == .interrupted)
        #expect(try store.latestBuild(variantID: "gva-plant")?.status == .interrupted)
        #expect(try store.latestBuild(variantID: "zrh-lab")?.status == .succeeded)

        // The shard's next run recovers the dead run and builds what was missing.
        #expect(try shard.store.recoverInterrupted(currentHost: "runner-a", isProcessAlive: { _ in false }) == 1)
        let rerun = try shard.beginRun(host: "runner-a", at: 100)
        _ = try shard.built("gva-plant", run: rerun, host: "runner-a", at: 101)
        try shard.store.finishRun(id: rerun, status: .succeeded, counts: RunCounts(planned: 2, built: 1, upToDate: 1))

        let second = try store.merge(try ShardStates.read([shard.directory], for: target), into: target)
        #expect(second[0].runsAdded == 1 && second[0].runsUpdated == 1 && second[0].buildsAdded == 1 && second[0].runsEndedAsInterrupted == 0)
        let runs = try store.runs()
        #expect(runs.map(\.status) == [.succeeded, .interrupted])
        #expect(try store.latestBuild(variantID: "gva-plant")?.status == .succeeded)
        #expect(try ProvenanceTool.sqlite(store.path, "SELECT count(*) FROM build") == ["3"])
        // The merged record now says what the shard's own record says about the killed run.
        let shardRun = try #require(try shard.store.run(id: killed))
        #expect(runs.last?.finishedAt == shardRun.finishedAt)
    }

    @Test func refusesWhatDoesNotBelongAndWritesNothing() throws {
        let folder = try ProvenanceTempDirectory()
        let (store, target) = try target(folder)
        let good = try Shard(folder, "good")
        _ = try good.built("zrh-lab", run: try good.beginRun(host: "runner-a", at: 0), host: "runner-a", at: 1)
        let before = try dump(store.path)

        func refusal(_ shards: [String], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                let states = try ShardStates.read(shards, for: target)
                _ = try store.merge(states, into: target)
                Issue.record("merged \(shards) although \(expected)", sourceLocation: sourceLocation)
            } catch let refusal as MergeRefusal {
                #expect(refusal.description.contains(expected), "\(refusal)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(error)", sourceLocation: sourceLocation)
            }
        }
        let otherFleet = try Shard(folder, "other-fleet")
        _ = try otherFleet.beginRun(host: "runner-b", at: 0, fleet: "someone-else")
        refusal([good.directory, otherFleet.directory], "built the fleet \"someone-else\", not \"demo-fleet\"")
        let otherKey = try Shard(folder, "other-key")
        _ = try otherKey.beginRun(host: "runner-c", at: 0, keyID: "ffffffffffffffffffffffffffffffff")
        refusal([good.directory, otherKey.directory], "digested its secrets under another state key")
        let noKey = try Shard(folder, "no-key")
        _ = try noKey.beginRun(host: "runner-c", at: 0, keyID: nil)
        refusal([noKey.directory], "another state key (none recorded")
        let newer = try Shard(folder, "newer")
        _ = try newer.beginRun(host: "runner-d", at: 0)
        try newer.store.close()
        _ = try ProvenanceTool.sqlite(newer.directory + "/provenance.sqlite", "INSERT INTO grdb_migrations VALUES ('v99-from-the-future')")
        refusal([good.directory, newer.directory], "written by another fleet-images version")
        refusal([folder.file("missing")], "no such shard state")
        refusal([folder.file("main")], "this state's own database")
        // A shard whose build is still running (its lock is held).
        let busy = try Shard(folder, "busy")
        _ = try busy.beginRun(host: "runner-e", at: 0)
        let lock = try awaitLock(busy.directory + "/lock")
        refusal([good.directory, busy.directory], "a build is running in this shard state")
        withExtendedLifetime(lock) {}

        #expect(try dump(store.path) == before, "a refused merge writes nothing")
        #expect(!FileManager.default.fileExists(atPath: target.logDirectory), "and copies no log")
    }

    /// A shard state with this state's own runs in it (a copy of this database) is refused.
    @Test func refusesAShardHoldingThisStatesOwnRuns() throws {
        let folder = try ProvenanceTempDirectory()
        let (store, target) = try target(folder)
        var start = ProvenanceFixture.runStart(at: t0)
        start.fleet = Self.fleet
        start.stateKeyID = Self.keyID
        _ = try store.beginRun(start)
        try FileManager.default.createDirectory(atPath: folder.file("copy"), withIntermediateDirectories: true)
        _ = try ProvenanceTool.sqlite(store.path, "VACUUM INTO '\(folder.file("copy/provenance.sqlite"))'")
        #expect(throws: MergeRefusal.self) { try store.merge(try ShardStates.read([folder.file("copy")], for: target), into: target) }
    }

    private func awaitLock(_ path: String) throws -> RunLock {
        final class Box: @unchecked Sendable { var lock: Result<RunLock, any Error>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.lock = .success(try await RunLock(path: path)) } catch { box.lock = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.lock!.get()
    }
}
