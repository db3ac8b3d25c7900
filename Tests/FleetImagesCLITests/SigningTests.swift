import Foundation
import Testing

extension CLITests {
    @Suite struct Signing {
        /// 11. verify: tampered copies fail naming the check; the untouched copy passes; sign with a keygen key.
        @Test func verifyDetectsTamperingAndSignUsesAnyKey() throws {
            let shared = try SharedDemoBuild.get()
            let fleet = shared.fleet
            let source = fleet.output + "/zrh-lab/latest"
            let scratch = NSTemporaryDirectory() + "fleet-images-cli-verify-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            func copy(_ name: String) throws -> String {
                let folder = scratch + "/" + name
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for suffix in OutputCheck.sidecars {
                    try tool("cp", ["--sparse=always", source + "/zrh-lab" + suffix, folder + "/zrh-lab" + suffix])
                }
                return folder + "/zrh-lab.img"
            }
            let untouched = try copy("untouched")
            let good = try fleet.cli(["verify", untouched])
            #expect(good.exited && good.status == 0, "\(good)")

            let size = try FileManager.default.attributesOfItem(atPath: untouched)[.size] as! Int
            for (name, offset) in [("first", 0), ("middle", size / 2 + 12345), ("last", size - 1)] {
                let image = try copy(name)
                try flipByte(in: image, at: offset)
                let outcome = try fleet.cli(["verify", image])
                #expect(outcome.exited && outcome.status == 1, "\(name) byte: \(outcome)")
                #expect(outcome.stderr.contains("FAILED") && outcome.stderr.contains("SHA-256"), "\(name) byte: the failed check is not named: \(outcome.stderr)")
                let openssl = try run("openssl", ["dgst", "-sha256", "-verify", fleet.directory + "/keys/demo-signing.pub.pem", "-signature", image + ".sig", image])
                #expect(openssl.status != 0, "openssl accepts the tampered copy: the tampering did not change the image")
            }
            let truncated = try copy("truncated")
            #expect(truncate(truncated, off_t(size - 4096)) == 0)
            let short = try fleet.cli(["verify", truncated])
            #expect(short.status == 1 && short.stderr.lowercased().contains("size"), "truncated: \(short)")

            // A fresh key from keygen, then sign and verify with it.
            let prefix = scratch + "/fresh-signing"
            let keygen = try fleet.cli(["keygen", "--out", prefix])
            #expect(keygen.status == 0, "\(keygen)")
            #expect(try tool("stat", ["-c", "%a", prefix + ".key.pem"]).trimmingCharacters(in: .whitespacesAndNewlines) == "600")
            let resigned = try copy("resigned")
            let sign = try fleet.cli(["sign", resigned, "--key", prefix + ".key.pem"])
            #expect(sign.status == 0, "\(sign)")
            let verified = try fleet.cli(["verify", resigned, "--key", prefix + ".pub.pem"])
            #expect(verified.exited && verified.status == 0, "\(verified)")
            let openssl = try run("openssl", ["dgst", "-sha256", "-verify", prefix + ".pub.pem", "-signature", resigned + ".sig", resigned])
            #expect(openssl.stdout.contains("Verified OK"), "\(openssl)")
            let withOldKey = try fleet.cli(["verify", resigned])
            #expect(withOldKey.status == 1, "the demo key accepts a signature by another key: \(withOldKey)")
            #expect(try fleet.cli(["keygen", "--out", prefix]).status != 0, "keygen overwrote an existing key")
        }

        /// 12. prune --keep 1 after two forced builds.
        @Test func pruneKeepsTheLatestAndMarksRows() throws {
            let fleet = try DemoFleet("prune", edit: keepSites(2))
            defer { fleet.remove() }
            let variants = ["gva-plant", "zrh-lab"]
            #expect(try fleet.cli(["build"]).status == 0)
            for _ in 0..<2 {
                let forced = try fleet.cli(["build", "--force", "--json"])
                #expect(forced.status == 0, "\(forced)")
                #expect(ids(statuses(try parseJSON(forced.stdout)), "built") == variants)
            }
            let publicKey = fleet.directory + "/keys/demo-signing.pub.pem"
            let before = try OutputCheck.audit(fleet.output, publicKey: publicKey, verify: false)
            #expect(before.problems.isEmpty && before.folders.mapValues(\.count) == ["gva-plant": 3, "zrh-lab": 3], "\(before)")
            var latest: [String: String] = [:]
            for variant in variants {
                latest[variant] = try FileManager.default.destinationOfSymbolicLink(atPath: fleet.output + "/\(variant)/latest")
            }

            let prune = try fleet.cli(["prune", "--keep", "1"])
            #expect(prune.status == 0, "\(prune)")
            let after = try OutputCheck.audit(fleet.output, publicKey: publicKey)
            #expect(after.problems.isEmpty, "\(after.problems)")
            for variant in variants {
                #expect(after.folders[variant]?.map(\.path) == [fleet.output + "/\(variant)/" + latest[variant]!], "\(variant): \(after.folders[variant] ?? [])")
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fleet.output + "/\(variant)/latest") == latest[variant])
            }
            let builds = try fleet.json(["ls", "--all"])["builds"] as? [[String: Any]] ?? []
            let pruned = builds.filter { $0["status"] as? String == "pruned" }
            #expect(pruned.count == 4, "ls --all: \(builds.map { "\($0["variant"] ?? "?") \($0["status"] ?? "?")" })")
            let removed = Set(before.folders.values.joined().map(\.image)).subtracting(after.folders.values.joined().map(\.image))
            #expect(Set(pruned.compactMap { ($0["artifact"] as? [String: Any])?["path"] as? String }) == removed)
            let again = try fleet.cli(["prune", "--keep", "1"])
            #expect(again.status == 0 && again.stdout.contains("0 images pruned"), "\(again)")
        }
    }
}

/// Inverts one byte of a file in place.
func flipByte(in path: String, at offset: Int) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    let byte = try handle.read(upToCount: 1) ?? Data([0])
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: Data([~byte[0]]))
}
