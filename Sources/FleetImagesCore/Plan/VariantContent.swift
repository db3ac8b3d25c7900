import Foundation

/// What one variant puts into its image, in the order a builder applies it: the seed project's
/// generated files (claim certificate and key, `config_parameters.txt`, the Wi-Fi keyfile,
/// `/etc/hostname`), the manifest's files and overlay, then in-place edits (`/etc/hosts`,
/// `cmdline.txt`). Builders and `plan` both read this list, so what `plan` shows is what is built.
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

public enum VariantContent {
    public static let piUser: (uid: UInt32, gid: UInt32) = (1000, 1000)
    public static let claimCertificatePath = "/home/pi/claim.pem.crt"
    public static let claimKeyPath = "/home/pi/claim.private.pem.key"
    public static let parametersPath = "/home/pi/config_parameters.txt"
    public static let wifiKeyfilePath = "/etc/NetworkManager/system-connections/preconfigured.nmconnection"
    public static let hostnamePath = "/etc/hostname"
    public static let hostsPath = "/etc/hosts"
    public static let regulatoryDomainKey = "cfg80211.ieee80211_regdom"

    /// Destinations fleet-images writes itself; a manifest file may not target them.
    public static let generatedDestinations: Set<String> = [claimCertificatePath, claimKeyPath, parametersPath, wifiKeyfilePath, hostnamePath]

    /// The content list. `psk` is the resolved Wi-Fi passphrase (nil for a wired site).
    public static func items(for variant: Variant, manifest: Manifest, psk: Secret?) -> [ContentItem] {
        let boot = manifest.baseImage.bootMount
        func item(_ destination: String, mode: UInt32, owner: (uid: UInt32, gid: UInt32), _ source: ContentItem.Source) -> ContentItem {
            let (partition, inside) = locate(destination, bootMount: boot)
            return ContentItem(destination: destination, partition: partition, pathInPartition: inside, mode: mode,
                               uid: partition == .boot ? 0 : owner.uid, gid: partition == .boot ? 0 : owner.gid, source: source)
        }
        var items: [ContentItem] = [
            item(claimCertificatePath, mode: 0o644, owner: piUser, .file(variant.claim.certificate, secret: false)),
            item(claimKeyPath, mode: 0o600, owner: piUser, .file(variant.claim.privateKey, secret: true)),
            item(parametersPath, mode: 0o644, owner: piUser,
                 .generated(name: "config_parameters.txt", bytes: Array(configParameters(variant).utf8), secret: false)),
        ]
        if let wifi = variant.wifi, let psk {
            items.append(item(wifiKeyfilePath, mode: 0o600, owner: (0, 0),
                              .generated(name: "preconfigured.nmconnection", bytes: Array(networkManagerKeyfile(wifi, psk: psk, variantID: variant.id).utf8), secret: true)))
        }
        items.append(item(hostnamePath, mode: 0o644, owner: (0, 0), .generated(name: "hostname", bytes: Array((variant.hostname + "\n").utf8), secret: false)))
        for file in variant.files {
            items.append(item(file.destination, mode: file.mode, owner: (file.uid, file.gid), .file(file.source, secret: false)))
        }
        items.append(item(hostsPath, mode: 0o644, owner: (0, 0), .hostsEntry(hostname: variant.hostname)))
        if let wifi = variant.wifi {
            items.append(item(boot + "/cmdline.txt", mode: 0o644, owner: (0, 0), .kernelParameter(key: regulatoryDomainKey, value: wifi.country)))
        }
        return items
    }

    /// Manifest files that collide with what fleet-images generates, or sit on the boot partition with an owner.
    public static func conflicts(of variant: Variant, manifest: Manifest) -> [Diagnostic] {
        var result: [Diagnostic] = []
        let boot = manifest.baseImage.bootMount
        for file in variant.files {
            if generatedDestinations.contains(file.destination) {
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
