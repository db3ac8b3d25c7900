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
            if let user = v.user {
                let hash: String = switch user.passwordHash {
                case .environment(let name)?: "env:\(name)"
                case .file(let path)?: "file:\(path)"
                case nil: "none"
                }
                lines.append("  user name=\(user.name) (from \(user.namePath)) hash=\(hash) (from \(user.passwordHashPath?.description ?? "-"))")
            } else {
                lines.append("  user none")
            }
            if let ssh = v.ssh {
                lines.append("  ssh password_authentication=\(ssh.passwordAuthentication) keys=\(ssh.authorizedKeys.map { "\($0.file) (from \($0.path))" }.joined(separator: ", "))")
            } else {
                lines.append("  ssh none")
            }
            lines.append("  timezone=\(v.timezone ?? "-") keyboard=\(v.keyboard ?? "-") locale=\(v.locale ?? "-") hostname_uses_serial=\(v.hostnameUsesSerial)")
            switch v.firstBoot?.mode {
            case .unit(let command, let retry)?: lines.append("  first_boot command=\(command.joined(separator: " ")) retry=\(retry)s (from \(v.firstBoot!.path))")
            case .legacyHomePi?: lines.append("  first_boot layout=legacy-home-pi (from \(v.firstBoot!.path))")
            case nil: lines.append("  first_boot none")
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
        // {serial} stays in the hostname: the device fills it in at first boot.
        #expect(byID["iad-pi4-stable"]?.hostname == "iad-pi4-{serial}")
        #expect(byID["iad-pi4-stable"]?.hostnameUsesSerial == true && byID["iad-pi4-beta"]?.hostnameUsesSerial == false)
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

    /// The device settings merge like `wifi`: each field from the most specific layer that sets it.
    @Test func deviceSettingsMergeFieldByField() throws {
        let (variants, diagnostics) = Expansion.expand(try Self.fixture("precedence.json"))
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let byID = Dictionary(uniqueKeysWithValues: variants.map { ($0.id, $0) })
        // iad replaces only the hash source; the name stays the default's, until pi5 renames the user.
        let iad = try #require(byID["iad-pi4-stable"])
        #expect(iad.user?.name == "fleet" && iad.user?.passwordHash == .environment("IAD_PASSWORD_HASH"))
        #expect(iad.user?.namePath.description == "defaults.user.name")
        #expect(byID["iad-pi5-stable"]?.user?.name == "pi5user" && byID["iad-pi5-stable"]?.user?.passwordHash == .environment("IAD_PASSWORD_HASH"))
        #expect(byID["zrh-pi4-stable"]?.user?.passwordHash == .file("certs/common/fleet.passwd"))
        // zrh turns password logins on and keeps the default keys; with keys and nothing said, they are off.
        #expect(byID["zrh-pi4-stable"]?.ssh?.passwordAuthentication == true)
        #expect(byID["zrh-pi4-stable"]?.ssh?.authorizedKeys.map(\.file) == ["keys/ops.pub"])
        #expect(iad.ssh?.passwordAuthentication == false)
        #expect(byID["iad-pi4-beta"]?.ssh?.authorizedKeys.map(\.path.description) == ["matrix.channel[1].set.ssh.authorized_keys[0]", "matrix.channel[1].set.ssh.authorized_keys[1]"])
        #expect(iad.timezone == "America/New_York" && iad.keyboard == "us" && iad.locale == "en_US.UTF-8")
        #expect(byID["zrh-pi5-stable"]?.locale == "de_CH" && byID["zrh-pi5-stable"]?.timezone == "Europe/Zurich")
        // zrh changes only the retry of the default command; beta's layout replaces the command.
        #expect(byID["zrh-pi4-stable"]?.firstBoot?.mode == .unit(command: ["/usr/local/lib/fleet-images/provision.sh", "--site"], retrySeconds: 600))
        #expect(iad.firstBoot?.mode == .unit(command: ["/usr/local/lib/fleet-images/provision.sh", "--site"], retrySeconds: 300))
        #expect(byID["zrh-pi4-beta"]?.firstBoot?.mode == .legacyHomePi)
    }

    @Test func serialHostnameMustBeValidWithASixteenDigitSerial() throws {
        var manifest = try Self.fixture("precedence.json")
        manifest.matrix = []
        // 47 + 16 characters = 63: just fits.
        let prefix = String(repeating: "a", count: 47 - "zrh".count)
        manifest.defaults.hostname = Located("{site}\(prefix){serial}", at: JSONPath.root.key("defaults").key("hostname"))
        manifest.sites[1].settings.hostname = nil
        let (fits, fitting) = Expansion.expand(manifest)
        #expect(fitting.isEmpty, "\(fitting)")
        #expect(fits.first?.hostname == "zrh\(prefix){serial}")
        manifest.defaults.hostname = Located("{site}\(prefix)x{serial}", at: JSONPath.root.key("defaults").key("hostname"))
        let (_, tooLong) = Expansion.expand(manifest)
        #expect(tooLong.contains { $0.location == "defaults.hostname" && $0.message.contains("with a 16-digit serial") && $0.message.contains("zrh") }, "\(tooLong)")
    }

    @Test func retryWithoutCommandIsAnError() throws {
        var manifest = try Self.fixture("precedence.json")
        manifest.matrix = []
        manifest.defaults.hostname = nil
        manifest.sites[1].settings.hostname = nil
        manifest.defaults.firstBoot.command = nil
        let (_, diagnostics) = Expansion.expand(manifest)
        #expect(diagnostics.map(\.location) == ["sites[0].first_boot.retry"], "\(diagnostics)")
    }

    @Test func passwordHashWithoutUserNameIsAnError() throws {
        var manifest = try Self.fixture("precedence.json")
        manifest.matrix = []
        manifest.defaults.hostname = nil
        manifest.sites[1].settings.hostname = nil
        manifest.defaults.user.name = nil
        let (variants, diagnostics) = Expansion.expand(manifest)
        #expect(diagnostics.map(\.location) == ["sites[0].user.name", "sites[1].user.name"], "\(diagnostics)")
        #expect(variants.allSatisfy { $0.user == nil })
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
