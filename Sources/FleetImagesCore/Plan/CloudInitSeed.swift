/// The NoCloud seed fleet-images writes on the boot partition of a cloud-init image (Raspberry Pi
/// OS Trixie): `meta-data`, `user-data`, `network-config`, in the shape Raspberry Pi Imager writes
/// for its `cloudinit-rpi` format (singular `user:` so the distro's default groups are kept,
/// `ssh_pwauth`, sshd enabled from `runcmd`, netplan v2 Wi-Fi with the regulatory domain and the
/// derived 64-hex PSK rather than the passphrase).
///
/// fleet-images writes `/etc/hostname` itself (so that `{serial}` can be resolved on the device),
/// hence `preserve_hostname: true`.
public enum CloudInitSeed {
    public struct User: Sendable {
        public var name: String
        public var passwordHash: Secret?
        public var authorizedKeys: [String]
    }

    public static func metaData(variantID: String) -> String {
        """
        # Written by fleet-images. cloud-init treats a new instance-id as a new machine.
        instance-id: fleet-images-\(variantID)

        """
    }

    /// - Parameter raspberryPiModule: the image has Raspberry Pi's `cc_rpi_userdata` module, which
    ///   otherwise starts the interactive user wizard; `rpi_userconf` lets it rename the UID-1000 user.
    /// - Parameter defaultUserKeys: keys for the image's default user when the manifest names no user.
    public static func userData(variantID: String, user: User?, defaultUserKeys: [String] = [], ssh: Variant.SSH?, timezone: String?, keyboard: String?,
                                locale: String?, raspberryPiModule: Bool) -> String {
        var lines = [
            "#cloud-config",
            "# Written by fleet-images for \(variantID). Applied once at first boot; afterwards",
            "# \(FirstBootUnits.seedCleanupService) removes the settings that hold secrets.",
            "manage_resolv_conf: false",
            "preserve_hostname: true",
        ]
        if let timezone { lines.append("timezone: " + quote(timezone)) }
        if let keyboard {
            lines.append("keyboard:")
            lines.append("  model: pc105")
            lines.append("  layout: " + quote(keyboard))
        }
        if let locale { lines.append("locale: " + quote(locale)) }
        if let user {
            if raspberryPiModule {
                if let hash = user.passwordHash {
                    lines.append("rpi_userconf:")
                    lines.append("  user: " + quote(user.name))
                    lines.append("  password: " + quote(hash.unsafeString))
                } else {
                    lines.append("disable_piwiz: true")
                }
            }
            lines.append("user:")
            lines.append("  name: " + quote(user.name))
            lines.append("  shell: /bin/bash")
            if let hash = user.passwordHash {
                lines.append("  lock_passwd: false")
                lines.append("  passwd: " + quote(hash.unsafeString))
            } else {
                lines.append("  lock_passwd: true")
            }
            if !user.authorizedKeys.isEmpty {
                lines.append("  ssh_authorized_keys:")
                for key in user.authorizedKeys { lines.append("    - " + quote(key)) }
            }
            lines.append("  sudo: null")
        }
        if user == nil, !defaultUserKeys.isEmpty {
            lines.append("ssh_authorized_keys:")
            for key in defaultUserKeys { lines.append("  - " + quote(key)) }
        }
        if let ssh {
            lines.append("ssh_pwauth: " + (ssh.passwordAuthentication ? "true" : "false"))
            lines.append("runcmd:")
            lines.append("  - [systemctl, enable, --now, ssh]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func networkConfig(wifi: Variant.Wifi, psk: Secret) -> String {
        let key = Digest.wpaPSKHex(passphrase: psk.unsafeBytes, ssid: Array(wifi.ssid.utf8))
        var lines = [
            "# Written by fleet-images (netplan v2). The Wi-Fi key is the derived PSK, not the passphrase;",
            "# \(FirstBootUnits.seedCleanupService) removes this file once cloud-init has applied it.",
            "network:",
            "  version: 2",
            "  ethernets:",
            "    eth0:",
            "      dhcp4: true",
            "      optional: true",
            "  wifis:",
            "    wlan0:",
            "      dhcp4: true",
            "      optional: true",
            "      regulatory-domain: " + quote(wifi.country),
            "      access-points:",
            "        " + quote(wifi.ssid) + ":",
        ]
        if wifi.hidden { lines.append("          hidden: true") }
        lines.append("          password: " + quote(key))
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML double-quoted scalar: `\` and `"` escaped, control characters as `\uXXXX`.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
