import Foundation

/// What one variant puts into its image, in the order a builder applies it: the device contract's
/// generated files (claim certificate and key, `config_parameters.txt`, Wi-Fi, login, first-boot
/// units; see ``VariantContent``), the manifest's files and overlay, then in-place edits
/// (`/etc/hosts`, `cmdline.txt`). Builders and `plan` both read this list, so what `plan` shows
/// is what is built.
public struct ContentItem: Sendable, Equatable {
    public enum Partition: String, Sendable, Codable {
        case boot
        case root
    }

    public enum Source: Sendable, Equatable {
        /// A file in the repository, relative to the manifest folder. `secret` files (private keys)
        /// are digested with a keyed HMAC, never a plain SHA-256.
        case file(String, secret: Bool)
        /// Bytes made by fleet-images. `secret` content (a keyfile holding a passphrase) is never shown.
        case generated(name: String, bytes: [UInt8], secret: Bool)
        /// Set the `127.0.1.1` line of the existing `/etc/hosts`.
        case hostsEntry(hostname: String)
        /// Set `key=value` on the single line of the existing kernel command line.
        case kernelParameter(key: String, value: String)
        /// A directory with this item's mode and owner (created with its parents when missing).
        case directory
        /// A symbolic link to `target`.
        case symlink(target: String)
    }

    /// Absolute path on the device (e.g. `/boot/firmware/cmdline.txt`).
    public var destination: String
    public var partition: Partition
    /// Path inside the partition (for the boot partition, `destination` without the mount point).
    public var pathInPartition: String
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var source: Source

    public var isSecret: Bool {
        switch source {
        case .file(_, let secret), .generated(_, _, let secret): secret
        default: false
        }
    }
}

/// The secrets a variant's content is made from, resolved by the planner; never printed.
public struct VariantSecrets: Sendable {
    public var psk: Secret?
    public var passwordHash: Secret?
    /// The `authorized_keys` lines of the variant's public key files, in manifest order.
    public var authorizedKeys: [String]

    public init(psk: Secret? = nil, passwordHash: Secret? = nil, authorizedKeys: [String] = []) {
        self.psk = psk
        self.passwordHash = passwordHash
        self.authorizedKeys = authorizedKeys
    }
}

/// The first-boot contract: what a variant writes so that a card flashed with it comes up as a
/// working device on its OS (see the README's "What every image gets").
///
/// Both formats: the claim certificate, key and `config_parameters.txt` in a root-only folder
/// (`/etc/fleet-images`, 0700); `/etc/hostname` and the `127.0.1.1` line; Wi-Fi turned on
/// (`WirelessEnabled=true` in NetworkManager's state file, the rfkill state files at `0`, the
/// country on the kernel command line); the first-boot units of ``FirstBootUnits``.
/// The `userconf` format (Bookworm) adds `userconf.txt` and `ssh` on the boot partition, the
/// UID-1000 user's `authorized_keys`, an sshd drop-in, the NetworkManager keyfile, and the
/// timezone/keyboard/locale files. The `cloud-init` format puts user, SSH, Wi-Fi and locale
/// settings into the boot partition's NoCloud seed instead (``CloudInitSeed``).
public enum VariantContent {
    public static let piUser: (uid: UInt32, gid: UInt32) = (1000, 1000)
    public static let claimCertificatePath = FirstBootUnits.configDirectory + "/claim.pem.crt"
    public static let claimKeyPath = FirstBootUnits.configDirectory + "/claim.private.pem.key"
    public static let parametersPath = FirstBootUnits.configDirectory + "/config_parameters.txt"
    /// The seed project's layout (`first_boot.layout: legacy-home-pi`).
    public static let legacyClaimCertificatePath = "/home/pi/claim.pem.crt"
    public static let legacyClaimKeyPath = "/home/pi/claim.private.pem.key"
    public static let legacyParametersPath = "/home/pi/config_parameters.txt"
    public static let wifiKeyfilePath = "/etc/NetworkManager/system-connections/preconfigured.nmconnection"
    public static let networkManagerStatePath = "/var/lib/NetworkManager/NetworkManager.state"
    public static let rfkillDirectory = "/var/lib/systemd/rfkill"
    public static let hostnamePath = "/etc/hostname"
    public static let hostsPath = "/etc/hosts"
    public static let sshdDropInPath = "/etc/ssh/sshd_config.d/10-fleet-images.conf"
    public static let cloudInitDisabledPath = "/etc/cloud/cloud-init.disabled"
    public static let regulatoryDomainKey = "cfg80211.ieee80211_regdom"

