import Foundation
import Testing

// Proof by booting (issue 10): fleets on the Raspberry Pi OS-like test bases of scripts/testbed are
// built with the built `fleet-images`, and their images are booted under qemu-system-aarch64 with no
// network device. Every expectation reads the report that the base's probe printed from inside the
// booted guest (BootTestSupport.swift); the builder's own output is only checked for success.
// Five boots in all (they are software-emulated): bookworm ×4, trixie ×1.

extension CLITests {
    @Suite(.serialized,
           .enabled(if: TestBed.enabled, "set FLEET_IMAGES_BOOT_TESTS=1 to boot images under qemu (FLEET_IMAGES_BOOT_TESTS=1 scripts/test.sh builds the test bases as root first)"))
    struct DeviceBoot {
        /// Bookworm (userconf format), a fixed host name, the demo enrolment script: the device has
        /// its name, Wi-Fi profile and radio on, the user with the given hash and key, sshd on with
        /// keys only, the time zone, keyboard and locale, and enrolment tried as root and stopped only
        /// for lack of network.
        @Test func bookwormDeviceComesUpConfigured() throws {
            let fleet = try BootFleet("bookworm-fixed", suite: "bookworm", hostname: "{fleet}-{site}", firstBoot: .demoProvision)
            defer { fleet.remove() }
            let image = try fleet.buildImage()
            let report = try fleet.boot(image, copy: "a", serial: "00000000c0ffee01")

            #expect(report.value("os.codename") == "bookworm")
            #expect(report.value("hostname") == "boot-zrh-lab", "\(report)")
            #expect(report.value("etc.hostname") == "boot-zrh-lab")
            #expect(hostsName(report) == "boot-zrh-lab", "127.0.1.1 line: \(report.value("hosts.127.0.1.1") ?? "none")")
            try fleet.expectCommonDevice(report, format: .userconf)
            fleet.expectEnrolmentWaitsForNetwork(report)
        }

        /// `{serial}` in the host name and a first-boot command that succeeds: two devices flashed
        /// from one image get two names (the serial lower-cased, leading zeros kept); the command runs
        /// once as root, disables its timer, and does not run again on the next boot.
        @Test func serialHostnamesAndFirstBootRunsOnce() throws {
            let fleet = try BootFleet("bookworm-serial", suite: "bookworm", hostname: "{fleet}-{serial}", firstBoot: .countRuns)
            defer { fleet.remove() }
            let image = try fleet.buildImage()

            let first = try fleet.boot(image, copy: "a", serial: "00000000C0FFEE42")
            #expect(first.value("devicetree.serial-number") == "00000000C0FFEE42")
            #expect(first.value("hostname") == "boot-00000000c0ffee42", "\(first)")
            #expect(first.value("etc.hostname") == "boot-00000000c0ffee42")
            #expect(hostsName(first) == "boot-00000000c0ffee42", "127.0.1.1 line: \(first.value("hosts.127.0.1.1") ?? "none")")
            try fleet.expectCommonDevice(first, format: .userconf)
            #expect(first.value("testbed.runs") == "1", "the first-boot command's run count: \(first)")
            #expect(first.value("testbed.uid") == "0", "the first-boot command ran as UID \(first.value("testbed.uid") ?? "?")")
            #expect(first.value("unit.fleet-images-first-boot.service.ExecMainStatus") == "0")
            #expect(first.value("unit.fleet-images-first-boot.service.Result") == "success")
            #expect(first.value("stat./var/lib/fleet-images/first-boot.done") != nil, "no first-boot.done after a success")
            #expect(first.value("unit.fleet-images-first-boot.timer.is-enabled") != "enabled", "the retry timer is still enabled after a success")

            // The same card, booted again: the command does not run.
            let again = try fleet.boot(image, copy: "a", serial: "00000000C0FFEE42", reuse: true)
            #expect(again.value("testbed.runs") == "1", "the first-boot command ran again: \(again)")
            #expect(again.value("unit.fleet-images-first-boot.service.ExecMainStartTimestampMonotonic") == "0",
                    "fleet-images-first-boot.service started on the second boot")
            #expect(again.value("hostname") == "boot-00000000c0ffee42")
            #expect(again.section("systemctl.failed") == [], "failed units: \(again.section("systemctl.failed") ?? [])")

