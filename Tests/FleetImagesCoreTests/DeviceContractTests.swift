import Foundation
import Testing
@testable import FleetImagesCore

/// The first-boot contract as content: what each OS format puts where, with which owner and mode.
/// Booting the result is `DeviceBootTests`; these pin the files themselves.
@Suite struct DeviceContractTests {
    static let hash = "$6$demofleetsalt$9njE.PmTi4glfjp1JbCDMPDY98u2NxlH0v5offZ4BRmrglfNotOgJ9g9mydZZH4deEQ5XqDjTV00w5hr6p4ss/"
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJd6w8wDemoKeyForTestsOnlyAAAAAAAAAAAAAAAAAAAA ops@example"

    static func manifest() throws -> Manifest {
        let json = """
        {"format": 1, "fleet": "demo",
         "base_image": {"source": "base/base.img", "sha256": "\(String(repeating: "a", count: 64))", "arch": "arm64"},
         "builder": {"type": "inject"}, "signing": {"private_key": "k.pem", "public_key": "p.pem"},
         "sites": [{"id": "zrh-lab", "region": "eu-central-1"}]}
        """
        let (manifest, diagnostics) = ManifestReader.read(data: Data(json.utf8), filePath: "/tmp/contract/fleet.json")
        return try #require(manifest, "\(diagnostics)")
    }

    static func variant(hostname: String = "demo-zrh-lab-{serial}", firstBoot: Variant.FirstBoot.Mode? = .unit(command: ["/usr/local/lib/fleet-images/provision.sh", "--site", "zrh 100%"], retrySeconds: 300)) -> Variant {
        Variant(
            id: "zrh-lab", site: "zrh-lab", axes: [], region: "eu-central-1",
            iot: .init(dataEndpoint: "a-ats.iot.eu-central-1.amazonaws.com", credentialEndpoint: "c.credentials.iot.eu-central-1.amazonaws.com",
                       roleAlias: "Alias", provisioningTemplate: "Template"),
            claim: .init(certificate: "certs/zrh-lab/claim.pem.crt", privateKey: "certs/zrh-lab/claim.private.pem.key",
                         certificatePath: .root, privateKeyPath: .root),
            wifi: .init(ssid: "ZRH \"Lab\"", country: "CH", psk: .file("certs/zrh-lab/wifi.psk"), pskPath: .root, hidden: true),
            hostname: hostname, files: [],
            user: .init(name: "fleet", passwordHash: .file("certs/hash"), namePath: .root, passwordHashPath: .root),
            ssh: .init(authorizedKeys: [.init(file: "keys/ops.pub", path: .root)], passwordAuthentication: false),
            timezone: "Europe/Zurich", keyboard: "ch", locale: "de_CH.UTF-8",
            firstBoot: firstBoot.map { .init(mode: $0, path: .root) })
    }

    static let secrets = VariantSecrets(psk: Secret("correct horse battery"), passwordHash: Secret(hash), authorizedKeys: [key])