    /// Destinations fleet-images writes itself (on the root file system, or relative to the boot
    /// partition's mount point for the boot files); a manifest file may not target them.
    public static let generatedDestinations: Set<String> = Set([
        claimCertificatePath, claimKeyPath, parametersPath, legacyClaimCertificatePath, legacyClaimKeyPath, legacyParametersPath,
        wifiKeyfilePath, networkManagerStatePath, hostnamePath, sshdDropInPath, cloudInitDisabledPath,
        FirstBootUnits.setupScript, FirstBootUnits.firstBootRunner, FirstBootUnits.seedCleanupScript,
        FirstBootUnits.hostnamePatternPath, FirstBootUnits.wifiCountryPath, FirstBootUnits.localePath,
    ]).union([FirstBootUnits.setupService, FirstBootUnits.firstBootService, FirstBootUnits.firstBootTimer, FirstBootUnits.seedCleanupService]
        .map { FirstBootUnits.unitDirectory + "/" + $0 })
    /// Boot-partition files fleet-images writes (relative to the mount point).
    public static let generatedBootFiles: Set<String> = ["userconf.txt", "ssh", "user-data", "meta-data", "network-config"]

    /// The content list for `variant` on `os`; `secrets` resolved by the planner.
    public static func items(for variant: Variant, manifest: Manifest, os: DeviceOS, secrets: VariantSecrets) -> [ContentItem] {
        let boot = manifest.baseImage.bootMount
        let root: (uid: UInt32, gid: UInt32) = (0, 0)
        var items: [ContentItem] = []
        func add(_ destination: String, mode: UInt32, owner: (uid: UInt32, gid: UInt32) = (0, 0), _ source: ContentItem.Source) {
            let (partition, inside) = locate(destination, bootMount: boot)
            items.append(ContentItem(destination: destination, partition: partition, pathInPartition: inside, mode: mode,
                                     uid: partition == .boot ? 0 : owner.uid, gid: partition == .boot ? 0 : owner.gid, source: source))
        }
        func generated(_ destination: String, mode: UInt32, owner: (uid: UInt32, gid: UInt32) = (0, 0), _ text: String, secret: Bool = false) {
            add(destination, mode: mode, owner: owner, .generated(name: (destination as NSString).lastPathComponent, bytes: Array(text.utf8), secret: secret))
        }
        let cloudInit = os.initFormat == .cloudInit
        let legacy = variant.firstBoot?.mode == .legacyHomePi

        // Enrolment inputs: root-only, never in a login user's home (unless the legacy layout is chosen).
        if legacy {
            add(legacyClaimCertificatePath, mode: 0o644, owner: piUser, .file(variant.claim.certificate, secret: false))
            add(legacyClaimKeyPath, mode: 0o600, owner: piUser, .file(variant.claim.privateKey, secret: true))
            generated(legacyParametersPath, mode: 0o644, owner: piUser, configParameters(variant))
        } else {
            add(FirstBootUnits.configDirectory, mode: 0o700, .directory)
            add(claimCertificatePath, mode: 0o600, .file(variant.claim.certificate, secret: false))
            add(claimKeyPath, mode: 0o600, .file(variant.claim.privateKey, secret: true))
            generated(parametersPath, mode: 0o600, configParameters(variant))
        }

        // Login.
        let sshEnabled = variant.ssh != nil
        if cloudInit {
            let user = variant.user.map { CloudInitSeed.User(name: $0.name, passwordHash: secrets.passwordHash, authorizedKeys: secrets.authorizedKeys) }
            generated(boot + "/meta-data", mode: 0o644, CloudInitSeed.metaData(variantID: variant.id))
            generated(boot + "/user-data", mode: 0o644,
                      CloudInitSeed.userData(variantID: variant.id, user: user, defaultUserKeys: secrets.authorizedKeys, ssh: variant.ssh, timezone: variant.timezone,
                                             keyboard: variant.keyboard, locale: variant.locale, raspberryPiModule: os.hasRaspberryPiUserconfModule),
                      secret: secrets.passwordHash != nil)
        } else {
            if os.hasCloudInit {
                // A cloud-init image told to use the userconf format: cloud-init must not configure it too.
                generated(cloudInitDisabledPath, mode: 0o644, "# fleet-images: base_image.os.init_format is userconf\n")
            }
            if let user = variant.user, let hash = secrets.passwordHash {
                generated(boot + "/userconf.txt", mode: 0o644, "\(user.name):\(hash.unsafeString)\n", secret: true)
            }
            if sshEnabled {
                generated(boot + "/ssh", mode: 0o644, "")
                let auth = variant.ssh?.passwordAuthentication == true ? "yes" : "no"
                generated(sshdDropInPath, mode: 0o644, """
                    # Written by fleet-images. sshd takes the first value it reads, so this file sorts early.
                    PasswordAuthentication \(auth)
                    KbdInteractiveAuthentication no
                    PubkeyAuthentication yes

                    """)
                if !secrets.authorizedKeys.isEmpty, let first = os.firstUser {
                    // userconf-pi renames this user (and moves its home) to user.name on first boot.
                    let owner = (first.uid, first.gid)
                    add(first.home + "/.ssh", mode: 0o700, owner: owner, .directory)
                    generated(first.home + "/.ssh/authorized_keys", mode: 0o600, owner: owner,
                              secrets.authorizedKeys.joined(separator: "\n") + "\n")
                }
            }
            if let timezone = variant.timezone {
                generated("/etc/timezone", mode: 0o644, timezone + "\n")
                add("/etc/localtime", mode: 0o777, .symlink(target: "/usr/share/zoneinfo/" + timezone))
            }
            if let keyboard = variant.keyboard {
                generated("/etc/default/keyboard", mode: 0o644, """
                    # Written by fleet-images (see keyboard(5)).
                    XKBMODEL="pc105"
                    XKBLAYOUT="\(keyboard)"
                    XKBVARIANT=""
                    XKBOPTIONS=""
                    BACKSPACE="guess"

                    """)
            }
            if let locale = variant.locale {
                generated("/etc/default/locale", mode: 0o644, "LANG=\(locale)\n")
            }
        }

        // Wi-Fi, on.
        if let wifi = variant.wifi, let psk = secrets.psk {
            if cloudInit {
                generated(boot + "/network-config", mode: 0o644, CloudInitSeed.networkConfig(wifi: wifi, psk: psk), secret: true)
            } else {
                add(wifiKeyfilePath, mode: 0o600, .generated(name: "preconfigured.nmconnection",
                                                             bytes: Array(networkManagerKeyfile(wifi, psk: psk, variantID: variant.id).utf8), secret: true))
            }
            generated(networkManagerStatePath, mode: 0o644, "[main]\nNetworkingEnabled=true\nWirelessEnabled=true\nWWANEnabled=true\n")
            for file in os.rfkillWlanFiles {
                generated(rfkillDirectory + "/" + file, mode: 0o644, "0\n")
            }
        }

        // Identity.
        let staticName = variant.hostname.replacingOccurrences(of: Variant.serialPlaceholder, with: "unknown")
        generated(hostnamePath, mode: 0o644, staticName + "\n")

        // First-boot units.
        // The locale is generated by the setup unit on cloud-init images too: Debian's locale-gen ignores
        // the locale cloud-init's `locale` module names, and its update-locale then fails on a locale the
        // image lacks (seen booting the trixie test base). The setup unit runs before sysinit.target,
        // so the locale exists by the time cloud-init's config stage sets it.
        let needsSetup = variant.hostnameUsesSerial || variant.wifi != nil || variant.locale != nil
        var wants: [(target: String, unit: String)] = []
        if needsSetup || !legacy && variant.firstBoot != nil || cloudInit {
            add(FirstBootUnits.libexec, mode: 0o755, .directory)
        }
        if needsSetup {
            if legacy { add(FirstBootUnits.configDirectory, mode: 0o700, .directory) }
            if variant.hostnameUsesSerial { generated(FirstBootUnits.hostnamePatternPath, mode: 0o600, variant.hostname + "\n") }
            if let wifi = variant.wifi { generated(FirstBootUnits.wifiCountryPath, mode: 0o600, wifi.country + "\n") }
            if let locale = variant.locale { generated(FirstBootUnits.localePath, mode: 0o600, locale + "\n") }
            generated(FirstBootUnits.setupScript, mode: 0o755, FirstBootUnits.setupScriptText)
            generated(FirstBootUnits.unitDirectory + "/" + FirstBootUnits.setupService, mode: 0o644, FirstBootUnits.setupUnit)
            wants.append(("sysinit.target", FirstBootUnits.setupService))
        }
        if case .unit(let command, let retry)? = variant.firstBoot?.mode {
            generated(FirstBootUnits.firstBootRunner, mode: 0o755, FirstBootUnits.firstBootRunnerScript)
            generated(FirstBootUnits.unitDirectory + "/" + FirstBootUnits.firstBootService, mode: 0o644, FirstBootUnits.firstBootUnit(command: command))
            generated(FirstBootUnits.unitDirectory + "/" + FirstBootUnits.firstBootTimer, mode: 0o644, FirstBootUnits.firstBootTimerUnit(retrySeconds: retry))
            wants.append(("multi-user.target", FirstBootUnits.firstBootService))
            wants.append(("timers.target", FirstBootUnits.firstBootTimer))
        }
        if cloudInit {
            generated(FirstBootUnits.seedCleanupScript, mode: 0o755, FirstBootUnits.seedCleanupScriptText(bootMount: boot))
            generated(FirstBootUnits.unitDirectory + "/" + FirstBootUnits.seedCleanupService, mode: 0o644, FirstBootUnits.seedCleanupUnit)
            // Wanted by cloud-final.service, not multi-user.target: cloud-final is ordered after
            // multi-user.target, so a unit that target waits for cannot also come after cloud-final
            // (systemd drops it to break the cycle; seen booting the trixie test base).
            wants.append(("cloud-final.service", FirstBootUnits.seedCleanupService))
        }
        for (target, unit) in wants {
            add("\(FirstBootUnits.unitDirectory)/\(target).wants/\(unit)", mode: 0o777, .symlink(target: FirstBootUnits.unitDirectory + "/" + unit))
        }

        for file in variant.files {
            add(file.destination, mode: file.mode, owner: (file.uid, file.gid), .file(file.source, secret: false))
        }
        add(hostsPath, mode: 0o644, owner: root, .hostsEntry(hostname: staticName))
        if let wifi = variant.wifi {
            add(boot + "/cmdline.txt", mode: 0o644, .kernelParameter(key: regulatoryDomainKey, value: wifi.country))
        }
        return items
    }

