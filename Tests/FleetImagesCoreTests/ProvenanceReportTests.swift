import Foundation
import Testing
@testable import FleetImagesCore

/// `ls`, `runs` and `show` output for the fixed data set, against golden files
/// (`FLEET_IMAGES_UPDATE_GOLDEN=1 swift test --filter ProvenanceReport` rewrites them).
@Suite("Provenance reports", .serialized)
struct ProvenanceReportTests {
    private func populated() throws -> (ProvenanceStore, ProvenanceFixture.IDs, ProvenanceTempDirectory) {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        return (store, try ProvenanceFixture.populate(store), folder)
    }

    @Test func lsText() throws {
        let (store, _, _folder) = try populated()
        _ = _folder
        let latest = try store.latestBuilds(variantIDs: ProvenanceFixture.manifestVariantIDs)
        try ProvenanceGolden.check(
            ProvenanceReport.table(builds: latest, manifestVariantIDs: ProvenanceFixture.manifestVariantIDs), against: "ls.txt")
        let history = try store.builds(filter: BuildFilter(scope: .allHistory))
        try ProvenanceGolden.check(ProvenanceReport.table(builds: history), against: "ls-all.txt")
        #expect(ProvenanceReport.table(builds: []) == "No builds recorded.\n")
    }

    @Test func runsText() throws {
        let (store, _, _folder) = try populated()
        _ = _folder
        try ProvenanceGolden.check(ProvenanceReport.runsTable(runs: try store.runs()), against: "runs.txt")
    }

    @Test func showText() throws {
        let (store, ids, _folder) = try populated()
        _ = _folder
        func show(_ id: Int64, publicKey: String?) throws -> String {
            let build = try #require(try store.build(id: id))
            return ProvenanceReport.showText(
                build: build, inputs: try store.inputs(buildID: id), run: try store.run(id: build.runID), publicKeyPath: publicKey)
        }
        try ProvenanceGolden.check(try show(ids.zrhArm64First, publicKey: "keys/fleet-signing.pub.pem"), against: "show-succeeded.txt")
        try ProvenanceGolden.check(try show(ids.zrhArm64UpToDate, publicKey: nil), against: "show-up-to-date.txt")
        try ProvenanceGolden.check(try show(ids.berSecond, publicKey: nil), against: "show-failed.txt")
    }

    @Test func jsonGolden() throws {
        let (store, ids, _folder) = try populated()
        _ = _folder
        let latest = try store.latestBuilds(variantIDs: ProvenanceFixture.manifestVariantIDs)
        try ProvenanceGolden.check(
            try ProvenanceReport.json(builds: latest, manifestVariantIDs: ProvenanceFixture.manifestVariantIDs), against: "ls.json")
        try ProvenanceGolden.check(try ProvenanceReport.json(runs: try store.runs()).provenanceFixedUUIDs(), against: "runs.json")
        let build = try #require(try store.build(id: ids.zrhArm64First))
        try ProvenanceGolden.check(
            try ProvenanceReport.json(build: build, inputs: try store.inputs(buildID: build.id!), run: try store.run(id: build.runID))
                .provenanceFixedUUIDs(),
            against: "show.json")
    }

