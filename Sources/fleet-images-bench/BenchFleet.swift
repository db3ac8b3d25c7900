import FleetImagesCore
import Foundation

/// A generated fleet folder shaped like the demo fleet: N sites across five AWS regions, each
/// with its own claim certificate and key (hard links into the certificate cache), its own Wi-Fi
/// passphrase file, the demo's four common files (one on the boot partition), a fresh signing key
/// and a base image.
struct BenchFleet {
    enum Base {
        /// A 1 MiB raw file: for builders that never read the base image.
        case tiny
        /// An existing image or archive, linked into `base/` under its own name.
        case file(path: String, sha256: String)
    }

    static let regions: [(region: String, country: String, data: String, credentials: String)] = [
        ("eu-central-1", "CH", "a3bench1example", "c2bench1example"),
        ("eu-west-1", "IE", "a3bench2example", "c2bench2example"),
        ("us-east-1", "US", "a1bench3example", "c7bench3example"),
        ("us-west-2", "US", "a1bench4example", "c7bench4example"),
        ("ap-southeast-2", "AU", "a5bench5example", "c9bench5example"),
    ]

    let directory: String
    let siteIDs: [String]
    var manifestPath: String { directory + "/fleet.json" }

    static func siteID(_ i: Int) -> String { "site-" + ClaimCertificateCache.siteFolder(i) }

    /// Writes the fleet into `directory` (which must exist and be empty).
    static func make(sites count: Int, in directory: String, base: Base = .tiny) throws -> BenchFleet {
        let (certificates, _) = try ClaimCertificateCache.ensure(count: count)
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/certs", withIntermediateDirectories: true)
        chmod(directory + "/certs", 0o700)
        var ids: [String] = []
        var sites: [[String: Any]] = []
        ids.reserveCapacity(count)
        sites.reserveCapacity(count)
        for i in 1...count {
            let id = siteID(i)
            let source = certificates + "/" + ClaimCertificateCache.siteFolder(i)
            let folder = directory + "/certs/" + id
            guard mkdir(folder, 0o700) == 0 else { throw BenchError("cannot create \(folder): \(String(cString: strerror(errno)))") }
            for name in ["claim.pem.crt", "claim.private.pem.key", "wifi.psk"] {
                try Files.linkOrCopy(source + "/" + name, to: folder + "/" + name)
            }
            let region = regions[(i - 1) % regions.count]
            ids.append(id)
            sites.append([
                "id": id,
                "region": region.region,
                "iot": [
                    "data_endpoint": "\(region.data)-ats.iot.\(region.region).amazonaws.com",
                    "credential_endpoint": "\(region.credentials).credentials.iot.\(region.region).amazonaws.com",
                ],
                "claim": ["certificate": "certs/\(id)/claim.pem.crt", "private_key": "certs/\(id)/claim.private.pem.key"],
                "wifi": ["ssid": "Bench-\(id)", "country": region.country, "psk_file": "certs/\(id)/wifi.psk"],
            ])
        }

        try Files.write(directory + "/variants/common/config.yaml", "system:\n  rootpath: /greengrass/v2\nservices:\n  aws.greengrass.Nucleus:\n    version: 2.12.0\n")
        try Files.write(directory + "/variants/common/provision.sh", "#!/bin/sh\n# bench stand-in for the provisioning script\nexit 0\n", mode: 0o755)

        try fm.createDirectory(atPath: directory + "/keys", withIntermediateDirectories: true)
        try KeyGeneration.generate(.ecP256, privateKeyPath: directory + "/keys/bench-signing.key.pem",
                                   publicKeyPath: directory + "/keys/bench-signing.pub.pem")

        let baseSource: String
        let baseSHA: String
        try fm.createDirectory(atPath: directory + "/base", withIntermediateDirectories: true)
        switch base {
        case .tiny:
            baseSource = "base/bench-base.img"
            var bytes = [UInt8](repeating: 0, count: 1 << 20)
            for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 7) }
            guard fm.createFile(atPath: directory + "/" + baseSource, contents: Data(bytes)) else { throw BenchError("cannot write the base image") }
            baseSHA = try Digest.sha256Hex(fileAt: directory + "/" + baseSource)
        case .file(let path, let sha256):
            baseSource = "base/" + (path as NSString).lastPathComponent
            try Files.linkOrCopy(path, to: directory + "/" + baseSource)
            baseSHA = sha256
        }

        let manifest: [String: Any] = [
            "format": 1,
            "fleet": "bench",
            // The bench images stand in for Raspberry Pi OS Bookworm but carry no os-release of their own.
            "base_image": ["source": baseSource, "sha256": baseSHA, "arch": "arm64", "partitions": ["boot": 1, "root": 2],
                           "os": ["codename": "bookworm"]],
            "builder": ["type": "inject", "timeout": "30m"],
            "output": ["directory": "build/images"],
            "signing": ["private_key": "keys/bench-signing.key.pem", "public_key": "keys/bench-signing.pub.pem"],
            "defaults": [
                "iot": ["role_alias": "GreengrassV2TokenExchangeRoleAlias", "provisioning_template": "GreengrassFleetProvisioning"],
                // Everything the demo fleet's device contract writes: login, SSH, per-device names, locale, enrolment unit.
                "hostname": "{fleet}-{site}-{serial}",
                // No "user" and no keys: the Raspberry Pi OS-sized bench image has no /etc/passwd with the
                // UID-1000 user they need (userconf.txt and authorized_keys are two small files more).
                "ssh": ["password_authentication": true],
                "timezone": "Europe/Zurich", "keyboard": "ch", "locale": "de_CH.UTF-8",
                "first_boot": ["command": ["/usr/local/lib/fleet-images/provision.sh"], "retry": "5m"],
                "files": [
                    ["source": "variants/common/config.yaml", "destination": "/etc/fleet-images/config.yaml", "mode": "0600", "owner": "0:0"],
                    ["source": "variants/common/provision.sh", "destination": "/usr/local/lib/fleet-images/provision.sh", "mode": "0700", "owner": "0:0"],
                ],
            ] as [String: Any],
            "sites": sites,
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        guard fm.createFile(atPath: directory + "/fleet.json", contents: data) else { throw BenchError("cannot write fleet.json") }
        return BenchFleet(directory: directory, siteIDs: ids)
    }

    /// Paths of every site's claim certificate, in site order.
    var certificatePaths: [String] {
        siteIDs.map { directory + "/certs/\($0)/claim.pem.crt" }
    }
}