    /// Manifest files that collide with what fleet-images generates, or sit on the boot partition with an owner.
    public static func conflicts(of variant: Variant, manifest: Manifest) -> [Diagnostic] {
        var result: [Diagnostic] = []
        let boot = manifest.baseImage.bootMount
        // The timezone, keyboard and locale files are fleet-images' only when the variant sets them.
        var settingFiles: Set<String> = []
        if variant.timezone != nil { settingFiles.formUnion(["/etc/timezone", "/etc/localtime"]) }
        if variant.keyboard != nil { settingFiles.insert("/etc/default/keyboard") }
        if variant.locale != nil { settingFiles.insert("/etc/default/locale") }
        for file in variant.files {
            let inBoot = file.destination.hasPrefix(boot + "/") ? String(file.destination.dropFirst(boot.count + 1)).lowercased() : nil
            if generatedDestinations.contains(file.destination) || settingFiles.contains(file.destination) || inBoot.map(generatedBootFiles.contains) == true {
                result.append(.error(file.path.key("destination"), "\(file.destination) is written by fleet-images from the site's settings; remove this file or change its destination"))
            }
            if file.destination == boot {
                result.append(.error(file.path.key("destination"), "\(file.destination) is the boot partition's mount point; name a file inside it"))
            } else if file.destination.hasPrefix(boot + "/"), file.ownerGiven, file.uid != 0 || file.gid != 0 || file.mode != 0o644 {
                result.append(.warning(file.path, "\(file.destination) is on the FAT boot partition, which has no owners or modes; \"owner\" and \"mode\" are ignored there"))
            }
        }
        return result
    }

