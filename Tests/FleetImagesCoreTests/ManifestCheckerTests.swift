import Foundation
import Testing
@testable import FleetImagesCore

/// What `validate` checks beyond the manifest's shape: files, secrets, certificates, keys.
@Suite(.serialized) struct ManifestCheckerTests {
    func messages(_ outcome: FleetLoader.Outcome) -> String {
        outcome.diagnostics.map(\.description).joined(separator: "\n")
    }

    @Test func aSoundFleetHasNoProblems() throws {
        // With a login user: without one, `validate` warns that nobody can log in.
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        let outcome = fleet.load()
        #expect(outcome.diagnostics.isEmpty, "\(messages(outcome))")
        #expect(outcome.variants.map(\.id) == ["alpha", "beta"])
    }

    @Test func everyMissingOrBrokenReferenceIsReportedAtItsPath() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest { manifest in
            var sites = manifest["sites"] as! [[String: Any]]
            sites[0]["claim"] = ["certificate": "certs/nowhere.crt", "private_key": "certs/alpha/claim.private.pem.key"]
            sites[1]["wifi"] = ["ssid": "net", "psk_env": "BETA_PSK"]
            manifest["sites"] = sites
            manifest["signing"] = ["private_key": "keys/signing.key.pem", "public_key": "keys/missing.pub.pem"]
        }
        let outcome = fleet.load(environment: [:])
        let text = messages(outcome)
        #expect(outcome.hasErrors)
        #expect(text.contains("error: sites[0].claim.certificate: claim certificate certs/nowhere.crt does not exist"), "\(text)")
        #expect(text.contains("error: sites[1].wifi.psk_env: environment variable BETA_PSK is not set"), "\(text)")
        #expect(text.contains("error: signing.public_key: signing public key keys/missing.pub.pem does not exist"), "\(text)")
    }

    /// Shape mistakes do not hide missing files: one run reports both.
    @Test func missingFilesAreReportedAlongsideShapeMistakes() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest { manifest in
            manifest["fleet"] = "Bad Name"
            var sites = manifest["sites"] as! [[String: Any]]
            sites[1]["claim"] = ["certificate": "certs/nowhere.crt", "private_key": "certs/beta/claim.private.pem.key"]
            manifest["sites"] = sites
        }
        let outcome = fleet.load()
        #expect(outcome.manifest == nil)
        #expect(outcome.diagnostics.map(\.location) == ["fleet", "sites[1].claim.certificate"], "\(messages(outcome))")
    }

    @Test func passphraseRulesApplyToFilesAndVariablesWithoutShowingTheValue() throws {
        let fleet = try TestFleet()
        try fleet.write("certs/alpha/wifi.psk", "short\n")
        try fleet.writeManifest { manifest in
            var sites = manifest["sites"] as! [[String: Any]]
            sites[1]["wifi"] = ["ssid": "net", "psk_env": "BETA_PSK"]
            manifest["sites"] = sites
        }
        let outcome = fleet.load(environment: ["BETA_PSK": String(repeating: "x", count: 70)])
        let text = messages(outcome)
        #expect(text.contains("sites[0].wifi.psk_file: the passphrase has 5 characters"), "\(text)")
        #expect(text.contains("sites[1].wifi.psk_env: the passphrase has 70 characters"), "\(text)")
        #expect(!text.contains("short") && !text.contains("xxxxxxxx"))
    }

    @Test func certificateExpiryAndKeyMismatch() throws {
        let fleet = try TestFleet(sites: ["alpha", "beta", "gamma"])
        try fleet.makeClaim(site: "beta", days: 10)
        // gamma's certificate with alpha's key: a mismatch.
        try fleet.writeManifest(sites: ["alpha", "beta", "gamma"]) { manifest in
            var sites = manifest["sites"] as! [[String: Any]]
            sites[2]["claim"] = ["certificate": "certs/gamma/claim.pem.crt", "private_key": "certs/alpha/claim.private.pem.key"]
            manifest["sites"] = sites
        }
        let text = messages(fleet.load())
        #expect(text.contains("warning: sites[1].claim.certificate: claim certificate certs/beta/claim.pem.crt expires on"), "\(text)")
        #expect(text.contains("error: sites[2].claim.private_key: certs/alpha/claim.private.pem.key is not the private key of certs/gamma/claim.pem.crt"), "\(text)")
        // In 20 days beta's certificate has expired: an error.
        let later = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], now: Date().addingTimeInterval(20 * 86_400))
        #expect(messages(later).contains("error: sites[1].claim.certificate: claim certificate certs/beta/claim.pem.crt expired on"))
    }

    @Test func aFileMayNotReplaceWhatFleetImagesGeneratesNorEscapeThroughALink() throws {
        let fleet = try TestFleet()
        try fleet.write("outside-target", "x")
        let outside = try makeTemporaryDirectory() + "/secret"
        try Data("x".utf8).write(to: URL(fileURLWithPath: outside))
        try FileManager.default.createSymbolicLink(atPath: fleet.directory + "/variants/link", withDestinationPath: outside)
        try fleet.writeManifest { manifest in
            var defaults = manifest["defaults"] as! [String: Any]
            defaults["files"] = [
                ["source": "variants/common/config.yaml", "destination": "/etc/hostname"],
                ["source": "variants/link", "destination": "/etc/motd"],
            ]
            manifest["defaults"] = defaults
        }
        let text = messages(fleet.load())
        #expect(text.contains("defaults.files[0].destination: /etc/hostname is written by fleet-images"), "\(text)")
        #expect(text.contains("defaults.files[1].source: file variants/link resolves through a symbolic link to"), "\(text)")
    }

    /// Claim checks are reused for identical bytes, and expiry is still judged against now.
    @Test func claimCheckCacheIsUsedForIdenticalBytesOnly() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        let cachePath = fleet.directory + "/claim-checks.json"
        let secret = Digest.randomBytes(32)
        let cache = ClaimCheckCache(path: cachePath, secretKey: secret)
        #expect(!FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], claimCache: cache).hasErrors)
        try cache.save()
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cachePath))) as? [String: Any]
        #expect(stored?.count == 2)
        // Rewrite alpha's entry to say "the key does not match" and "expires in 10 days": the
        // checker must report both, proving it used the entry and judged the date against now.
        let alphaKey = try #require(cache.key(certificate: fleet.directory + "/certs/alpha/claim.pem.crt",
                                              privateKey: fleet.directory + "/certs/alpha/claim.private.pem.key"))
        cache.store(.init(notBefore: Date(timeIntervalSince1970: 0), notAfter: Date().addingTimeInterval(10 * 86_400), keyMatches: false), for: alphaKey)
        let text = messages(FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], claimCache: cache))
        #expect(text.contains("sites[0].claim.private_key: certs/alpha/claim.private.pem.key is not the private key"), "\(text)")
        #expect(text.contains("warning: sites[0].claim.certificate: claim certificate certs/alpha/claim.pem.crt expires on"), "\(text)")
        // New bytes (a new certificate) miss the cache and are checked for real.
        try fleet.makeClaim(site: "alpha", days: 400)
        #expect(!FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], claimCache: cache).hasErrors)
        // The file holds no secret: only HMAC keys and dates.
        let bytes = try String(contentsOfFile: cachePath, encoding: .utf8)
        #expect(!bytes.contains("BEGIN") && !bytes.contains("psk-of"))
    }

    @Test func signingKeyThatDoesNotMatchItsPublicKey() throws {
        let fleet = try TestFleet()
        try runTool("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", fleet.directory + "/keys/other.key.pem"])
        try runTool("openssl", ["pkey", "-in", fleet.directory + "/keys/other.key.pem", "-pubout", "-out", fleet.directory + "/keys/other.pub.pem"])
        try fleet.writeManifest { $0["signing"] = ["private_key": "keys/signing.key.pem", "public_key": "keys/other.pub.pem"] }
        #expect(messages(fleet.load()).contains("error: signing.public_key: keys/other.pub.pem is not the public half of keys/signing.key.pem"))
    }

    @Test func onlySelectsVariantsAndSaysWhenNothingMatches() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        #expect(fleet.load(only: "b*").variants.map(\.id) == ["beta"])
        #expect(messages(fleet.load(only: "zzz*")).contains("error: --only: \"zzz*\" matches none of the 2 variants"))
    }

    /// `plan` never shows a secret: not the passphrase, not key bytes; secret inputs are HMACs.
    @Test func planOutputHoldsNoSecret() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        let outcome = fleet.load()
        let manifest = try #require(outcome.manifest)
        let key = Digest.randomBytes(32)
        let plan = try Planner(manifest: manifest, environment: [:], secretKey: key).plan(outcome.variants, os: .testBookworm)
        let outputs = [PlanReport.text(plan), try PlanReport.json(plan)]
        for site in ["alpha", "beta"] {
            let keyBody = try String(contentsOfFile: fleet.directory + "/certs/\(site)/claim.private.pem.key", encoding: .utf8)
                .split(separator: "\n").filter { !$0.hasPrefix("-----") }
            for output in outputs {
                #expect(!output.contains("psk-of-\(site)-secret"))
                for line in keyBody { #expect(!output.contains(line)) }
            }
        }
        // The secret inputs are there, as keyed digests that change with the key.
        let keyInput = try #require(plan.variants[0].inputs.first { $0.role == "claim-private-key" })
        #expect(keyInput.algorithm == "hmac-sha256")
        let other = try Planner(manifest: manifest, environment: [:], secretKey: Digest.randomBytes(32)).plan(outcome.variants, os: .testBookworm)
        #expect(other.variants[0].inputs.first { $0.role == "claim-private-key" }?.digest != keyInput.digest)
        // The same inputs and key give the same digest; a changed certificate changes only that site's.
        let again = try Planner(manifest: manifest, environment: [:], secretKey: key).plan(outcome.variants, os: .testBookworm)
        #expect(again.variants.map(\.inputsDigest) == plan.variants.map(\.inputsDigest))
        try fleet.makeClaim(site: "beta", days: 400)
        let changed = try Planner(manifest: manifest, environment: [:], secretKey: key).plan(outcome.variants, os: .testBookworm)
        #expect(changed.variants[0].inputsDigest == plan.variants[0].inputsDigest)
        #expect(changed.variants[1].inputsDigest != plan.variants[1].inputsDigest)
    }
}
