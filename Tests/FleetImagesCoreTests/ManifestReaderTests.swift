import Foundation
import Testing
@testable import FleetImagesCore

@Suite struct ManifestReaderTests {
    func read(_ json: String) -> (Manifest?, [Diagnostic]) {
        ManifestReader.read(data: Data(json.utf8), filePath: "/fleet/fleet.json")
    }

    static let minimal = """
    {"format": 1, "fleet": "f",
     "base_image": {"source": "base/b.img", "sha256": "\(String(repeating: "0", count: 64))", "arch": "arm64"},
     "builder": {"type": "inject"},
     "signing": {"private_key": "k.pem", "public_key": "p.pem"},
     "sites": [{"id": "a", "region": "eu-west-1"}]}
    """

    @Test func minimalManifestReads() throws {
        let (manifest, diagnostics) = read(Self.minimal)
        #expect(diagnostics.isEmpty)
        let m = try #require(manifest)
        #expect(m.fleet == "f" && m.sites.map(\.id) == ["a"] && m.output.directory == "build/images")
        #expect(m.baseImage.bootMount == "/boot/firmware")
        #expect(m.builder.timeoutSeconds == 7200)
    }

    @Test func unknownKeySuggestsTheKnownOne() {
        let json = Self.minimal.replacingOccurrences(of: "\"region\": \"eu-west-1\"", with: "\"regoin\": \"eu-west-1\"")
        let (manifest, diagnostics) = read(json)
        #expect(manifest == nil)
        #expect(diagnostics.map(\.description) == ["error: sites[0].regoin: unknown key \"regoin\"; did you mean \"region\"?"])
    }

    @Test func notJSONNamesThePlace() {
        let (_, diagnostics) = read("{\"format\": 1,,}")
        #expect(diagnostics.count == 1)
        #expect(diagnostics[0].description.hasPrefix("error: /fleet/fleet.json: not valid JSON"))
    }