    static func locate(_ destination: String, bootMount: String) -> (ContentItem.Partition, String) {
        if destination.hasPrefix(bootMount + "/") {
            return (.boot, String(destination.dropFirst(bootMount.count)))
        }
        return (.root, destination)
    }

    /// The five lines `provision.sh` reads, in its order.
    public static func configParameters(_ variant: Variant) -> String {
        [variant.region, variant.iot.dataEndpoint, variant.iot.credentialEndpoint, variant.iot.roleAlias, variant.iot.provisioningTemplate]
            .joined(separator: "\n") + "\n"
    }

    /// A NetworkManager keyfile with the fields Raspberry Pi OS Bookworm's own
    /// `preconfigured.nmconnection` has. The connection UUID is derived from the variant and SSID
    /// so that the same inputs give the same bytes.
    public static func networkManagerKeyfile(_ wifi: Variant.Wifi, psk: Secret, variantID: String) -> String {
        let hash = Digest.sha256Hex(Array("fleet-images/nmconnection/\(variantID)/\(wifi.ssid)".utf8))
        let h = Array(hash)
        // RFC 4122 layout, version 5-style bits set on a SHA-256 prefix.
        let uuid = String(h[0..<8]) + "-" + String(h[8..<12]) + "-5" + String(h[13..<16]) + "-" + ["8", "9", "a", "b"][Int(String(h[16]), radix: 16)! & 3] + String(h[17..<20]) + "-" + String(h[20..<32])
        return """
        [connection]
        id=preconfigured
        uuid=\(uuid)
        type=wifi

        [wifi]
        mode=infrastructure
        ssid=\(keyfileSSID(wifi.ssid))
        hidden=\(wifi.hidden ? "true" : "false")

        [wifi-security]
        key-mgmt=wpa-psk
        psk=\(keyfileString(psk.unsafeString))

        [ipv4]
        method=auto

        [ipv6]
        addr-gen-mode=default
        method=auto

        [proxy]

        """
    }

    /// NetworkManager reads an SSID either as text or as a `;`-separated list of byte values;
    /// anything beyond plain printable text goes as bytes so that it survives exactly.
    static func keyfileSSID(_ ssid: String) -> String {
        let bytes = Array(ssid.utf8)
        let plain = bytes.allSatisfy { (33...126).contains($0) && $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "#") }
            || (bytes.allSatisfy { (32...126).contains($0) && $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "#") }
                && bytes.first != 32 && bytes.last != 32)
        return plain ? ssid : bytes.map(String.init).joined(separator: ";") + ";"
    }

    /// GLib key-file string escaping for the characters a printable-ASCII passphrase can hold.
    static func keyfileString(_ text: String) -> String {
        var out = ""
        let chars = Array(text)
        for (index, char) in chars.enumerated() {
            switch char {
            case "\\": out += "\\\\"
            case " " where index == 0 || index == chars.count - 1: out += "\\s"
            default: out.append(char)
            }
        }
        return out
    }
}
