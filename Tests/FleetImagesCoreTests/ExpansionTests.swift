import Foundation
import Testing
@testable import FleetImagesCore

@Suite struct ExpansionTests {
    static func fixture(_ name: String) throws -> Manifest {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/expansion/\(name)")
        let (manifest, diagnostics) = ManifestReader.read(data: try Data(contentsOf: url), filePath: "/fleet/fleet.json")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(manifest)
    }

    /// A readable, complete rendering of the expansion, for golden comparison.
    static func render(_ variants: [Variant]) -> String {
        var lines: [String] = []
        for v in variants {
            lines.append("\(v.id)")
            lines.append("  site=\(v.site) axes=\(v.axes.map { "\($0.axis)=\($0.value)" }.joined(separator: ","))")
            lines.append("  region=\(v.region) hostname=\(v.hostname)")
            lines.append("  iot data=\(v.iot.dataEndpoint) credential=\(v.iot.credentialEndpoint) role_alias=\(v.iot.roleAlias) template=\(v.iot.provisioningTemplate)")
            lines.append("  claim cert=\(v.claim.certificate) key=\(v.claim.privateKey)")
            if let wifi = v.wifi {
                let psk: String = switch wifi.psk {
                case .environment(let name): "env:\(name)"
                case .file(let path): "file:\(path)"
                case .inline: "inline"
                }
                lines.append("  wifi ssid=\(wifi.ssid) country=\(wifi.country) psk=\(psk) (from \(wifi.pskPath)) hidden=\(wifi.hidden)")
            } else {
                lines.append("  wifi none")
            }
            for file in v.files {
                lines.append("  file \(file.destination) <- \(file.source) mode=\(String(file.mode, radix: 8)) owner=\(file.uid):\(file.gid) (from \(file.path))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func precedenceAndMatrixMultiplicationMatchGolden() throws {
        let manifest = try Self.fixture("precedence.json")
        let overlay = [FileEntry(source: "variants/iad/etc/issue", destination: "/etc/issue", mode: 0o644, uid: 0, gid: 0, ownerGiven: false, path: JSONPath.root.key("sites").index(1))]
        let (variants, diagnostics) = Expansion.expand(manifest, overlays: ["iad": overlay])
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        // 2 sites × 2 boards × 2 channels, axes in name order (board before channel).
        #expect(variants.map(\.id) == [
            "zrh-pi4-stable", "zrh-pi4-beta", "zrh-pi5-stable", "zrh-pi5-beta",
            "iad-pi4-stable", "iad-pi4-beta", "iad-pi5-stable", "iad-pi5-beta",
        ])
        if let mismatch = goldenMismatch(Self.render(variants), name: "expansion/precedence.txt") {
            Issue.record(Comment(rawValue: mismatch))
        }
    }

    @Test func siteOverridesDefaultsAndAxisOverridesSite() throws {
        let (variants, _) = Expansion.expand(try Self.fixture("precedence.json"))
        let byID = Dictionary(uniqueKeysWithValues: variants.map { ($0.id, $0) })
        // defaults < site: zrh keeps the default region, iad sets its own.
        #expect(byID["zrh-pi4-stable"]?.region == "eu-central-1")
        #expect(byID["iad-pi4-stable"]?.region == "us-east-1")
        // Objects merge per field: iad overrides the template but keeps the default role alias.
        #expect(byID["iad-pi4-stable"]?.iot.provisioningTemplate == "UsTemplate")
        #expect(byID["iad-pi4-stable"]?.iot.roleAlias == "DefaultRoleAlias")
        // site < axis value: the beta channel replaces the role alias and the hostname pattern, even iad's own.
        #expect(byID["iad-pi4-beta"]?.iot.roleAlias == "BetaRoleAlias")
        #expect(byID["iad-pi4-beta"]?.hostname == "iad-beta-pi4")
        #expect(byID["iad-pi4-stable"]?.hostname == "iad-pi4")
        // The pi5 value's SSID beats the site's.
        #expect(byID["zrh-pi5-stable"]?.wifi?.ssid == "pi5-net")
        #expect(byID["zrh-pi4-stable"]?.wifi?.ssid == "zrh-net")
        // The psk source of the more specific layer wins; country comes from defaults unless set.
        #expect(byID["zrh-pi4-stable"]?.wifi?.psk == .file("certs/zrh/wifi.psk"))
        #expect(byID["iad-pi4-stable"]?.wifi?.psk == .environment("DEFAULT_PSK"))
        #expect(byID["iad-pi4-stable"]?.wifi?.country == "US")
        // Files accumulate; the site's /etc/motd replaces the default one in place.
        let zrhFiles = byID["zrh-pi5-stable"]!.files
        #expect(zrhFiles.map(\.destination) == ["/home/pi/config.yaml", "/etc/motd", "/boot/firmware/config.txt"])
        #expect(zrhFiles[1].source == "variants/zrh-motd" && zrhFiles[1].mode == 0o640)
    }

    @Test func expansionIsDeterministic() throws {
        let manifest = try Self.fixture("precedence.json")
        let first = Self.render(Expansion.expand(manifest).variants)
        for _ in 0..<5 { #expect(Self.render(Expansion.expand(manifest).variants) == first) }
    }

    @Test func missingRequiredValueIsReportedOncePerSiteNotPerCombination() throws {
        var manifest = try Self.fixture("precedence.json")
        manifest.defaults.region = nil
        let (variants, diagnostics) = Expansion.expand(manifest)
        #expect(variants.map(\.site).allSatisfy { $0 == "iad" })
        #expect(diagnostics.map(\.description) == ["error: sites[0].region: required; set it in this site or in \"defaults\""])
    }

    @Test func collidingVariantIDsAreErrors() throws {
        var manifest = try Self.fixture("precedence.json")
        manifest.matrix = []
        manifest.sites.append(SiteEntry(id: "zrh", settings: manifest.sites[0].settings, path: JSONPath.root.key("sites").index(2)))
        manifest.defaults.hostname = nil
        let (_, diagnostics) = Expansion.expand(manifest)
        #expect(diagnostics.contains { $0.location == "sites[2].id" && $0.message.contains("produced twice") })
    }

    @Test func hostnamePatternProblems() throws {
        #expect(throws: Never.self) { try Expansion.substitute("{site}-x", values: ["site": "a"]).get() }
        #expect((try? Expansion.substitute("{site}-{nope}", values: ["site": "a"]).get()) == nil)
        #expect((try? Expansion.substitute("{site", values: ["site": "a"]).get()) == nil)
        #expect((try? Expansion.substitute("site}", values: ["site": "a"]).get()) == nil)
        #expect(try Expansion.substitute("{fleet}-{site}", values: ["site": "a", "fleet": "f"]).get() == "f-a")
    }
}