            // Another card from the same image, another serial: another name.
            let other = try fleet.boot(image, copy: "b", serial: "10000000abcdef99")
            #expect(other.value("hostname") == "boot-10000000abcdef99", "\(other)")
            #expect(hostsName(other) == "boot-10000000abcdef99")
            #expect(other.value("testbed.runs") == "1")
            #expect(other.section("systemctl.failed") == [], "failed units: \(other.section("systemctl.failed") ?? [])")
        }

        /// Trixie (cloud-init format): cloud-init applies the seed without error, the user, key,
        /// Wi-Fi (netplan to NetworkManager, the derived PSK) and name are there, the seed's secrets
        /// are gone from the boot partition, and enrolment waits for the network.
        @Test func trixieCloudInitDeviceComesUpConfigured() throws {
            let fleet = try BootFleet("trixie", suite: "trixie", hostname: "{fleet}-{site}-{serial}", firstBoot: .demoProvision)
            defer { fleet.remove() }
            let image = try fleet.buildImage()
            let report = try fleet.boot(image, copy: "a", serial: "100000002bad1dea")

            #expect(report.value("os.codename") == "trixie")
            #expect(report.value("hostname") == "boot-zrh-lab-100000002bad1dea", "\(report)")
            #expect(hostsName(report) == "boot-zrh-lab-100000002bad1dea")
            #expect(report.value("cloud-init.status") == "done", "cloud-init: \(report.section("cloud-init.status-long") ?? [])")
            // Exit 2 is "done with recoverable errors": allowed only for deprecations in the image's
            // own cloud-init configuration (the test base's `fs_label`, as Raspberry Pi OS's), never an
            // error or a warning about the seed fleet-images wrote.
            let rc = report.value("cloud-init.rc")
            #expect(rc == "0" || rc == "2", "cloud-init status exit \(rc ?? "?"): \(report.section("cloud-init.status-long") ?? [])")
            #expect(cloudInitProblems(report) == [], "cloud-init: \(report.section("cloud-init.status-long") ?? [])")
            try fleet.expectCommonDevice(report, format: .cloudInit)
            #expect(report.value("bootfs.network-config") == "absent", "network-config (with the PSK) is still on the boot partition")
            #expect(report.value("bootfs.user-data.crypt-hashes") == "0", "user-data on the boot partition still holds a password hash")
            fleet.expectEnrolmentWaitsForNetwork(report)
        }
    }
}

/// What `cloud-init status --long` lists under `errors:` and `recoverable_errors:`, but for the
/// `DEPRECATED` category of the latter.
private func cloudInitProblems(_ report: ProbeReport) -> [String] {
    // Headings stand alone at the line start and end with ":" (`errors:`, `recoverable_errors:`,
    // then one per category: `DEPRECATED:`, `WARNING:`…); their items are indented `- ` lines.
    var heading = ""
    var problems: [String] = []
    for line in report.section("cloud-init.status-long") ?? [] {
        let indented = line.hasPrefix(" ") || line.hasPrefix("\t")
        if !indented && line.hasSuffix(":") {
            heading = String(line.dropLast())
        } else if indented && heading != "DEPRECATED" {
            problems.append("\(heading): \(line.trimmingCharacters(in: .whitespaces))")
        } else if !indented {
            heading = ""
        }
    }
    return problems
}

/// The name on the `127.0.1.1` line of the guest's /etc/hosts.
private func hostsName(_ report: ProbeReport) -> String? {
    report.value("hosts.127.0.1.1")?.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.map(String.init)
}

/// A one-site fleet (the demo's zrh-lab, its claim and keys) on a test base, with the device
/// contract's settings and throw-away secrets made for this test: a yescrypt hash (mkpasswd), an
/// ed25519 key (ssh-keygen) and a Wi-Fi passphrase.
struct BootFleet {
    enum FirstBoot { case demoProvision, countRuns }
    enum Format { case userconf, cloudInit }

