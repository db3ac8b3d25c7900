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
}
