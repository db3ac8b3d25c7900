/// A fleet manifest (`fleet.json`, format 1) as read and checked for shape: every value has the
/// right type and form. Whether files exist, secrets resolve and certificates are valid is
/// checked afterwards by ``ManifestChecker``, and the per-site images it means are produced by
/// ``Expansion``.
public struct Manifest: Sendable {
    /// Absolute path of the manifest file.
    public var filePath: String
    /// Absolute path of the folder holding the manifest; every relative path is relative to it.
    public var directory: String
    public var fleet: String
    public var baseImage: BaseImageSpec
    public var builder: BuilderSpec
    public var output: OutputSpec
    public var signing: SigningSpec
    public var allowInlinePSK: Bool
    public var defaults: SiteSettings
    public var sites: [SiteEntry]
    /// Matrix axes sorted by name, which fixes the order of variant ids.
    public var matrix: [MatrixAxis]
}

/// Where the base image comes from and how to find its partitions.
public struct BaseImageSpec: Sendable {
    public enum Source: Sendable, Equatable {
        /// A path relative to the manifest folder.
        case path(String)
        /// An http(s) URL.
        case url(String)
    }

    public var source: Source
    /// Lower-case hex SHA-256 of the file `source` names (the archive, when compressed).
    public var sha256: String?
    public var checksumURL: String?
    public var arch: String
    /// Partition numbers (1-based); nil means "find by type".
    public var bootPartition: Int?
    public var rootPartition: Int?
    /// Where the boot partition is mounted on the device; destinations under it go to the FAT partition.
    public var bootMount: String
    /// `base_image.os`: what the operator says the base image runs, overriding detection.
    public var os: Located<OSOverride>? = nil
}

/// `base_image.os`: the release and first-boot format, when detection must not decide.
public struct OSOverride: Sendable, Equatable {
    public var codename: String
    /// Nil: the release's usual format (bookworm → userconf; trixie → cloud-init when the image has it).
    public var initFormat: InitFormat?
}

/// How a Raspberry Pi OS release takes its first-boot settings.
public enum InitFormat: String, Sendable, Codable, CaseIterable {
    /// Bookworm style: `userconf.txt` on the boot partition (Raspberry Pi OS's userconf-pi applies
    /// and deletes it), everything else as files in the root file system.
    case userconf
    /// Cloud-init's NoCloud seed on the boot partition: `user-data`, `meta-data`, `network-config`.
    case cloudInit = "cloud-init"
}

public enum BuilderKind: String, Sendable, CaseIterable, Codable {
    case inject
    case packerDocker = "packer-docker"
}

public struct BuilderSpec: Sendable {
    public enum PackerMode: String, Sendable, CaseIterable {
        case perVariant = "per-variant"
        case base
    }

    public static let defaultDockerArgs = ["--privileged", "-v", "/dev:/dev"]

    public var kind: BuilderKind
    public var timeoutSeconds: Int
    public var image: String?
    public var template: String?
    public var dockerArgs: [String]
    public var packerMode: PackerMode
    /// `builder.variables`: values for the template's user variables, in name order.
    public var variables: [PackerVariable] = []
}

/// One of the Packer template's user variables set by the manifest (`builder.variables`). A
/// plain value is written in the manifest; one from the environment or a file is a secret (a
/// password hash, a token): it reaches Packer only through a 0600 var-file in the build context,
/// is listed in the template's `sensitive-variables`, and only its name and an HMAC are recorded.
public struct PackerVariable: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case plain(String)
        case environment(String)
        case file(String)
    }

    public var name: String
    public var value: Value
    public var path: JSONPath

    public var isSecret: Bool {
        if case .plain = value { return false }
        return true
    }

    /// What Packer accepts as a user variable's name.
    public static func isName(_ text: String) -> Bool {
        guard let first = text.utf8.first, Names.isAlnum(first) && !Names.isDigit(first) || first == UInt8(ascii: "_") else { return false }
        return text.utf8.allSatisfy { Names.isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }
}

