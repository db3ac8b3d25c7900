import Foundation
import Testing
@testable import FleetImagesCore

/// The device contract's manifest settings (issue 10): `user`, `ssh`, `timezone`, `keyboard`,
/// `locale`, `first_boot`, `base_image.os` and `{serial}`, as the reader takes or refuses them.
@Suite struct DeviceSettingsReaderTests {
    /// `minimal` with `defaults` replaced by `defaults` (a JSON object's body).
    static func manifest(defaults: String, baseImageExtra: String = "") -> String {
        """
        {"format": 1, "fleet": "f",
         "base_image": {"source": "base/b.img", "sha256": "\(String(repeating: "0", count: 64))", "arch": "arm64"\(baseImageExtra)},
         "builder": {"type": "inject"},
         "signing": {"private_key": "k.pem", "public_key": "p.pem"},
         "defaults": {\(defaults)},
         "sites": [{"id": "a", "region": "eu-west-1",
                    "iot": {"data_endpoint": "p-ats.iot.eu-west-1.amazonaws.com", "credential_endpoint": "p.credentials.iot.eu-west-1.amazonaws.com",
                            "role_alias": "R", "provisioning_template": "T"},
                    "claim": {"certificate": "c.crt", "private_key": "c.key"}}]}
        """
    }

    func read(_ json: String) -> (Manifest?, [Diagnostic]) {
        ManifestReader.read(data: Data(json.utf8), filePath: "/fleet/fleet.json")
    }

