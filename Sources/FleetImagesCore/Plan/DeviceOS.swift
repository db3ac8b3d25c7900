/// What the base image runs, as far as the first-boot contract cares: the Raspberry Pi OS (Debian)
/// release, how it takes first-boot settings, and the facts of the image the content depends on.
/// Read from the base image by ``BaseImageInspector``; `base_image.os` overrides the release and format.
public struct DeviceOS: Sendable, Codable, Equatable {
    /// The UID-1000 user pi-gen creates (renamed by userconf-pi to the manifest's `user.name`).
    public struct FirstUser: Sendable, Codable, Equatable {
        public var name: String
        public var home: String
        public var uid: UInt32
        public var gid: UInt32

        public init(name: String, home: String, uid: UInt32, gid: UInt32) {
            self.name = name
            self.home = home
            self.uid = uid
            self.gid = gid
        }
    }

    /// `VERSION_CODENAME` (`bookworm`, `trixie`).
    public var codename: String
    /// `PRETTY_NAME`, for `plan` and messages.
    public var prettyName: String
    public var initFormat: InitFormat
    /// True when `base_image.os` chose the release or format instead of detection.
    public var overridden: Bool
    public var firstUser: FirstUser?
    /// The image ships cloud-init (and it is not disabled).
    public var hasCloudInit: Bool
    /// Raspberry Pi's own cloud-init module (`cc_rpi_userdata`) is there: it takes `rpi_userconf`.
    public var hasRaspberryPiUserconfModule: Bool
    /// `/var/lib/systemd/rfkill/*:wlan` files the image has (pi-gen writes `1` in them: WLAN blocked).
    public var rfkillWlanFiles: [String]
    /// Paths asked about (first-boot commands not placed by the manifest) and whether the image has them.
    public var probedPaths: [String: Bool]

    public static let supportedCodenames = ["bookworm", "trixie"]

    /// Stands in when the base image could not be read at all: the run records every variant it
    /// would build as failed with the reason, so nothing planned with it is ever built.
    static let unresolved = DeviceOS(codename: "unknown", prettyName: "unreadable base image", initFormat: .userconf,
                                     firstUser: nil, hasCloudInit: false)

    public init(codename: String, prettyName: String, initFormat: InitFormat, overridden: Bool = false, firstUser: FirstUser?,
                hasCloudInit: Bool, hasRaspberryPiUserconfModule: Bool = false, rfkillWlanFiles: [String] = [], probedPaths: [String: Bool] = [:]) {
        self.codename = codename
        self.prettyName = prettyName
        self.initFormat = initFormat
        self.overridden = overridden
        self.firstUser = firstUser
        self.hasCloudInit = hasCloudInit
        self.hasRaspberryPiUserconfModule = hasRaspberryPiUserconfModule
        self.rfkillWlanFiles = rfkillWlanFiles
        self.probedPaths = probedPaths
    }

    /// One line for `plan`: `Debian GNU/Linux 12 (bookworm), first boot: userconf`.
    public var summary: String {
        "\(prettyName.contains(codename) ? prettyName : "\(prettyName) (\(codename))"), first boot: \(initFormat.rawValue)\(overridden ? " (set by base_image.os)" : "")"
    }

    /// Fields of an os-release file (`KEY=value`, values optionally quoted).
    static func parseOSRelease(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            var value = String(trimmed[trimmed.index(after: equals)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            fields[String(trimmed[..<equals])] = value
        }
        return fields
    }

    /// The first-boot format for a release, when `base_image.os` does not say.
    static func defaultFormat(codename: String, hasCloudInit: Bool) -> InitFormat {
        hasCloudInit && codename != "bookworm" ? .cloudInit : .userconf
    }
}

/// Why the base image's OS cannot be used: exit 2, with what was found and what to do.
public struct DeviceOSError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