    /// The issue's acceptance case: ten different mistakes, one run, all ten reported with their paths.
    @Test func tenMistakesAreAllReportedTogether() {
        let json = """
        {"format": 1, "fleet": "Demo Fleet",
         "base_image": {"source": "../outside.img", "sha256": "abc", "arch": "arm64"},
         "builder": {"type": "injekt"},
         "signing": {"private_key": "k.pem", "public_key": "p.pem"},
         "sites": [
           {"id": "Zurich", "region": "europe-1"},
           {"id": "b", "region": "eu-west-1", "wifi": {"ssid": "net", "country": "ch", "psk": "inline-secret"},
            "files": [{"source": "f", "destination": "etc/motd", "mode": "rw-r--r--"}]}
         ]}
        """
        let (manifest, diagnostics) = read(json)
        #expect(manifest == nil)
        let locations = diagnostics.map(\.location)
        #expect(locations == [
            "fleet", "base_image.source", "base_image.sha256", "builder.type",
            "sites[0].region", "sites[0].id",
            "sites[1].wifi.country", "sites[1].wifi.psk", "sites[1].files[0].destination", "sites[1].files[0].mode",
        ], "\(diagnostics.map(\.description).joined(separator: "\n"))")
        #expect(diagnostics.count == 10 && diagnostics.allSatisfy { $0.severity == .error })
        // The inline passphrase never appears in a message.
        #expect(!diagnostics.map(\.description).joined().contains("inline-secret"))
        #expect(diagnostics.first { $0.location == "builder.type" }!.message.contains("did you mean \"inject\""))
        #expect(diagnostics.first { $0.location == "sites[1].wifi.country" }!.message.contains("\"CH\""))
    }

    @Test func formatTwoIsRefused() {
        let (_, diagnostics) = read(Self.minimal.replacingOccurrences(of: "\"format\": 1", with: "\"format\": 2"))
        #expect(diagnostics.map(\.location) == ["format"])
    }

    @Test func inlinePassphraseNeedsExplicitPermission() throws {
        let site = "{\"id\": \"a\", \"region\": \"eu-west-1\", \"wifi\": {\"ssid\": \"n\", \"country\": \"CH\", \"psk\": \"abcdefgh\"}}"
        let base = Self.minimal.replacingOccurrences(of: "{\"id\": \"a\", \"region\": \"eu-west-1\"}", with: site)
        #expect(read(base).1.map(\.location) == ["sites[0].wifi.psk"])
        let allowed = base.replacingOccurrences(of: "\"format\": 1,", with: "\"format\": 1, \"allow_inline_psk\": true,")
        let (manifest, diagnostics) = read(allowed)
        #expect(diagnostics.isEmpty)
        #expect(manifest?.sites[0].settings.wifi.psk?.value == .inline(Secret("abcdefgh")))
    }

    @Test func packerOptionsOnInjectAndUnpinnedImages() {
        let inject = Self.minimal.replacingOccurrences(of: "{\"type\": \"inject\"}", with: "{\"type\": \"inject\", \"image\": \"x\"}")
        #expect(read(inject).1.map(\.location) == ["builder.image"])
        let latest = Self.minimal.replacingOccurrences(of: "{\"type\": \"inject\"}", with: "{\"type\": \"packer-docker\", \"image\": \"mkaczanowski/packer-builder-arm:latest\", \"template\": \"t.json\"}")
        let diagnostics = read(latest).1
        #expect(diagnostics.map(\.location) == ["builder.image"])
        #expect(diagnostics[0].message.contains("not pinned"))
    }

    @Test func namesAndRegions() {
        #expect(Names.isSafeName("zrh-lab-2"))
        #expect(!Names.isSafeName("-zrh") && !Names.isSafeName("zrh-") && !Names.isSafeName("Zrh") && !Names.isSafeName(""))
        #expect(!Names.isSafeName(String(repeating: "a", count: 64)))
        for region in ["eu-central-1", "us-east-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "il-central-1"] {
            #expect(Names.isRegion(region), "\(region)")
        }
        for region in ["europe-1", "eu-central", "EU-central-1", "eu--1", "e-central-1"] {
            #expect(!Names.isRegion(region), "\(region)")
        }
        #expect(Names.checkDataEndpoint("abc-ats.iot.eu-central-1.amazonaws.com", region: "eu-central-1") == nil)
        #expect(Names.checkDataEndpoint("abc-ats.iot.eu-west-1.amazonaws.com", region: "eu-central-1") != nil)
        #expect(Names.checkCredentialEndpoint("c1.credentials.iot.cn-north-1.amazonaws.com.cn", region: "cn-north-1") == nil)
        #expect(Names.checkRelativePath("a/../../b") != nil && Names.checkRelativePath("a/../b") == nil)
        #expect(Names.checkImagePath("/etc/../shadow") != nil && Names.checkImagePath("/home/pi/with space") == nil)
        #expect(Names.parseDuration("90m") == 5400 && Names.parseDuration("m") == nil && Names.parseDuration("-1s") == nil)
        #expect(Names.parseMode("0755") == 0o755 && Names.parseMode("0855") == nil)
        #expect(Names.isCountryCode("CH") && !Names.isCountryCode("XX") && !Names.isCountryCode("ch"))
    }

    @Test func wifiPassphraseRules() {
        #expect(WifiRules.checkPassphrase(Secret("12345678")) == nil)
        #expect(WifiRules.checkPassphrase(Secret("1234567")) != nil)
        #expect(WifiRules.checkPassphrase(Secret(String(repeating: "a", count: 63))) == nil)
        #expect(WifiRules.checkPassphrase(Secret(String(repeating: "a", count: 64))) == nil)
        #expect(WifiRules.checkPassphrase(Secret(String(repeating: "g", count: 64))) != nil)
        #expect(WifiRules.checkPassphrase(Secret("passwörd1")) != nil)
        // No message ever contains the passphrase.
        #expect(!(WifiRules.checkPassphrase(Secret("short")) ?? "").contains("short"))
    }

    @Test func suggestionDistance() {
        #expect(Suggestion.closest(to: "regoin", among: ["region", "iot"]) == "region")
        #expect(Suggestion.closest(to: "xyz", among: ["region", "iot"]) == nil)
        #expect(Suggestion.editDistance("ab", "ba") == 1)
    }
}