    /// The documented shape, read back with JSONSerialization (not the Codable types that wrote it).
    @Test func lsJSONShape() throws {
        let (store, ids, _folder) = try populated()
        _ = _folder
        let latest = try store.latestBuilds(variantIDs: ProvenanceFixture.manifestVariantIDs)
        let text = try ProvenanceReport.json(builds: latest, manifestVariantIDs: ProvenanceFixture.manifestVariantIDs)
        #expect(!text.contains("\\/"))
        let root = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(Set(root.keys) == ["builds"])
        let builds = try #require(root["builds"] as? [[String: Any]])
        #expect(builds.map { $0["variant"] as? String } == ProvenanceFixture.manifestVariantIDs)

        let keys: Set<String> = [
            "variant", "site", "status", "matrix", "builder", "builder_image", "started_at", "finished_at",
            "duration_seconds", "artifact", "inputs_digest", "run_id", "build_id", "reused_build_id", "exit_code",
            "error", "log", "provenance",
        ]
        for build in builds { #expect(Set(build.keys) == keys) }

        let upToDate = builds[0]
        #expect(upToDate["status"] as? String == "up-to-date")
        #expect(upToDate["build_id"] as? Int64 == ids.zrhArm64UpToDate)
        #expect(upToDate["reused_build_id"] as? Int64 == ids.zrhArm64First)
        #expect(upToDate["run_id"] as? Int64 == ids.run2)
        #expect(upToDate["started_at"] as? String == "2025-06-02T02:00:02.000Z")
        let artifact = try #require(upToDate["artifact"] as? [String: Any])
        #expect(Set(artifact.keys) == ["path", "size", "sha256", "signature", "signing_key", "block_map", "compressed"])
        #expect(artifact["size"] as? Int64 == 2_786_918_400)
        #expect(artifact["path"] as? String == "build/images/zrh-lab-arm64.img")

        let armhf = builds[1]
        #expect(armhf["duration_seconds"] as? Double == 3_899.5)
        #expect(armhf["finished_at"] as? String == "2025-06-01T03:05:01.000Z")
        #expect((armhf["matrix"] as? [String: String]) == ["arch": "armhf"])

        let failed = builds[2]
        #expect(failed["status"] as? String == "failed")
        #expect(failed["artifact"] is NSNull)
        #expect(failed["exit_code"] as? Int == 1)

        let never = builds[3]
        #expect(never["status"] as? String == "never-built")
        for key in keys.subtracting(["variant", "status"]) { #expect(never[key] is NSNull, "\(key)") }

        // The Codable types read it back too.
        let decoded = try JSONDecoder().decode(ProvenanceJSON.BuildList.self, from: Data(text.utf8))
        #expect(decoded.builds.count == 4)
    }

    @Test func runsAndShowJSONShapes() throws {
        let (store, ids, _folder) = try populated()
        _ = _folder
        let runsText = try ProvenanceReport.json(runs: try store.runs())
        let runs = try #require((try JSONSerialization.jsonObject(with: Data(runsText.utf8)) as? [String: Any])?["runs"] as? [[String: Any]])
        #expect(runs.count == 2)
        #expect(
            Set(runs[0].keys) == [
                "run_id", "uuid", "status", "started_at", "finished_at", "duration_seconds", "command_line", "manifest",
                "tool_version", "host", "pid", "parallelism", "counts", "fleet", "shard", "state_key_id", "merged_from", "merged_at",
            ])
        #expect((runs[0]["counts"] as? [String: Int]) == ["planned": 3, "built": 0, "up_to_date": 1, "failed": 1, "skipped": 1])
        #expect((runs[1]["manifest"] as? [String: String])?["path"] == "fleet.json")

        let build = try #require(try store.build(id: ids.zrhArm64First))
        let showText = try ProvenanceReport.json(build: build, inputs: try store.inputs(buildID: build.id!), run: nil)
        let show = try #require(try JSONSerialization.jsonObject(with: Data(showText.utf8)) as? [String: Any])
        #expect(Set(show.keys) == ["build", "run", "inputs"])
        #expect(show["run"] is NSNull)
        let inputs = try #require(show["inputs"] as? [[String: Any]])
        #expect(inputs.count == 5)
        for input in inputs { #expect(Set(input.keys) == ["role", "name", "digest", "digest_kind", "url", "certificate"]) }
        let certificate = try #require(inputs[0]["certificate"] as? [String: String])
        #expect(certificate["not_after"] == "2026-07-01T00:00:00.000Z")
        #expect(inputs[2]["digest_kind"] as? String == "hmac-sha256")
    }

    @Test func formatsDurationsSizesAndDates() {
        #expect(ProvenanceFormat.duration(0.25) == "250ms")
        #expect(ProvenanceFormat.duration(42.4) == "42s")
        #expect(ProvenanceFormat.duration(185.5) == "3m06s")
        #expect(ProvenanceFormat.duration(7_380) == "2h03m")
        #expect(ProvenanceFormat.size(812) == "812 B")
        #expect(ProvenanceFormat.size(2_786_918_400) == "2.6 GiB")
        #expect(ProvenanceFormat.grouped(2_786_918_400) == "2,786,918,400")
        #expect(ProvenanceFormat.iso8601(Date(timeIntervalSince1970: 1_748_743_200.9996)) == "2025-06-01T02:00:01.000Z")
        #expect(ProvenanceFormat.iso8601(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(ProvenanceReport.shellQuoted("build/images/a b.img") == "'build/images/a b.img'")
        #expect(ProvenanceReport.shellQuoted("build/images/a.img") == "build/images/a.img")
    }
}

extension String {
    /// Replaces random run UUIDs with a fixed placeholder for golden comparison.
    fileprivate func provenanceFixedUUIDs() -> String {
        replacingOccurrences(
            of: "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", with: "00000000-0000-0000-0000-000000000000",
            options: .regularExpression)
    }
}
