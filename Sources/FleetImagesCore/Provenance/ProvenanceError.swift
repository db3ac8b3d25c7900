import Foundation

/// Everything that can go wrong with the provenance database, the state secret key and the
/// provenance documents. Messages name the file and say what to do; none ever holds a secret.
public enum ProvenanceError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file exists but does not start with the SQLite header.
    case notADatabase(path: String)
    /// SQLite says the file is damaged.
    case corrupt(path: String, detail: String)
    /// An SQLite database that this tool did not create (tables, but no migration history).
    case foreignDatabase(path: String, tables: [String])
    /// The database was migrated by a newer fleet-images that knows migrations this binary does not.
    case newerSchema(path: String, unknownMigrations: [String])
    /// The file or its folder cannot be opened or created.
    case cannotOpen(path: String, detail: String)
    /// Any other SQLite failure during `operation`.
    case database(path: String, operation: String, detail: String)
    case runNotFound(id: Int64, path: String)
    case buildNotFound(id: Int64, path: String)
    /// A build can only be finished once, from `running`.
    case buildNotRunning(id: Int64, status: BuildStatus, path: String)
    /// A successful outcome must name its artifact.
    case missingArtifact(buildID: Int64)
    /// Up-to-date rows can only reuse a build that produced an artifact.
    case notReusable(buildID: Int64, status: BuildStatus)
    /// The state secret key is readable by others.
    case secretKeyExposed(path: String, mode: UInt32)
    /// The state secret key file is not a regular file of the expected size.
    case secretKeyInvalid(path: String, detail: String)
    /// Reading, creating or writing a file failed with an errno.
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .notADatabase(let path):
            return "\(path): not an SQLite database (the file does not start with the SQLite header); it was left untouched. Point --state at another path, or move this file away."
        case .corrupt(let path, let detail):
            return "\(path): the provenance database is damaged (\(detail)); it was left untouched. Move it away (fleet-images then creates a new one); `sqlite3 \(path) .recover | sqlite3 recovered.sqlite` salvages what it can."
        case .foreignDatabase(let path, let tables):
            return "\(path): an SQLite database that fleet-images did not create (tables: \(tables.joined(separator: ", "))); it was left untouched. Point --state at another path."
        case .newerSchema(let path, let unknown):
            return "\(path): the provenance database was upgraded by a newer fleet-images (unknown migrations: \(unknown.joined(separator: ", "))); it was left untouched. Use that newer version of fleet-images."
        case .cannotOpen(let path, let detail):
            return "\(path): cannot open the provenance database: \(detail). Check that the folder exists and is writable."
        case .database(let path, let operation, let detail):
            return "\(path): \(operation) failed: \(detail)"
        case .runNotFound(let id, let path):
            return "\(path): no run with id \(id)."
        case .buildNotFound(let id, let path):
            return "\(path): no build with id \(id)."
        case .buildNotRunning(let id, let status, let path):
            return "\(path): build \(id) is \(status.rawValue), not running; it cannot be finished again."
        case .missingArtifact(let id):
            return "build \(id): a successful outcome must name its artifact (path, size, SHA-256)."
        case .notReusable(let id, let status):
            return "build \(id) is \(status.rawValue); only a succeeded or up-to-date build can be reused."
        case .secretKeyExposed(let path, let mode):
            return "\(path): the state secret key is readable by other users (mode \(String(mode & 0o777, radix: 8))); run `chmod 600 \(path)`."
        case .secretKeyInvalid(let path, let detail):
            return "\(path): not a usable state secret key (\(detail)); it was left untouched. Move it away to have a new one created (earlier secret digests will then no longer compare equal)."
        case .io(let path, let operation, let code):
            return "\(path): \(operation) failed: \(String(cString: strerror(code)))"
        }
    }
}