    static func text(_ item: ContentItem) -> String? {
        if case .generated(_, let bytes, _) = item.source { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }

    static func byDestination(_ items: [ContentItem]) -> [String: ContentItem] {
        var map: [String: ContentItem] = [:]
        for item in items { map[item.destination] = item }
        return map
    }

    @Test("userconf (Bookworm): userconf.txt, ssh, the first user's authorized_keys, Wi-Fi on, root-only claim files")
    func userconfFormat() throws {
        let items = VariantContent.items(for: Self.variant(), manifest: try Self.manifest(), os: .testBookworm, secrets: Self.secrets)
        let at = Self.byDestination(items)

        let userconf = try #require(at["/boot/firmware/userconf.txt"])
        #expect(Self.text(userconf) == "fleet:\(Self.hash)\n")
        #expect(userconf.isSecret && userconf.partition == .boot && userconf.pathInPartition == "/userconf.txt")
        #expect(at["/boot/firmware/ssh"].flatMap(Self.text) == "")

        let keys = try #require(at["/home/pi/.ssh/authorized_keys"])
        #expect(Self.text(keys) == Self.key + "\n")
        #expect((keys.mode, keys.uid, keys.gid) == (0o600, 1000, 1000))
        let sshDirectory = try #require(at["/home/pi/.ssh"])
        #expect(sshDirectory.source == .directory && (sshDirectory.mode, sshDirectory.uid) == (0o700, 1000))
        #expect(Self.text(try #require(at[VariantContent.sshdDropInPath]))?.contains("PasswordAuthentication no\n") == true)

        // Nothing root runs or reads for enrolment belongs to the login user.
        for path in [VariantContent.claimCertificatePath, VariantContent.claimKeyPath, VariantContent.parametersPath] {
            let item = try #require(at[path])
            #expect((item.mode, item.uid, item.gid) == (0o600, 0, 0), "\(path)")
        }
        #expect(at[FirstBootUnits.configDirectory].map { ($0.source, $0.mode, $0.uid) == (.directory, 0o700, 0) } == true)
        #expect(items.filter { $0.uid == 1000 }.map(\.destination).sorted() == ["/home/pi/.ssh", "/home/pi/.ssh/authorized_keys"])
        #expect(!items.contains { $0.destination.hasPrefix("/home/pi/claim") || $0.destination == "/etc/rc.local" })

        // Wi-Fi: keyfile in the root file system, radio on, country on the kernel command line.
        let keyfile = try #require(at[VariantContent.wifiKeyfilePath])
        #expect(keyfile.isSecret && keyfile.mode == 0o600)
        #expect(Self.text(try #require(at[VariantContent.networkManagerStatePath]))?.contains("WirelessEnabled=true") == true)
        for file in DeviceOS.testBookworm.rfkillWlanFiles {
            #expect(at["/var/lib/systemd/rfkill/" + file].flatMap(Self.text) == "0\n")
        }
        #expect(at["/boot/firmware/cmdline.txt"]?.source == .kernelParameter(key: "cfg80211.ieee80211_regdom", value: "CH"))
        #expect(!items.contains { $0.partition == .boot && ($0.destination.hasSuffix("network-config") || $0.destination.hasSuffix("user-data")) })

        // Locale, timezone, keyboard as Raspberry Pi Imager sets them.
        #expect(at["/etc/timezone"].flatMap(Self.text) == "Europe/Zurich\n")
        #expect(at["/etc/localtime"]?.source == .symlink(target: "/usr/share/zoneinfo/Europe/Zurich"))
        #expect(at["/etc/default/keyboard"].flatMap(Self.text)?.contains("XKBLAYOUT=\"ch\"") == true)
        #expect(at["/etc/default/locale"].flatMap(Self.text) == "LANG=de_CH.UTF-8\n")
    }

    @Test("{serial} leaves a placeholder name in /etc/hostname and the pattern for the setup unit")
    func serialHostname() throws {
        let at = Self.byDestination(VariantContent.items(for: Self.variant(), manifest: try Self.manifest(), os: .testBookworm, secrets: Self.secrets))
        #expect(at["/etc/hostname"].flatMap(Self.text) == "demo-zrh-lab-unknown\n")
        #expect(at["/etc/hosts"]?.source == .hostsEntry(hostname: "demo-zrh-lab-unknown"))
        #expect(at[FirstBootUnits.hostnamePatternPath].flatMap(Self.text) == "demo-zrh-lab-{serial}\n")
        #expect(at["/etc/systemd/system/sysinit.target.wants/fleet-images-setup.service"]?.source == .symlink(target: "/etc/systemd/system/fleet-images-setup.service"))

        let fixed = Self.byDestination(VariantContent.items(for: Self.variant(hostname: "demo-zrh-lab"), manifest: try Self.manifest(), os: .testBookworm, secrets: Self.secrets))
        #expect(fixed["/etc/hostname"].flatMap(Self.text) == "demo-zrh-lab\n")
        #expect(fixed[FirstBootUnits.hostnamePatternPath] == nil)
    }

    @Test("The first-boot unit runs the command once after network-online, and exit 75 is not a failure")
    func firstBootUnit() throws {
        let at = Self.byDestination(VariantContent.items(for: Self.variant(), manifest: try Self.manifest(), os: .testBookworm, secrets: Self.secrets))
        let unit = try #require(at["/etc/systemd/system/fleet-images-first-boot.service"].flatMap(Self.text))
        #expect(unit.contains("ExecStart=/usr/local/lib/fleet-images/first-boot-run \"/usr/local/lib/fleet-images/provision.sh\" \"--site\" \"zrh 100%%\"\n"))
        #expect(unit.contains("After=network-online.target time-sync.target"))
        #expect(unit.contains("ConditionPathExists=!/var/lib/fleet-images/first-boot.done"))
        #expect(unit.contains("SuccessExitStatus=75"))
        #expect(at["/etc/systemd/system/fleet-images-first-boot.timer"].flatMap(Self.text)?.contains("OnUnitInactiveSec=300s") == true)
        #expect(at["/etc/systemd/system/multi-user.target.wants/fleet-images-first-boot.service"] != nil)
        #expect(at["/etc/systemd/system/timers.target.wants/fleet-images-first-boot.timer"] != nil)
        for path in [FirstBootUnits.firstBootRunner, FirstBootUnits.setupScript] {
            let script = try #require(at[path])
            #expect((script.mode, script.uid, script.gid) == (0o755, 0, 0))
        }
    }

    @Test("The generated scripts are valid sh and the units pass systemd-analyze", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func scriptsAndUnitsParse() throws {
        let directory = try makeTemporaryDirectory("fleet-images-units")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, text) in [("setup", FirstBootUnits.setupScriptText), ("first-boot-run", FirstBootUnits.firstBootRunnerScript),
                             ("seed-cleanup", FirstBootUnits.seedCleanupScriptText(bootMount: "/boot/firmware"))] {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
            let check = try runProcess("/bin/sh", ["-n", directory + "/" + name])
            #expect(check.status == 0, "\(name): \(check.stderr)")
        }
        for (name, text) in [(FirstBootUnits.setupService, FirstBootUnits.setupUnit),
                             (FirstBootUnits.firstBootService, FirstBootUnits.firstBootUnit(command: ["/bin/true"])),
                             (FirstBootUnits.firstBootTimer, FirstBootUnits.firstBootTimerUnit(retrySeconds: 300)),
                             (FirstBootUnits.seedCleanupService, FirstBootUnits.seedCleanupUnit)] {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        // Only syntax and directive names: the units' programs do not exist on the build host.
        let result = try runProcess("/usr/bin/systemd-analyze", ["verify", "--man=no"] + [FirstBootUnits.setupService, FirstBootUnits.firstBootService, FirstBootUnits.firstBootTimer, FirstBootUnits.seedCleanupService].map { directory + "/" + $0 })
        let complaints = (result.stdout + result.stderr).split(separator: "\n").filter {
            !$0.contains("is not executable") && !$0.contains("No such file") && !$0.contains("Command ") && !$0.contains("not found") && !$0.contains("Failed to")
        }
        #expect(complaints.isEmpty, "\(result.stdout)\(result.stderr)")
    }

    @Test("cloud-init (Trixie): user, SSH and Wi-Fi in the NoCloud seed; the derived PSK, never the passphrase")
    func cloudInitFormat() throws {
        let items = VariantContent.items(for: Self.variant(), manifest: try Self.manifest(), os: .testTrixieCloudInit, secrets: Self.secrets)
        let at = Self.byDestination(items)
        let userData = try #require(at["/boot/firmware/user-data"])
        let text = try #require(Self.text(userData))
        #expect(userData.isSecret)
        #expect(text.hasPrefix("#cloud-config\n"))
        #expect(text.contains("user:\n  name: \"fleet\"\n  shell: /bin/bash\n  lock_passwd: false\n  passwd: \"\(Self.hash)\"\n"))
        #expect(text.contains("  ssh_authorized_keys:\n    - \"\(Self.key)\"\n"))
        #expect(text.contains("ssh_pwauth: false\n") && text.contains("timezone: \"Europe/Zurich\"\n") && text.contains("preserve_hostname: true\n"))
        #expect(!text.contains("rpi_userconf"), "only for images with Raspberry Pi's cloud-init module")

        let network = try #require(at["/boot/firmware/network-config"].flatMap(Self.text))
        let psk = Digest.wpaPSKHex(passphrase: Array("correct horse battery".utf8), ssid: Array("ZRH \"Lab\"".utf8))
        #expect(network.contains("        \"ZRH \\\"Lab\\\"\":\n          hidden: true\n          password: \"\(psk)\"\n"))
        #expect(network.contains("regulatory-domain: \"CH\""))
        #expect(!network.contains("correct horse battery"))
        #expect(at["/boot/firmware/meta-data"].flatMap(Self.text)?.contains("instance-id: fleet-images-zrh-lab") == true)
        #expect(at[VariantContent.wifiKeyfilePath] == nil && at["/boot/firmware/userconf.txt"] == nil)
        #expect(at["/etc/systemd/system/cloud-final.service.wants/fleet-images-seed-cleanup.service"] != nil)
        #expect(at["/etc/systemd/system/multi-user.target.wants/fleet-images-seed-cleanup.service"] == nil,
                "cloud-final.service is after multi-user.target: wanting the cleanup there is an ordering cycle")
        // Debian's locale-gen ignores the locale cloud-init's `locale` module names: the setup unit
        // generates it before sysinit.target, or cloud-init's update-locale fails (the trixie boot test).
        #expect(text.contains("locale: \"de_CH.UTF-8\"\n"))
        #expect(at[FirstBootUnits.localePath].flatMap(Self.text) == "de_CH.UTF-8\n")
        #expect(at["/etc/systemd/system/sysinit.target.wants/fleet-images-setup.service"] != nil)

        // No user in the manifest: the keys go to the image's default user.
        var anonymous = Self.variant()
        anonymous.user = nil
        let keysOnly = try #require(Self.byDestination(VariantContent.items(for: anonymous, manifest: try Self.manifest(), os: .testTrixieCloudInit, secrets: Self.secrets))["/boot/firmware/user-data"].flatMap(Self.text))
        #expect(keysOnly.contains("\nssh_authorized_keys:\n  - \"\(Self.key)\"\n") && !keysOnly.contains("\nuser:"))

        var raspberry = DeviceOS.testTrixieCloudInit
        raspberry.hasRaspberryPiUserconfModule = true
        let vendor = try #require(Self.byDestination(VariantContent.items(for: Self.variant(), manifest: try Self.manifest(), os: raspberry, secrets: Self.secrets))["/boot/firmware/user-data"].flatMap(Self.text))
        #expect(vendor.contains("rpi_userconf:\n  user: \"fleet\"\n  password: \"\(Self.hash)\"\n"))
    }

    @Test("The legacy layout keeps the seed project's /home/pi files and installs no enrolment unit")
    func legacyLayout() throws {
        let at = Self.byDestination(VariantContent.items(for: Self.variant(firstBoot: .legacyHomePi), manifest: try Self.manifest(), os: .testBookworm, secrets: Self.secrets))
        #expect(at[VariantContent.legacyClaimKeyPath].map { ($0.mode, $0.uid) == (0o600, 1000) } == true)
        #expect(at[VariantContent.claimKeyPath] == nil)
        #expect(at["/etc/systemd/system/fleet-images-first-boot.service"] == nil)
    }

    @Test("WPA PSK derivation matches IEEE 802.11i's test vector")
    func wpaPSK() {
        #expect(Digest.wpaPSKHex(passphrase: Array("password".utf8), ssid: Array("IEEE".utf8))
                == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e")
    }

    @Test("os-release parsing and the default format per release")
    func osRelease() {
        let fields = DeviceOS.parseOSRelease("PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nVERSION_CODENAME=trixie\n# c\nID='debian'\n")
        #expect(fields["PRETTY_NAME"] == "Debian GNU/Linux 13 (trixie)" && fields["VERSION_CODENAME"] == "trixie" && fields["ID"] == "debian")
        #expect(DeviceOS.defaultFormat(codename: "trixie", hasCloudInit: true) == .cloudInit)
        #expect(DeviceOS.defaultFormat(codename: "trixie", hasCloudInit: false) == .userconf)
        #expect(DeviceOS.defaultFormat(codename: "bookworm", hasCloudInit: true) == .userconf)
    }
}

extension DeviceContractTests {
    @Test("a manifest file may replace /etc/default/keyboard unless the variant sets keyboard; generated files are always refused")
    func conflicts() throws {
        let manifest = try Self.manifest()
        var variant = Self.variant()
        variant.files = [
            FileEntry(source: "kb", destination: "/etc/default/keyboard", mode: 0o644, uid: 0, gid: 0, ownerGiven: false, path: JSONPath.root.key("files").index(0)),
            FileEntry(source: "ud", destination: "/boot/firmware/User-Data", mode: 0o644, uid: 0, gid: 0, ownerGiven: false, path: JSONPath.root.key("files").index(1)),
        ]
        let both = VariantContent.conflicts(of: variant, manifest: manifest).filter { $0.severity == .error }
        #expect(both.count == 2, "\(both)")
        variant.keyboard = nil
        let one = VariantContent.conflicts(of: variant, manifest: manifest).filter { $0.severity == .error }
        #expect(one.count == 1 && one[0].description.contains("User-Data"), "\(one)")
    }
}
