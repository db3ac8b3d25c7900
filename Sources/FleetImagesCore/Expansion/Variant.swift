/// One image to build: a site, possibly multiplied by matrix axis values, with every setting
/// resolved (defaults ⊕ site ⊕ axis values).
public struct Variant: Sendable, Equatable {
    public struct AxisValue: Sendable, Equatable, Codable {
        public var axis: String
        public var value: String
    }

    public struct IoT: Sendable, Equatable {
        public var dataEndpoint: String
        public var credentialEndpoint: String
        public var roleAlias: String
        public var provisioningTemplate: String
    }

    public struct Claim: Sendable, Equatable {
        /// Paths relative to the manifest folder.
        public var certificate: String
        public var privateKey: String
        /// Where they were set, for messages about the files.
        public var certificatePath: JSONPath
        public var privateKeyPath: JSONPath
    }

    public struct Wifi: Sendable, Equatable {
        public var ssid: String
        public var country: String
        public var psk: PSKSource
        public var pskPath: JSONPath
        public var hidden: Bool
    }

    public struct User: Sendable, Equatable {
        public var name: String
        /// Nil: no password (log in with an SSH key only).
        public var passwordHash: PasswordHashSource?
        public var namePath: JSONPath
        public var passwordHashPath: JSONPath?
    }

    public struct SSH: Sendable, Equatable {
        public struct Key: Sendable, Equatable {
            /// Repository path of the public key file.
            public var file: String
            public var path: JSONPath
        }
        public var authorizedKeys: [Key]
        public var passwordAuthentication: Bool
    }

    public struct FirstBoot: Sendable, Equatable {
        public enum Mode: Sendable, Equatable {
            /// A root-owned oneshot unit runs `command` once, after network-online and time sync;
            /// exit 0 ends it for good, exit 75 means "not yet" (retried by the timer without failing).
            case unit(command: [String], retrySeconds: Int)
            /// The seed project's layout: claim files in `/home/pi`, started by the manifest's own `/etc/rc.local`.
            case legacyHomePi
        }
        public var mode: Mode
        public var path: JSONPath
    }

    /// A stable id: `<site>` or `<site>-<axis value>…`, safe as a file and container name.
    public var id: String
    public var site: String
    public var axes: [AxisValue]
    public var region: String
    public var iot: IoT
    public var claim: Claim
    /// Nil for a site without Wi-Fi (wired).
    public var wifi: Wifi?
    public var hostname: String
    /// The manifest's files, then the site's overlay tree; later destinations replace earlier ones.
    public var files: [FileEntry]
    public var user: User? = nil
    public var ssh: SSH? = nil
    /// `Area/City` as in `/usr/share/zoneinfo`.
    public var timezone: String? = nil
    /// An XKB layout (`ch`, `de`, `us`).
    public var keyboard: String? = nil
    /// A glibc locale (`de_CH.UTF-8`).
    public var locale: String? = nil
    /// Nil: fleet-images installs no first-boot job (the image's own files must do it).
    public var firstBoot: FirstBoot? = nil

    /// `{serial}` in the hostname is resolved on the device at first boot.
    public static let serialPlaceholder = "{serial}"
    public var hostnameUsesSerial: Bool { hostname.contains(Self.serialPlaceholder) }
}
