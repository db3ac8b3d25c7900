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
        try refuseUnsafe()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
    }

    /// Refuses a state folder that anyone may write to: another user could swap the database,
    /// the HMAC key or the lock, or plant files in the work folders that hold claim keys.
    public func refuseUnsafe() throws(StateLocationError) {
        var info = stat()
        guard stat(directory, &info) == 0 else { return }  // missing: create() makes it 0750
        if (info.st_mode & S_IWOTH) != 0 {
            throw .worldWritable(path: directory, mode: UInt32(info.st_mode) & 0o7777)
        }
    }

    /// Gives the database (and its -wal and -shm files, which hold the same data) mode 0600, or
    /// 0640 and `group` when the output has a group (its members may then run `ls`). An absent
    /// database is created empty with that mode first, so SQLite's files inherit it from birth.
    public func protectDatabase(group: gid_t?) throws(StateLocationError) {
        let mode: mode_t = group == nil ? 0o600 : 0o640
        let fd = open(databasePath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd >= 0 { close(fd) } else if errno != EEXIST {
            throw .io(path: databasePath, operation: "create", errno: errno)
        }
        for path in [databasePath, databasePath + "-wal", databasePath + "-shm"] {
            if chmod(path, mode) != 0 {
                if errno == ENOENT && path != databasePath { continue }
                throw .io(path: path, operation: "chmod", errno: errno)
            }
            if let group { _ = chown(path, uid_t.max, group) }
        }
    }
}

/// A state folder that cannot be used safely.
public enum StateLocationError: Error, CustomStringConvertible, Equatable, Sendable {
    case worldWritable(path: String, mode: UInt32)
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .worldWritable(let path, let mode):
            "the state folder \(path) is writable by every user (mode \(String(mode, radix: 8))): anyone could replace its database or read claim keys from its work folders. Use a private folder, or `chmod o-w \(path)`."
        case .io(let path, let operation, let code):
            "\(path): \(operation) failed: \(String(cString: strerror(code)))"
        }
    }
}