public struct OutputSpec: Sendable {
    public var directory: String
    public var group: String?
    /// `compress` and `compress_level`: a compressed copy of every image, or nil (`none`, the default).
    public var compression: CompressionSpec?
    /// `keep_raw` (default true): false removes the raw `.img` once its compressed copy, signature
    /// and block map are written (they are all made from it in one read).
    public var keepRaw: Bool = true

    public init(directory: String, group: String?, compression: CompressionSpec? = nil, keepRaw: Bool = true) {
        self.directory = directory
        self.group = group
        self.compression = compression
        self.keepRaw = keepRaw
    }
}

public struct SigningSpec: Sendable {
    public enum Passphrase: Sendable, Equatable {
        case environment(String)
        case file(String)
    }

    public var privateKey: Located<String>
    public var publicKey: Located<String>
    public var passphrase: Located<Passphrase>?
    public var rsaPadding: String
}

/// Where a Wi-Fi passphrase comes from. The manifest names a source; the value itself is read
/// only when needed and never printed.
public enum PSKSource: Sendable, Equatable {
    case environment(String)
    case file(String)
    case inline(Secret)
}

/// A file the manifest puts into images.
public struct FileEntry: Sendable, Equatable {
    public var source: String
    public var destination: String
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// True when `owner` or `mode` was written in the manifest (a boot-partition file cannot have an owner).
    public var ownerGiven: Bool
    public var path: JSONPath
}

public struct IoTSettings: Sendable {
    public var dataEndpoint: Located<String>?
    public var credentialEndpoint: Located<String>?
    public var roleAlias: Located<String>?
    public var provisioningTemplate: Located<String>?
}

public struct ClaimSettings: Sendable {
    public var certificate: Located<String>?
    public var privateKey: Located<String>?
}

public struct WifiSettings: Sendable {
    public var ssid: Located<String>?
    public var country: Located<String>?
    public var psk: Located<PSKSource>?
    public var hidden: Located<Bool>?
}

/// The settings a site can have; the same shape appears in `defaults`, in each site and in a
/// matrix value's `set`. Every field is optional here: precedence fills them in.
public struct SiteSettings: Sendable {
    public var region: Located<String>?
    public var iot = IoTSettings()
    public var claim = ClaimSettings()
    public var wifi = WifiSettings()
    public var hostname: Located<String>?
    public var files: [FileEntry] = []
    public var user = UserSettings()
    public var ssh = SSHSettings()
    public var timezone: Located<String>?
    public var keyboard: Located<String>?
    public var locale: Located<String>?
    public var firstBoot = FirstBootSettings()

    public init() {}
}

/// Where a crypt(3) password hash comes from; like a passphrase, it is read only when needed and never printed.
public enum PasswordHashSource: Sendable, Equatable {
    case environment(String)
    case file(String)
}

/// `user`: the login account (Raspberry Pi OS renames its UID-1000 user to `name`).
public struct UserSettings: Sendable {
    public var name: Located<String>?
    public var passwordHash: Located<PasswordHashSource>?
}

/// `ssh`: sshd on at first boot, with these public keys for the user, and password logins on or off.
public struct SSHSettings: Sendable {
    /// Repository paths of OpenSSH public key files (`authorized_keys` lines).
    public var authorizedKeys: Located<[String]>?
    public var passwordAuthentication: Located<Bool>?
}

/// `first_boot`: the enrolment command run once by a root-owned systemd unit, or the seed's legacy layout.
public struct FirstBootSettings: Sendable {
    /// Absolute path on the device, then its arguments.
    public var command: Located<[String]>?
    /// Seconds between attempts while the command has not succeeded.
    public var retrySeconds: Located<Int>?
    /// `"layout": "legacy-home-pi"`: the seed project's `/home/pi` files, started from `/etc/rc.local`.
    public var legacyLayout: Located<Bool>?
}

public struct SiteEntry: Sendable {
    public var id: String
    public var settings: SiteSettings
    public var path: JSONPath
}

public struct MatrixAxis: Sendable {
    public struct Value: Sendable {
        public var value: String
        public var settings: SiteSettings
        public var path: JSONPath
    }

    public var name: String
    public var values: [Value]
}
