import Foundation

/// Where fleet-images keeps what it generates beside a manifest: the provenance database, the
/// local HMAC key, the run lock, the base-image cache, work folders and build logs. By default
/// `.fleet-images/` in the manifest's folder; `--state PATH` moves it.
public struct StateLocation: Sendable {
    public var directory: String

    public init(directory: String) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
    }

    public init(manifestDirectory: String, override: String?) {
        self.init(directory: override ?? (manifestDirectory + "/.fleet-images"))
    }

    public var databasePath: String { directory + "/provenance.sqlite" }
    public var lockPath: String { directory + "/lock" }
    public var cacheDirectory: String { directory + "/cache" }
    public var workDirectory: String { directory + "/work" }
    public var logDirectory: String { directory + "/logs" }
    public var claimCachePath: String { directory + "/claim-checks.json" }

    /// Creates the folder (mode 0750: it holds keys in work files and the HMAC key).
    public func create() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
    }
}
