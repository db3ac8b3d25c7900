import Foundation
import GRDB
import Testing
@testable import FleetImagesCore

@Suite("Provenance store", .serialized)
struct ProvenanceStoreTests {
    @Test func createsAndMigratesANewDatabase() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        try store.close()

        // Checked with the sqlite3 tool, not through GRDB.
        #expect(try ProvenanceTool.sqlite(path, "SELECT identifier FROM grdb_migrations ORDER BY identifier") == ["v1-runs-builds-inputs", "v2-ssh-fingerprint-digests", "v3-shard-merge", "v4-compressed-outputs"])
        #expect(try ProvenanceTool.sqlite(path, "PRAGMA journal_mode") == ["wal"])
        let tables = try ProvenanceTool.sqlite(path, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        #expect(tables.contains("run") && tables.contains("build") && tables.contains("buildInput"))
        let indexes = try ProvenanceTool.sqlite(path, "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='build' ORDER BY name")
        #expect(indexes.contains("build_on_variantID_id"))
        #expect(indexes.contains("build_on_site"))
    }

    @Test func migratesAnEmptyFile() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("empty.sqlite")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let store = try ProvenanceStore.open(at: path)
        #expect(try store.runs().isEmpty)
        try store.close()
        #expect(try ProvenanceTool.sqlite(path, "SELECT count(*) FROM grdb_migrations") == ["4"])
    }

    @Test func reopeningKeepsTheDataAndDoesNotMigrateAgain() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let ids = try ProvenanceFixture.populate(ProvenanceStore.open(at: path))
        let store = try ProvenanceStore.open(at: path)
        #expect(try store.runs().map(\.id) == [ids.run2, ids.run1])
        #expect(try ProvenanceTool.sqlite(path, "SELECT count(*) FROM grdb_migrations") == ["4"])
    }

    /// A database written before v2 recorded SSH public keys as 'hmac-sha256'; opening it relabels
    /// exactly those rows 'ssh-fingerprint' and keeps every other row as it was.
    @Test func v2RelabelsSSHFingerprintsOfAnOlderDatabase() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("v1.sqlite")
        let queue = try DatabaseQueue(path: path)
        try ProvenanceStore.migrator.migrate(queue, upTo: "v1-runs-builds-inputs")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO run (id, uuid, startedAt, status, commandLine, manifestPath, manifestSHA256, toolVersion, host, pid, parallelism)
                    VALUES (1, 'u1', '2026-01-01 00:00:00', 'succeeded', 'build', '/f/fleet.json', 'aa', '0.1', 'h', 1, 1);
                INSERT INTO build (id, runID, variantID, site, builder, inputsDigest, startedAt, status)
                    VALUES (1, 1, 'zrh-lab', 'zrh-lab', 'inject', 'bb', '2026-01-01 00:00:00', 'succeeded');
                INSERT INTO buildInput (buildID, role, name, digest, digestKind) VALUES
                    (1, 'ssh-authorized-key', 'keys/op.pub#1', 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU', 'hmac-sha256'),
                    (1, 'claim-private-key', 'certs/zrh-lab/claim.private.pem.key', 'cc', 'hmac-sha256'),
                    (1, 'file', 'variants/common/config.yaml', 'dd', 'sha256');
                """)
        }
        try queue.close()
        let store = try ProvenanceStore.open(at: path)
        let inputs = try store.inputs(buildID: 1)
        try store.close()
        #expect(inputs.map(\.digestKind) == [.sshFingerprint, .hmacSHA256, .sha256])
        #expect(inputs.map(\.digest) == ["SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", "cc", "dd"])
        #expect(try ProvenanceTool.sqlite(path, "PRAGMA foreign_key_check") == [])
        let indexes = try ProvenanceTool.sqlite(path, "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='buildInput'")
        #expect(indexes.contains("buildInput_on_buildID"))
        // In the provenance document the key is a dependency by the SHA-256 its fingerprint encodes.
        #expect(ProvenanceDocument.sha256Hex(sshFingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")
                == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(ProvenanceDocument.sha256Hex(sshFingerprint: "MD5:aa:bb") == nil)
    }

    /// v3 adds what merging needs; rows of an older database stay as they were, with nothing
    /// claimed for them (no fleet, no state key), and build again as before.
    @Test func v3LeavesOlderRowsAndTheirBuildsAsTheyWere() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("v2.sqlite")
        let queue = try DatabaseQueue(path: path)
        try ProvenanceStore.migrator.migrate(queue, upTo: "v2-ssh-fingerprint-digests")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO run (id, uuid, startedAt, status, commandLine, manifestPath, manifestSHA256, toolVersion, host, pid, parallelism)
                    VALUES (1, 'u1', '2026-01-01 00:00:00', 'succeeded', 'build', '/f/fleet.json', 'aa', '0.1', 'h', 1, 1);
                INSERT INTO build (id, runID, variantID, site, builder, inputsDigest, startedAt, status, artifactPath, artifactSize, artifactSHA256)
                    VALUES (1, 1, 'zrh-lab', 'zrh-lab', 'inject', 'bb', '2026-01-01 00:00:00', 'succeeded', '/o/zrh-lab.img', 1, 'cc');
                """)
        }
        try queue.close()
        let store = try ProvenanceStore.open(at: path)
        let run = try #require(try store.run(id: 1))
        #expect(run.fleet == nil && run.stateKeyID == nil && run.shard == nil && run.mergedFrom == nil)
        #expect(try store.build(id: 1)?.originID == nil)
        // An up-to-date row reusing the old build is recorded as before.
        let next = try store.beginRun(ProvenanceFixture.runStart(at: Date()))
        let reuse = try store.recordUpToDate(runID: next, reusing: 1)
        #expect(try store.build(id: reuse)?.reusedBuildID == 1)
        try store.close()
        let indexes = try ProvenanceTool.sqlite(path, "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='build'")
        #expect(indexes.contains("build_on_runID_origin"))
    }

    /// The copy is made inside SQLite from the table's own columns: every column but the run's own
    /// comes from the reused build, and a batch with one build that cannot be reused records none.
    @Test func upToDateRowsCopyEveryColumnButTheRunsOwn() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        let ids = try ProvenanceFixture.populate(store)
        let original = try #require(try store.build(id: ids.zrhArm64First))
        let run = try store.beginRun(ProvenanceFixture.runStart(at: Date()))
        let when = ProvenanceFixture.t0.addingTimeInterval(7 * 86_400)
        let copies = try store.recordUpToDate(runID: run, reusing: [ids.zrhArm64First, ids.zrhArm64UpToDate], at: when)
        #expect(copies.count == 2 && copies[0] != copies[1])

        var expected = original
        expected.id = copies[0]
        expected.runID = run
        expected.startedAt = when
        expected.finishedAt = when
        expected.status = .upToDate
        expected.exitCode = nil
        expected.errorMessage = nil
        expected.logPath = nil
        expected.originID = nil
        expected.reusedBuildID = ids.zrhArm64First
        #expect(try store.build(id: copies[0]) == expected)
        // Reusing an up-to-date row points at the original build, not at the row.
        #expect(try store.build(id: copies[1])?.reusedBuildID == ids.zrhArm64First)
        // The same inputs in the same order, each its own row of the copy.
        let inputs = { (id: Int64) in
            try store.inputs(buildID: id).map { input -> BuildInputRecord in
                var copy = input
                copy.id = nil
                copy.buildID = 0
                return copy
            }
        }
        #expect(try !inputs(ids.zrhArm64First).isEmpty)
        #expect(try inputs(copies[0]) == inputs(ids.zrhArm64First))
        // Read from the reused build: an up-to-date row adds no input rows.
        #expect(try ProvenanceTool.sqlite(path, "SELECT count(*) FROM buildInput WHERE buildID IN (\(copies[0]), \(copies[1]))") == ["0"])
        #expect(try inputs(copies[1]) == inputs(ids.zrhArm64First))

        let before = try store.builds(filter: BuildFilter(scope: .allHistory, runID: run)).count
        #expect(before == 2)
        #expect(throws: ProvenanceError.notReusable(buildID: ids.berFailed, status: .failed)) {
            try store.recordUpToDate(runID: run, reusing: [ids.zrhArm64First, ids.berFailed])
        }
        #expect(throws: ProvenanceError.buildNotFound(id: 999, path: path)) {
            try store.recordUpToDate(runID: run, reusing: [ids.zrhArm64First, 999])
        }
        #expect(throws: ProvenanceError.runNotFound(id: 999, path: path)) {
            try store.recordUpToDate(runID: 999, reusing: [ids.zrhArm64First])
        }
        #expect(try store.builds(filter: BuildFilter(scope: .allHistory, runID: run)).count == before)
    }

    @Test func recordsAFullRunAndReadsItBack() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        let ids = try ProvenanceFixture.populate(store)
        let t0 = ProvenanceFixture.t0

        let run1 = try #require(try store.run(id: ids.run1))
        #expect(run1.status == .failed)
        #expect(run1.counts == RunCounts(planned: 3, built: 2, failed: 1))
        #expect(run1.startedAt == t0)
        #expect(run1.finishedAt == t0.addingTimeInterval(3_902))
        #expect(run1.host == "builder-1" && run1.pid == 4242 && run1.parallelism == 2)
        #expect(run1.commandLine == "fleet-images build --parallel 2")
        #expect(run1.uuid.count == 36)

        let built = try #require(try store.build(id: ids.zrhArm64First))
        #expect(built.status == .succeeded)
        #expect(built.matrix == ["arch": "arm64"])
        #expect(built.artifactSize == 2_786_918_400)
        #expect(built.artifactSHA256 == ProvenanceFixture.sha.image1)
        #expect(built.signingKeyFingerprint == ProvenanceFixture.sha.key)
        #expect(built.exitCode == 0)
        // Dates keep millisecond precision.
        #expect(built.finishedAt == t0.addingTimeInterval(186.5))
        #expect(built.duration == 185.5)

        let inputs = try store.inputs(buildID: ids.zrhArm64First)
        #expect(inputs.map(\.role) == [.claimCertificate, .claimPrivateKey, .wifiPSK, .baseImage, .template])
        #expect(inputs[0].certSubject == "CN=zrh-lab-claim,O=Example Fleet")
        #expect(inputs[0].certNotAfter == Date(timeIntervalSince1970: 1_782_864_000))
        #expect(inputs[2].digestKind == .hmacSHA256)
        #expect(inputs[3].url?.hasPrefix("https://downloads.raspberrypi.com/") == true)

        // The up-to-date row copies the artifact and the inputs, and points at the original.
        let upToDate = try #require(try store.build(id: ids.zrhArm64UpToDate))
        #expect(upToDate.status == .upToDate)
        #expect(upToDate.runID == ids.run2)
        #expect(upToDate.reusedBuildID == ids.zrhArm64First)
        #expect(upToDate.artifactSHA256 == built.artifactSHA256)
        #expect(try store.inputs(buildID: ids.zrhArm64UpToDate).map(\.digest) == inputs.map(\.digest))

        // The same facts through the sqlite3 tool.
        #expect(
            try ProvenanceTool.sqlite(path, "SELECT variantID, status, artifactSize FROM build ORDER BY id") == [
                "zrh-lab-arm64|succeeded|2786918400", "zrh-lab-armhf|succeeded|2147483648",
                "ber-office-arm64|failed|", "zrh-lab-arm64|up-to-date|2786918400", "ber-office-arm64|failed|",
            ])
        // 4 builds with 5 inputs each; the up-to-date row has its reused build's, not a copy.
        #expect(try ProvenanceTool.sqlite(path, "SELECT count(*) FROM buildInput") == ["20"])
        #expect(try ProvenanceTool.sqlite(path, "SELECT startedAt FROM run WHERE id = \(ids.run1)") == ["2025-06-01 02:00:00.000"])
    }

    @Test func answersTheQueriesOfLsAndTheIncrementalCheck() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        let ids = try ProvenanceFixture.populate(store)

        let latest = try store.latestBuilds()
        #expect(latest.map(\.variantID) == ["ber-office-arm64", "zrh-lab-arm64", "zrh-lab-armhf"])
        #expect(latest.map(\.id) == [ids.berSecond, ids.zrhArm64UpToDate, ids.zrhArmhf])
        #expect(try store.latestBuilds(variantIDs: ["zrh-lab-armhf", "mad-depot-arm64"]).map(\.id) == [ids.zrhArmhf])
        #expect(try store.latestBuilds(variantIDs: []).isEmpty)
        #expect(try store.latestBuild(variantID: "zrh-lab-arm64")?.id == ids.zrhArm64UpToDate)
        #expect(try store.latestBuild(variantID: "mad-depot-arm64") == nil)

        #expect(
            try store.latestSuccessfulBuild(variantID: "zrh-lab-arm64", inputsDigest: ProvenanceFixture.sha.inputs1)?.id
                == ids.zrhArm64UpToDate)
        #expect(try store.latestSuccessfulBuild(variantID: "zrh-lab-arm64", inputsDigest: ProvenanceFixture.sha.inputs2) == nil)
        #expect(try store.latestSuccessfulBuild(variantID: "ber-office-arm64", inputsDigest: ProvenanceFixture.sha.inputs3) == nil)

        // History, newest first, with each filter.
        let all = try store.builds(filter: BuildFilter(scope: .allHistory))
        #expect(all.map(\.id) == [ids.berSecond, ids.zrhArm64UpToDate, ids.berFailed, ids.zrhArmhf, ids.zrhArm64First])
        #expect(try store.builds(filter: BuildFilter(scope: .allHistory), limit: 2).map(\.id) == [ids.berSecond, ids.zrhArm64UpToDate])
        #expect(
            try store.builds(filter: BuildFilter(scope: .allHistory, siteGlob: "zrh-*")).map(\.id)
                == [ids.zrhArm64UpToDate, ids.zrhArmhf, ids.zrhArm64First])
        #expect(try store.builds(filter: BuildFilter(scope: .allHistory, siteGlob: "ZRH-*")).isEmpty)  // GLOB is case-sensitive
        #expect(
            try store.builds(filter: BuildFilter(scope: .allHistory, statuses: [.failed])).map(\.id) == [ids.berSecond, ids.berFailed])
        #expect(
            try store.builds(filter: BuildFilter(scope: .allHistory, runID: ids.run1)).map(\.id)
                == [ids.berFailed, ids.zrhArmhf, ids.zrhArm64First])
        let since = ProvenanceFixture.t0.addingTimeInterval(3_600)
        #expect(
            try store.builds(filter: BuildFilter(scope: .allHistory, since: since)).map(\.id)
                == [ids.berSecond, ids.zrhArm64UpToDate, ids.zrhArmhf])

        // Latest per variant: run and since narrow the candidates, status and site filter the chosen rows.
        #expect(try store.builds(filter: BuildFilter(runID: ids.run1)).map(\.id) == [ids.berFailed, ids.zrhArm64First, ids.zrhArmhf])
        #expect(try store.builds(filter: BuildFilter(statuses: [.failed])).map(\.id) == [ids.berSecond])
        #expect(try store.builds(filter: BuildFilter(statuses: [.succeeded])).map(\.id) == [ids.zrhArmhf])
        #expect(try store.builds(filter: BuildFilter(siteGlob: "ber-*")).map(\.id) == [ids.berSecond])
        #expect(try store.builds(filter: BuildFilter(statuses: [])).count == 3)
        // Every strategy of "latest per variant" with every candidate filter agrees.
        #expect(try store.builds(filter: BuildFilter(since: since)).map(\.id) == [ids.berSecond, ids.zrhArm64UpToDate, ids.zrhArmhf])
        #expect(
            try store.builds(filter: BuildFilter(variantIDs: ProvenanceFixture.manifestVariantIDs, since: ProvenanceFixture.t0.addingTimeInterval(86_300))).map(\.id)
                == [ids.berSecond, ids.zrhArm64UpToDate])
        #expect(
            try store.builds(filter: BuildFilter(runID: ids.run1, variantIDs: ["ber-office-arm64", "zrh-lab-armhf"])).map(\.id)
                == [ids.berFailed, ids.zrhArmhf])
        #expect(
            try store.builds(filter: BuildFilter(runID: ids.run2, statuses: [.upToDate], siteGlob: "zrh-*")).map(\.id)
                == [ids.zrhArm64UpToDate])
        #expect(try store.builds(filter: BuildFilter(runID: 999)).isEmpty)
    }

    @Test func theLsQueriesUseTheirIndexes() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        func plan(_ filter: BuildFilter) throws -> String {
            let (sql, arguments) = ProvenanceStore.buildsQuery(filter: filter, limit: nil)
            return try store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments)
                    .map { $0["detail"] as String }.joined(separator: "\n")
            }
        }
        #expect(try plan(BuildFilter()).contains("build_on_variantID_id"))
        #expect(try !plan(BuildFilter()).contains("SCAN build"))  // seeks, not a scan of the whole table or index
        #expect(try !plan(BuildFilter(variantIDs: ["a"])).contains("SCAN build"))
        #expect(try plan(BuildFilter(variantIDs: ["a", "b"])).contains("build_on_variantID_id"))
        #expect(try plan(BuildFilter(scope: .allHistory, siteGlob: "zrh-*")).contains("build_on_site"))
        #expect(try plan(BuildFilter(scope: .allHistory, runID: 1)).contains("build_on_runID"))
    }

    @Test func refusesInvalidTransitions() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        let ids = try ProvenanceFixture.populate(store)

        #expect(throws: ProvenanceError.buildNotRunning(id: ids.berFailed, status: .failed, path: path)) {
            try store.finishBuild(id: ids.berFailed, .interrupted())
        }
        #expect(throws: ProvenanceError.runNotFound(id: 999, path: path)) {
            try store.beginBuild(runID: 999, BuildStart(variantID: "x", site: "x", builder: "inject", inputsDigest: "0"), inputs: [])
        }
        #expect(throws: ProvenanceError.buildNotFound(id: 999, path: path)) {
            try store.finishBuild(id: 999, .failed("no"))
        }
        #expect(throws: ProvenanceError.notReusable(buildID: ids.berFailed, status: .failed)) {
            try store.recordUpToDate(runID: ids.run2, reusing: ids.berFailed)
        }
        let run = try store.beginRun(ProvenanceFixture.runStart(at: Date()))
        let build = try store.beginBuild(
            runID: run, BuildStart(variantID: "x", site: "x", builder: "inject", inputsDigest: "0"), inputs: [])
        #expect(throws: ProvenanceError.missingArtifact(buildID: build)) {
            try store.finishBuild(id: build, BuildOutcome(status: .succeeded))
        }
        #expect(try store.build(id: build)?.status == .running)
        // Ending the run interrupts what it left running.
        try store.finishRun(id: run, status: .interrupted, counts: RunCounts(planned: 1))
        #expect(try store.build(id: build)?.status == .interrupted)
        #expect(try store.build(id: build)?.errorMessage == "the run ended while this build was still running")
    }

    @Test func marksPrunedBuilds() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        let ids = try ProvenanceFixture.populate(store)
        #expect(try store.markPruned(buildID: ids.zrhArmhf))
        #expect(try store.build(id: ids.zrhArmhf)?.status == .pruned)
        #expect(try !store.markPruned(buildID: ids.zrhArmhf))
        #expect(try !store.markPruned(buildID: ids.berFailed))
        #expect(try store.latestSuccessfulBuild(variantID: "zrh-lab-armhf", inputsDigest: ProvenanceFixture.sha.inputs2) == nil)
    }

    @Test func integrityCheckPassesOnAHealthyDatabase() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        try ProvenanceFixture.populate(store)
        try store.checkIntegrity()
    }
}