    @Test func everyDeviceSettingIsRead() throws {
        let json = Self.manifest(defaults: """
            "user": {"name": "fleet", "password_hash_file": "certs/fleet.passwd"},
            "ssh": {"authorized_keys": ["keys/a.pub", "keys/b.pub"], "password_authentication": false},
            "timezone": "America/Argentina/Buenos_Aires", "keyboard": "us,de", "locale": "ca_ES.UTF-8@valencia",
            "hostname": "{fleet}-{site}-{serial}",
            "first_boot": {"command": ["/usr/local/lib/fleet-images/provision.sh", "--once"], "retry": "90s"}
            """, baseImageExtra: #", "os": {"codename": "trixie", "init_format": "cloud-init"}"#)
        let (manifest, diagnostics) = read(json)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let m = try #require(manifest)
        let d = m.defaults
        #expect(d.user.name?.value == "fleet" && d.user.passwordHash?.value == .file("certs/fleet.passwd"))
        #expect(d.user.passwordHash?.path.description == "defaults.user.password_hash_file")
        #expect(d.ssh.authorizedKeys?.value == ["keys/a.pub", "keys/b.pub"] && d.ssh.passwordAuthentication?.value == false)
        #expect(d.timezone?.value == "America/Argentina/Buenos_Aires" && d.keyboard?.value == "us,de" && d.locale?.value == "ca_ES.UTF-8@valencia")
        #expect(d.firstBoot.command?.value == ["/usr/local/lib/fleet-images/provision.sh", "--once"] && d.firstBoot.retrySeconds?.value == 90)
        #expect(m.baseImage.os?.value == OSOverride(codename: "trixie", initFormat: .cloudInit))
        let (variants, expansion) = Expansion.expand(m)
        #expect(expansion.isEmpty, "\(expansion)")
        #expect(variants.first?.hostname == "f-a-{serial}")
        #expect(variants.first?.firstBoot?.mode == .unit(command: ["/usr/local/lib/fleet-images/provision.sh", "--once"], retrySeconds: 90))
    }

    @Test func legacyLayoutAndEnvironmentHashAreRead() throws {
        let (manifest, diagnostics) = read(Self.manifest(defaults: #""user": {"name": "_svc-1", "password_hash_env": "FLEET_HASH"}, "first_boot": {"layout": "legacy-home-pi"}"#,
                                                         baseImageExtra: #", "os": {"codename": "bookworm"}"#))
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let m = try #require(manifest)
        #expect(m.defaults.user.passwordHash?.value == .environment("FLEET_HASH"))
        #expect(m.baseImage.os?.value == OSOverride(codename: "bookworm", initFormat: nil))
        #expect(Expansion.expand(m).variants.first?.firstBoot?.mode == .legacyHomePi)
    }

    /// Each bad value is refused at its own JSON path, and only there.
    @Test(arguments: [
        (#""user": {"name": "root"}"#, "defaults.user.name"),
        (#""user": {"name": "Fleet"}"#, "defaults.user.name"),
        (#""user": {"name": "1fleet"}"#, "defaults.user.name"),
        (#""user": {"name": "a23456789012345678901234567890123"}"#, "defaults.user.name"),
        (#""user": {"name": "fleet", "password": "x"}"#, "defaults.user.password"),
        (#""user": {"name": "f", "password_hash_file": "h", "password_hash_env": "H"}"#, "defaults.user.password_hash_file"),
        (#""user": {"name": "f", "password_hash_file": "../h"}"#, "defaults.user.password_hash_file"),
        (#""user": {"name": "f", "password_hash_env": "1H"}"#, "defaults.user.password_hash_env"),
        (#""ssh": {"authorized_keys": "keys/a.pub"}"#, "defaults.ssh.authorized_keys"),
        (#""ssh": {"authorized_keys": ["keys/a.pub", "/etc/key.pub"]}"#, "defaults.ssh.authorized_keys[1]"),
        (#""ssh": {"password_authentication": "no"}"#, "defaults.ssh.password_authentication"),
        (#""timezone": "UTC""#, "defaults.timezone"),
        (#""timezone": "Europe/Zürich""#, "defaults.timezone"),
        (#""timezone": "Europe/../etc""#, "defaults.timezone"),
        (#""keyboard": "CH""#, "defaults.keyboard"),
        (#""keyboard": "c""#, "defaults.keyboard"),
        (#""locale": "de-CH.UTF-8""#, "defaults.locale"),
        (#""locale": "de_CH.utf8""#, "defaults.locale"),
        (#""first_boot": {"command": []}"#, "defaults.first_boot.command"),
        (#""first_boot": {"command": ["provision.sh"]}"#, "defaults.first_boot.command[0]"),
        (#""first_boot": {"command": ["/p.sh", "a\nb"]}"#, "defaults.first_boot.command[1]"),
        (#""first_boot": {"command": ["/p.sh"], "retry": "5 minutes"}"#, "defaults.first_boot.retry"),
        (#""first_boot": {"command": ["/p.sh"], "layout": "legacy-home-pi"}"#, "defaults.first_boot.layout"),
        (#""first_boot": {"layout": "legacy-home-pi", "retry": "5m"}"#, "defaults.first_boot.retry"),
        (#""first_boot": {"layout": "home-pi"}"#, "defaults.first_boot.layout"),
        (#""first_boot": {}"#, "defaults.first_boot"),
        (#""files": [{"source": "s", "destination": "/etc/{serial}"}]"#, "defaults.files[0].destination"),
        (#""first_boot": {"command": ["/p.sh", "--name={serial}"]}"#, "defaults.first_boot.command[1]"),
    ])
    func badDeviceSettingIsRefusedAtItsPath(_ defaults: String, _ location: String) {
        let (manifest, diagnostics) = read(Self.manifest(defaults: defaults))
        #expect(manifest == nil)
        #expect(diagnostics.map(\.location) == [location], "\(diagnostics.map(\.description))")
        #expect(diagnostics.allSatisfy { $0.severity == .error && !$0.message.isEmpty })
    }

    @Test(arguments: [
        (#", "os": {"codename": "bullseye"}"#, "base_image.os.codename"),
        (#", "os": {"init_format": "userconf"}"#, "base_image.os.codename"),
        (#", "os": {"codename": "trixie", "init_format": "cloudinit"}"#, "base_image.os.init_format"),
        (#", "os": "trixie""#, "base_image.os"),
    ])
    func badOSOverrideIsRefusedAtItsPath(_ extra: String, _ location: String) {
        let (manifest, diagnostics) = read(Self.manifest(defaults: "", baseImageExtra: extra))
        #expect(manifest == nil)
        #expect(diagnostics.map(\.location) == [location], "\(diagnostics.map(\.description))")
    }

    @Test func rootUserGetsAnExplanation() {
        let (_, diagnostics) = read(Self.manifest(defaults: #""user": {"name": "root"}"#))
        #expect(diagnostics.first?.message.contains("cannot be root") == true)
    }

    @Test func serialOutsideHostnameNamesThePath() {
        let (_, diagnostics) = read(Self.manifest(defaults: #""iot": {"role_alias": "x{serial}"}"#))
        #expect(diagnostics.contains { $0.location == "defaults.iot.role_alias" && $0.message.contains("{serial} is only resolved in \"hostname\"") }, "\(diagnostics)")
    }
}

@Suite struct NamesDeviceTests {
    @Test func shapes() {
        #expect(Names.isLinuxUserName("fleet") && Names.isLinuxUserName("_x") && Names.isLinuxUserName("a-b_9"))
        #expect(!Names.isLinuxUserName("") && !Names.isLinuxUserName("-a") && !Names.isLinuxUserName("a.b") && !Names.isLinuxUserName(String(repeating: "a", count: 33)))
        #expect(Names.isLinuxUserName(String(repeating: "a", count: 32)))
        #expect(Names.isTimezone("Europe/Zurich") && Names.isTimezone("Etc/GMT+1") && Names.isTimezone("America/Port-au-Prince"))
        #expect(!Names.isTimezone("Zurich") && !Names.isTimezone("/Europe/Zurich") && !Names.isTimezone("Europe//Zurich") && !Names.isTimezone("Europe/Zurich "))
        #expect(Names.isKeyboardLayout("ch") && Names.isKeyboardLayout("us,de") && !Names.isKeyboardLayout("us,") && !Names.isKeyboardLayout("abcdefghi"))
        #expect(Names.isLocale("de_CH.UTF-8") && Names.isLocale("en_GB") && Names.isLocale("ast_ES.UTF-8") && Names.isLocale("sr_RS@latin"))
        #expect(!Names.isLocale("de_CH.ISO-8859-1") && !Names.isLocale("de") && !Names.isLocale("DE_ch") && !Names.isLocale("de_CH@"))
    }
}

/// What `validate` checks of the device settings beyond their shape: the hash, the keys, the
/// first-boot program's owner, and whether anyone can log in at all.
@Suite(.serialized) struct DeviceSettingsCheckerTests {
    func messages(_ outcome: FleetLoader.Outcome) -> String {
        outcome.diagnostics.map(\.description).joined(separator: "\n")
    }

    /// A fleet whose defaults log in as `fleet` with a real yescrypt hash and an ed25519 key.
    static func loginFleet(_ edit: @escaping (inout [String: Any]) -> Void = { _ in }) throws -> TestFleet {
        let fleet = try TestFleet()
        let hash = try runTool("mkpasswd", ["-m", "yescrypt", "correct horse"])
        try fleet.write("certs/common/fleet.passwd", hash, mode: 0o600)
        try FileManager.default.createDirectory(atPath: fleet.directory + "/keys/ops", withIntermediateDirectories: true)
        try runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", fleet.directory + "/keys/ops/id"])
        try fleet.writeManifest { manifest in
            var defaults = manifest["defaults"] as! [String: Any]
            defaults["user"] = ["name": "fleet", "password_hash_file": "certs/common/fleet.passwd"]
            defaults["ssh"] = ["authorized_keys": ["keys/ops/id.pub"]]
            manifest["defaults"] = defaults
            edit(&manifest)
        }
        return fleet
    }

    static func editDefaults(_ manifest: inout [String: Any], _ body: (inout [String: Any]) -> Void) {
        var defaults = manifest["defaults"] as! [String: Any]
        body(&defaults)
        manifest["defaults"] = defaults
    }

    @Test func aFleetWithALoginHasNoProblems() throws {
        let fleet = try Self.loginFleet()
        let outcome = fleet.load()
        #expect(outcome.diagnostics.isEmpty, "\(messages(outcome))")
        #expect(outcome.variants.first?.user?.passwordHash == .file("certs/common/fleet.passwd"))
    }

    @Test func sha512AndYescryptHashesFromTheEnvironmentAreAccepted() throws {
        let fleet = try Self.loginFleet { manifest in
            Self.editDefaults(&manifest) { $0["user"] = ["name": "fleet", "password_hash_env": "FLEET_HASH"] }
        }
        for hash in [try runTool("openssl", ["passwd", "-6", "pw"]), try runTool("mkpasswd", ["-m", "sha-512", "-R", "10000", "pw"]),
                     try runTool("mkpasswd", ["-m", "yescrypt", "pw"])] {
            let value = hash.trimmingCharacters(in: .newlines)
            let outcome = fleet.load(environment: ["FLEET_HASH": value])
            #expect(outcome.diagnostics.isEmpty, "\(value.prefix(3)): \(messages(outcome))")
        }
        #expect(messages(fleet.load()).contains("error: defaults.user.password_hash_env: environment variable FLEET_HASH is not set"))
    }

    /// A plain password or a weak or mangled hash is refused, and the value never appears.
    @Test(arguments: [
        ("correct horse battery", "not a crypt hash"),
        ("hunter2hunter2", "not a crypt hash"),
        ("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "crypt scheme $1$"),
        ("$5$saltsalt$BKpvSY5k3kE4f8mOfgbdUzzzzzzzzzzzzzzzzzzzzzz", "crypt scheme $5$"),
        ("$6$saltsalt$tooShort", "SHA-512 crypt hash is malformed"),
        ("$y$j9T$salt$tooShort", "yescrypt hash is malformed"),
        ("$y$j9T$mylmkUbmuQVkkpAWa1SYF1$Cf75bUp/wOh8xDdWZC32xja.TtgYkgmWMxtZmsHcu91:extra", "colon"),
        ("", "empty"),
    ])
    func badPasswordHashIsRefusedWithoutShowingIt(_ value: String, _ expected: String) throws {
        let fleet = try Self.loginFleet()
        try fleet.write("certs/common/fleet.passwd", value + "\n", mode: 0o600)
        let outcome = fleet.load()
        let text = messages(outcome)
        #expect(outcome.hasErrors)
        #expect(text.contains("error: defaults.user.password_hash_file: ") && text.contains(expected), "\(text)")
        if value.count > 3 { #expect(!text.contains(value), "the value leaked: \(text)") }
        #expect(!text.contains("hunter2") && !text.contains("horse") && !text.contains("saltsalt"))
    }

    @Test func malformedOrMissingPublicKeyIsReportedAtItsPath() throws {
        let fleet = try Self.loginFleet { manifest in
            Self.editDefaults(&manifest) { $0["ssh"] = ["authorized_keys": ["keys/ops/id.pub", "keys/bad.pub", "keys/none.pub", "keys/ops/id"]] }
        }
        try fleet.write("keys/bad.pub", "# ops\nssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
        let text = messages(fleet.load())
        #expect(text.contains("error: defaults.ssh.authorized_keys[1]: public key file keys/bad.pub, line 2:"), "\(text)")
        #expect(text.contains("error: defaults.ssh.authorized_keys[2]: public key file keys/none.pub does not exist"), "\(text)")
        #expect(text.contains("error: defaults.ssh.authorized_keys[3]: public key file keys/ops/id, line 1: this is a PEM file"), "\(text)")
        #expect(!text.contains("authorized_keys[0]"), "\(text)")
    }

    @Test func noWayToLogInIsAWarning() throws {
        // No user anywhere: one warning for the fleet, not one per variant.
        let fleet = try TestFleet()
        try fleet.writeManifest()
        let none = fleet.load()
        #expect(!none.hasErrors, "\(messages(none))")
        #expect(none.diagnostics.map(\.description) == [
            "warning: defaults: all 2 variants: no way to log in: no \"user\" is set, so Raspberry Pi OS keeps its locked default user (and on Bookworm its first-boot wizard waits on the console). Add \"user\": {\"name\": …, \"password_hash_file\": …} and/or \"ssh\": {\"authorized_keys\": […]}",
        ])
        // A user without a hash and without keys, at one site only.
        let partial = try Self.loginFleet { manifest in
            var sites = manifest["sites"] as! [[String: Any]]
            sites[1]["user"] = ["name": "beta"]
            sites[1]["ssh"] = ["authorized_keys": [String]()]
            manifest["sites"] = sites
            Self.editDefaults(&manifest) { $0["user"] = ["name": "fleet"] }
        }
        let outcome = partial.load()
        #expect(outcome.diagnostics.map(\.location) == ["sites[1]"], "\(messages(outcome))")
        #expect(messages(outcome).contains("variant beta: no way to log in: user \"beta\" has no password hash and ssh.authorized_keys lists no key"))
        // A key alone is a way in.
        let keyOnly = try Self.loginFleet { manifest in Self.editDefaults(&manifest) { $0["user"] = ["name": "fleet"] } }
        #expect(keyOnly.load().diagnostics.isEmpty, "\(messages(keyOnly.load()))")
    }

    @Test(arguments: [
        ("1000:1000", "0755", "owner 1000:1000"),
        ("0:0", "0775", "mode 0775"),
        ("0:1000", "0757", "owner 0:1000 and mode 0757"),
    ])
    func firstBootProgramWritableByAnotherUserIsAnError(_ owner: String, _ mode: String, _ expected: String) throws {
        let fleet = try Self.loginFleet { manifest in
            Self.editDefaults(&manifest) { defaults in
                defaults["files"] = [["source": "variants/common/provision.sh", "destination": "/usr/local/lib/fleet-images/provision.sh", "owner": owner, "mode": mode]]
                defaults["first_boot"] = ["command": ["/usr/local/lib/fleet-images/provision.sh"]]
            }
        }
        let outcome = fleet.load()
        let text = messages(outcome)
        let key = owner == "0:0" ? "mode" : "owner"
        #expect(outcome.diagnostics.map(\.location) == ["defaults.files[0].\(key)"], "\(text)")
        #expect(text.contains(expected) && text.contains("root must never run a file another user can write"), "\(text)")
    }

    @Test func rootOwnedFirstBootProgramIsAccepted() throws {
        let fleet = try Self.loginFleet { manifest in
            Self.editDefaults(&manifest) { defaults in
                defaults["files"] = [["source": "variants/common/provision.sh", "destination": "/usr/local/lib/fleet-images/provision.sh", "owner": "0:0", "mode": "0700"]]
                defaults["first_boot"] = ["command": ["/usr/local/lib/fleet-images/provision.sh"], "retry": "2m"]
            }
        }
        let outcome = fleet.load()
        #expect(outcome.diagnostics.isEmpty, "\(messages(outcome))")
        #expect(outcome.variants.first?.firstBoot?.mode == .unit(command: ["/usr/local/lib/fleet-images/provision.sh"], retrySeconds: 120))
    }
}
