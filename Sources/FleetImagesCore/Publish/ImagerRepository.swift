import Foundation

/// A Raspberry Pi Imager repository of the fleet: the `os_list` JSON that
/// `rpi-imager --repo URL-or-FILE` opens, one entry per variant with a recorded image, so that a
/// technician picks their site's image in the tool they know. Made from what Imager 2.0's own
/// source reads (`src/oslistmodel.cpp`, `src/imagewriter.cpp`, `doc/json-schema/os-list-schema.json`
/// of raspberrypi/rpi-imager):
///
/// - `url` must be absolute: Imager does not resolve a relative one against the list's location.
/// - `extract_sha256` is of the uncompressed image: Imager hashes what it writes and stops on a
///   mismatch. `image_download_size`/`_sha256` are of the file downloaded.
/// - `init_format` outside `systemd`, `cloudinit`, `cloudinit-rpi`, `rpi-preseed`, `none`, `""`
///   drops the entry from the list. These images are customized already (user, Wi-Fi, claim,
///   first boot): `none` keeps Imager's customization wizard away from them, unless asked.
/// - `release_date` is `YYYY-MM-DD`.
public struct ImagerRepository: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var description: String
        public var url: String
        public var icon: String
        public var extractSize: Int64
        public var extractSHA256: String
        public var downloadSize: Int64
        public var downloadSHA256: String
        public var releaseDate: String
        public var initFormat: String
        public var devices: [String]
        public var architecture: String
    }

    /// A variant left out, and why (never built, its image gone).
    public struct Skipped: Sendable, Equatable {
        public var variant: String
        public var reason: String
    }

    public var entries: [Entry]
    public var skipped: [Skipped]

    /// The init formats Imager keeps an entry for.
    public static let initFormats = ["none", "systemd", "cloudinit", "cloudinit-rpi", "rpi-preseed"]
    /// `fleet-images-icon.svg`: written beside the list, named by every entry (Imager requires an icon).
    public static let iconName = "fleet-images-icon.svg"

    /// Checks `--base-url`: an absolute http(s) URL; returned with one trailing slash.
    public static func baseURL(_ text: String) -> Result<String, PublishProblem> {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil else {
            return .failure(PublishProblem("--base-url \(text): give the http(s) URL the output folder is served at, e.g. https://images.example.com/fleet/"))
        }
        return .success(text.hasSuffix("/") ? text : text + "/")
    }

    /// One entry per variant whose latest successful build has its files in `outputDirectory`:
    /// the compressed copy when there is one (what a site downloads), else the raw image.
    /// - Parameters:
    ///   - builds: the latest reusable build of each variant (``ProvenanceStore/latestBuilds(variantIDs:)``).
    ///   - os: the base image's OS (for `init_format` when `imagerCustomization`).
    public static func make(fleet: String, variants: [Variant], builds: [String: BuildRecord], outputDirectory: String,
                            baseURL: String, architecture: String, devices: [String], os: DeviceOS?,
                            imagerCustomization: Bool) -> ImagerRepository {
        let output = URL(fileURLWithPath: outputDirectory).standardizedFileURL.path
        var entries: [Entry] = []
        var skipped: [Skipped] = []
        for variant in variants {
            guard let build = builds[variant.id], BuildStatus.withArtifact.contains(build.status),
                  let raw = build.artifactPath, let rawSize = build.artifactSize, let rawSHA256 = build.artifactSHA256 else {
                skipped.append(Skipped(variant: variant.id, reason: "no successful build recorded; run `fleet-images build`"))
                continue
            }
            let download: (path: String, size: Int64, sha256: String)
            if let path = build.compressedPath, let size = build.compressedSize, let sha256 = build.compressedSHA256 {
                download = (path, size, sha256)
            } else {
                download = (raw, rawSize, rawSHA256)
            }
            let absolute = URL(fileURLWithPath: download.path).standardizedFileURL.path
            guard absolute.hasPrefix(output + "/") else {
                skipped.append(Skipped(variant: variant.id, reason: "its image \(download.path) is not in the output folder \(output)"))
                continue
            }
            guard FileManager.default.fileExists(atPath: absolute) else {
                skipped.append(Skipped(variant: variant.id, reason: "its image \(download.path) is gone (pruned or moved); build it again"))
                continue
            }
            let relative = String(absolute.dropFirst(output.count + 1))
            var words = ["Site \(variant.site)"]
            if !variant.axes.isEmpty { words.append(variant.axes.map { "\($0.axis) \($0.value)" }.joined(separator: ", ")) }
            words.append(variant.region)
            if let wifi = variant.wifi { words.append("Wi-Fi \"\(wifi.ssid)\" (\(wifi.country))") }
            words.append("build \(build.id.map(String.init) ?? "?")")
            if let key = build.signingKeyFingerprint { words.append("signed by key \(key.prefix(16))…") }
            let format = imagerCustomization ? os.map(initFormat(for:)) ?? "none" : "none"
            entries.append(Entry(
                name: "\(fleet) \(variant.id)", description: words.joined(separator: " · "),
                url: baseURL + percentEncoded(relative), icon: baseURL + iconName,
                extractSize: rawSize, extractSHA256: rawSHA256, downloadSize: download.size, downloadSHA256: download.sha256,
                releaseDate: day(build.finishedAt ?? build.startedAt), initFormat: format, devices: devices, architecture: architecture))
        }
        return ImagerRepository(entries: entries, skipped: skipped)
    }

    /// What Imager's customization would write for this OS: Bookworm's `firstrun.sh` (`systemd`),
    /// Trixie's cloud-init (`cloudinit-rpi`).
    static func initFormat(for os: DeviceOS) -> String {
        os.hasCloudInit ? "cloudinit-rpi" : "systemd"
    }

    /// Imager's `architecture` for a manifest's `base_image.arch`, and devices whose boards run it.
    public static func imagerArchitecture(_ arch: String) -> (architecture: String, devices: [String]) {
        arch == "arm64" ? ("armv8", ["pi5", "pi4", "pi3"]) : ("armhf", ["pi4-32bit", "pi3-32bit", "pi2-32bit"])
    }

    /// The `os_list` document, keys sorted.
    public func json() throws -> Data {
        let list: [[String: Any]] = entries.map { entry in
            [
                "name": entry.name, "description": entry.description, "url": entry.url, "icon": entry.icon,
                "extract_size": entry.extractSize, "extract_sha256": entry.extractSHA256,
                "image_download_size": entry.downloadSize, "image_download_sha256": entry.downloadSHA256,
                "release_date": entry.releaseDate, "init_format": entry.initFormat,
                "devices": entry.devices, "architecture": entry.architecture,
            ]
        }
        var data = try JSONSerialization.data(withJSONObject: ["os_list": list], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        data.append(0x0A)
        return data
    }

    /// The icon every entry names: the fleet's initial on a disc, no external asset.
    public static func icon(fleet: String) -> String {
        let letter = fleet.first.map { String($0).uppercased() } ?? "F"
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">
              <circle cx="20" cy="20" r="19" fill="#1b5e20"/>
              <text x="20" y="27" font-family="sans-serif" font-size="20" font-weight="bold" text-anchor="middle" fill="#ffffff">\(letter)</text>
            </svg>

            """
    }

    static func day(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: date)
    }

    /// What may stand unencoded in a URL path segment list (no `?`, `#`, sub-delimiters).
    private static let pathAllowed: CharacterSet = {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#[]@!$&'()*+,;=")
        return allowed
    }()

    static func percentEncoded(_ path: String) -> String {
        // Output paths are variant ids, stamps and digests: letters, digits, `-._~/` need no encoding.
        let plain = path.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E || byte == 0x2F
        }
        return plain ? path : path.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? path
    }
}

public struct PublishProblem: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