    let fleet: DemoFleet
    let suite: String
    let ssid = "ZRH-Lab-IoT"
    let user = "fleet"
    let passphrase: String
    let passwordHash: String
    let keyFingerprint: String
    let work: String

    /// `sites`: how many of the demo's sites the fleet keeps; `edit` changes the manifest last.
    init(_ label: String, suite: String, hostname: String, firstBoot: FirstBoot, sites: Int = 1,
         edit: (inout [String: Any]) -> Void = { _ in }) throws {
        self.suite = suite
        let base = try TestBed.base(suite)
        fleet = try DemoFleet("boot-\(label)")
        work = fleet.directory + "/boot-runs"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let directory = fleet.directory
        try TestBed.copy(base.image, to: directory + "/base/testbed-\(suite).img")

        passphrase = "boot-test-" + UUID().uuidString.prefix(12).lowercased()
        try write(passphrase, to: directory + "/certs/zrh-lab/wifi.psk", mode: 0o600)
        let password = UUID().uuidString
        passwordHash = try tool("mkpasswd", ["--method=yescrypt", password]).trimmingCharacters(in: .whitespacesAndNewlines)
        try write(passwordHash + "\n", to: directory + "/certs/common/boot-test.passwd", mode: 0o600)
        try tool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "boot-test", "-f", directory + "/keys/boot-operator"])
        keyFingerprint = try tool("ssh-keygen", ["-l", "-E", "sha256", "-f", directory + "/keys/boot-operator.pub"])
            .split(separator: " ").dropFirst().first.map(String.init) ?? "?"
        try write("""
            #!/bin/sh
            # Boot test first-boot command: counts its runs, records its UID, succeeds.
            set -eu
            mkdir -p /var/lib/fleet-images-testbed
            runs=$(cat /var/lib/fleet-images-testbed/runs 2>/dev/null || echo 0)
            echo $((runs + 1)) >/var/lib/fleet-images-testbed/runs
            id -u >/var/lib/fleet-images-testbed/uid
            echo "count-runs: run $((runs + 1)) as UID $(id -u)"

            """, to: directory + "/variants/boot-test/count-runs", mode: 0o755)

        var manifest = try fleet.readManifest()
        manifest["fleet"] = "boot"
        manifest["base_image"] = ["source": "base/testbed-\(suite).img", "sha256": base.sha256, "arch": "arm64",
                                  "partitions": ["boot": 1, "root": 2]] as [String: Any]
        manifest["sites"] = Array((manifest["sites"] as? [Any] ?? []).prefix(sites))
        manifest.removeValue(forKey: "matrix")
        var defaults = manifest["defaults"] as? [String: Any] ?? [:]
        defaults["hostname"] = hostname
        defaults["user"] = ["name": user, "password_hash_file": "certs/common/boot-test.passwd"]
        defaults["ssh"] = ["authorized_keys": ["keys/boot-operator.pub"], "password_authentication": false] as [String: Any]
        defaults["timezone"] = "Europe/Zurich"
        defaults["keyboard"] = "ch"
        defaults["locale"] = "de_CH.UTF-8"
        var files: [[String: Any]] = [
            ["source": "variants/common/config.yaml", "destination": "/etc/fleet-images/config.yaml", "mode": "0600", "owner": "0:0"],
        ]
        switch firstBoot {
        case .demoProvision:
            files.append(["source": "variants/common/provision.sh", "destination": "/usr/local/lib/fleet-images/provision.sh", "mode": "0700", "owner": "0:0"])
            defaults["first_boot"] = ["command": ["/usr/local/lib/fleet-images/provision.sh"], "retry": "5m"] as [String: Any]
        case .countRuns:
            files.append(["source": "variants/boot-test/count-runs", "destination": "/usr/local/lib/fleet-images/count-runs", "mode": "0755", "owner": "0:0"])
            defaults["first_boot"] = ["command": ["/usr/local/lib/fleet-images/count-runs"], "retry": "5m"] as [String: Any]
        }
        defaults["files"] = files
        manifest["defaults"] = defaults
        edit(&manifest)
        try fleet.writeManifest(manifest)
    }

    func remove() { fleet.remove() }

    /// `fleet-images build` must succeed; returns the one variant's image.
    func buildImage() throws -> String {
        let outcome = try fleet.cli(["build"], timeout: 900)
        guard outcome.exited, outcome.status == 0 else { throw CLITestFailure("fleet-images build on the \(suite) test base: \(outcome)") }
        let variants = try fleet.variantIDs()
        guard variants.count == 1, let variant = variants.first else { throw CLITestFailure("expected one variant, plan gives \(variants)") }
        return fleet.output + "/\(variant)/latest/\(variant).img"
    }

    /// Boots a copy of `image` (`copy` names the card; `reuse` boots that card again as it was left).
    func boot(_ image: String, copy: String, serial: String, reuse: Bool = false) throws -> ProbeReport {
        let card = work + "/card-\(copy).img"
        if !reuse { try TestBed.copy(image, to: card) }
        // A boot of its own in the console log's name (a card booted twice keeps both logs).
        let marker = work + "/boots-\(copy)"
        let boots = ((try? String(contentsOfFile: marker, encoding: .utf8)).flatMap { Int($0) } ?? 0) + 1
        try String(boots).write(toFile: marker, atomically: true, encoding: .utf8)
        return try TestBed.boot(card, serial: serial, label: "\(suite)-\(fleet.directory.suffix(8))-\(copy)-\(boots)")
    }

    /// What every configured device shows, whatever the format.
    func expectCommonDevice(_ report: ProbeReport, format: Format) throws {
        // Wi-Fi: NetworkManager has the site's profile with WPA-PSK, and nothing keeps the radio off.
        let wifi = report.all("wifi.connection")
        #expect(wifi.count == 1, "Wi-Fi profiles NetworkManager loaded: \(wifi); connections: \(report.section("nm.connections") ?? [])")
        if let name = wifi.first {
            #expect(report.value("wifi.\(name).ssid") == ssid)
            #expect(report.value("wifi.\(name).key-mgmt") == "wpa-psk")
            let expected = format == .userconf ? passphrase : try wpaPSK(passphrase: passphrase, ssid: ssid)
            #expect(report.value("wifi.\(name).psk-sha256") == (try sha256Hex(expected)),
                    "the profile's PSK is not the site's (\(format == .userconf ? "passphrase" : "derived 64-hex PSK"); \(report.value("wifi.\(name).psk-length") ?? "?") characters)")
            if format == .userconf {
                #expect(report.section("nm.connections")?.contains { $0.hasSuffix(":/etc/NetworkManager/system-connections/preconfigured.nmconnection") } == true,
                        "connections: \(report.section("nm.connections") ?? [])")
            }
        }
        let rfkill = report.values(prefixed: "rfkill.state.")
        #expect(!rfkill.isEmpty, "the base's rfkill state files are gone")
        #expect(rfkill.values.allSatisfy { $0 == "0" }, "rfkill state files that keep WLAN blocked: \(rfkill)")
        #expect(report.value("nm.state.WirelessEnabled") == "true")
        #expect(report.value("nm.radio.wifi") == "enabled")
        #expect(report.value("regdom.cmdline") == "CH", "cmdline: \(report.value("cmdline") ?? "")")

        // The login: the user with the given hash and key; sshd on, keys only.
        let passwd = report.value("user.\(user).passwd") ?? ""
        let fields = passwd.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        #expect(fields.count == 7 && fields[5] == "/home/\(user)", "getent passwd \(user): \(passwd.isEmpty ? "no such user" : passwd); users: \(report.all("user"))")
        if format == .userconf {
            #expect(fields.count == 7 && fields[2] == "1000", "userconf renames the UID-1000 user: \(passwd)")
            #expect(!report.all("user").contains("pi"), "the base's user pi is still there: \(report.all("user"))")
        }
        #expect(report.value("user.\(user).shadow-sha256") == (try sha256Hex(passwordHash)), "the user's password hash is not the given one (kind \(report.value("user.\(user).shadow-kind") ?? "?"))")
        if fields.count == 7 {
            #expect(report.value("user.\(user).authorized_keys")?.hasPrefix("\(fields[2]):\(fields[3]) 600 ") == true,
                    "authorized_keys owner and mode: \(report.value("user.\(user).authorized_keys") ?? "missing")")
            #expect(report.value("user.\(user).ssh-dir") == "\(fields[2]):\(fields[3]) 700")
        }
        #expect(report.section("user.\(user).authorized_keys.fingerprints")?.contains { $0.contains(keyFingerprint) } == true,
                "the operator's key \(keyFingerprint) is not authorized: \(report.section("user.\(user).authorized_keys.fingerprints") ?? [])")
        #expect(report.value("sshd.pubkeyauthentication") == "yes")
        #expect(report.value("sshd.passwordauthentication") == "no")
        #expect(report.value("sshd.authorizedkeysfile")?.split(separator: " ").contains(".ssh/authorized_keys") == true,
                "sshd AuthorizedKeysFile: \(report.value("sshd.authorizedkeysfile") ?? "?")")
        #expect(report.value("ssh.is-enabled") == "enabled")
        #expect(report.value("ssh.is-active") == "active")
        #expect(report.value("bootfs.ssh") == "absent")
        if format == .userconf { #expect(report.value("bootfs.userconf.txt") == "absent", "userconf.txt was not applied") }

        // Time zone, keyboard, locale.
        #expect(report.value("timezone") == "Europe/Zurich")
        #expect(report.value("localtime")?.hasSuffix("zoneinfo/Europe/Zurich") == true)
        #expect(report.value("keyboard.XKBLAYOUT") == "ch")
        #expect(report.value("locale.LANG") == "de_CH.UTF-8")
        #expect(report.value("locale.available")?.split(separator: " ").contains("de_CH.utf8") == true, "locales: \(report.value("locale.available") ?? "")")

        // fleet-images' own files: root only.
        #expect(report.value("stat./etc/fleet-images") == "root:root 700 directory")
        for name in ["claim.pem.crt", "claim.private.pem.key", "config_parameters.txt"] {
            #expect(report.value("stat./etc/fleet-images/\(name)") == "root:root 600 regular file")
        }
        #expect(report.value("unit.fleet-images-first-boot.service.User") == "", "the first-boot unit runs as \(report.value("unit.fleet-images-first-boot.service.User") ?? "?")")
        #expect(report.value("unit.fleet-images-setup.service.Result") == "success")

        // Nothing failed, and the boot finished.
        #expect(report.section("systemctl.failed") == [], "failed units: \(report.section("systemctl.failed") ?? [])")
        #expect(report.value("system.running") == "running", "is-system-running: \(report.value("system.running") ?? "?")")
    }

    /// The demo's provision.sh ran as root and stopped only because the guest has no network:
    /// exit 75, which the unit counts as success, and the timer stays on to retry.
    func expectEnrolmentWaitsForNetwork(_ report: ProbeReport) {
        #expect(report.value("unit.fleet-images-first-boot.service.ExecMainStatus") == "75",
                "first-boot exit \(report.value("unit.fleet-images-first-boot.service.ExecMainStatus") ?? "?"): \(report.section("journal.fleet-images-first-boot") ?? [])")
        #expect(report.value("unit.fleet-images-first-boot.service.Result") == "success")
        #expect(report.section("journal.fleet-images-first-boot")?.contains { $0.contains("not yet") } == true,
                "journal: \(report.section("journal.fleet-images-first-boot") ?? [])")
        #expect(report.value("unit.fleet-images-first-boot.timer.is-enabled") == "enabled")
        #expect(report.value("stat./var/lib/fleet-images/first-boot.done") == nil, "first-boot.done without an enrolment")
    }
}
