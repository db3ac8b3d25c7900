import Foundation
import GRDB

/// The provenance database: every run and every variant build, their inputs with digests,
/// their artifacts and signatures. SQLite through GRDB, in WAL mode so that `fleet-images ls`
/// reads while a nightly build writes, without waiting and without seeing half a build
/// (each logical change is one transaction).
///
/// Opening never damages a file it does not understand: a file that is not SQLite, is corrupt,
/// belongs to another program, or was migrated by a newer fleet-images is refused with a
/// ``ProvenanceError`` before anything is written to it.
///
/// The store is a value wrapping a `DatabasePool` (itself thread-safe), so it is `Sendable` and
/// can be shared by the scheduler's tasks. Its methods are synchronous and short (milliseconds);
/// they block the calling thread while SQLite works.
public struct ProvenanceStore: Sendable {
    /// A suggested file name for the database in the state folder.
    public static let defaultFileName = "provenance.sqlite"

    /// The database file.
    public let path: String
    /// A `DatabasePool` when opened for writing; a read-only `DatabaseQueue` from ``openReadOnly(at:)``.
    let pool: any DatabaseWriter
    /// Space this store may give up to finish a write on a full disk (see ``SpaceReserve``).
    var reserve: SpaceReserve?

    /// How long a connection waits for another process's write lock before failing.
    static let busyTimeout: TimeInterval = 30

    /// Opens the database at `path`, creating it on first use and applying pending migrations.
    ///
    /// - Throws: ``ProvenanceError/notADatabase(path:)``, ``ProvenanceError/corrupt(path:detail:)``,
    ///   ``ProvenanceError/foreignDatabase(path:tables:)``, ``ProvenanceError/newerSchema(path:unknownMigrations:)``,
    ///   ``ProvenanceError/cannotOpen(path:detail:)``: the file is left exactly as it was.
    ///
    /// With `checkIntegrity`, an existing file is read in full (`PRAGMA quick_check`) through a
    /// read-only connection first: a damaged file is refused before the first byte is written to
    /// it (``checkIntegrity()`` on an open store comes too late for that).
    public static func open(at path: String, checkIntegrity: Bool = false) throws -> ProvenanceStore {
        let migrator = Self.migrator
        var pending = try inspect(path: path, migrator: migrator, checkIntegrity: checkIntegrity)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration(readonly: false))
        } catch {
            throw mapError(error, path: path, operation: "opening")
        }
        if pending {
            do {
                try migrator.migrate(pool)
            } catch {
                // Another process may have created the same tables at the same moment (two first
                // runs racing): if the database is now complete, that is fine.
                pending = (try? inspect(path: path, migrator: migrator, checkIntegrity: false)) ?? true
                if pending { throw mapError(error, path: path, operation: "migrating the schema") }
            }
        }
        return ProvenanceStore(path: path, pool: pool, reserve: nil)
    }

    /// Opens an existing database for reading only (`ls`, `runs`, `show`): nothing is created,
    /// migrated or recovered, and no write can reach the file (SQLite refuses them on this
    /// connection). Returns nil when there is no database yet (or an empty one): nothing was built.
    ///
    /// A read-only copy on read-only media (an archive, a read-only mount) is read as SQLite's
    /// `immutable` file when the WAL index cannot be created beside it; what a live writer has not
    /// yet checkpointed is then not seen.
    public static func openReadOnly(at path: String) throws -> ProvenanceStore? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw ProvenanceError.io(path: path, operation: "stat", errno: errno)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvenanceError.cannotOpen(path: path, detail: "not a regular file")
        }
        if info.st_size == 0 { return nil }
        guard try fileStartsWithSQLiteHeader(path: path) else {
            throw ProvenanceError.notADatabase(path: path)
        }
        func openQueue(_ name: String) throws -> DatabaseQueue {
            let queue = try DatabaseQueue(path: name, configuration: configuration(readonly: true))
            try queue.read { db in _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
            return queue
        }
        let queue: DatabaseQueue
        do {
            do {
                queue = try openQueue(path)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CANTOPEN {
                queue = try openQueue(immutableURI(path))
            }
        } catch {
            throw mapError(error, path: path, operation: "opening read-only")
        }
        let migrator = Self.migrator
        let state: Bool? = try {
            do {
                return try queue.read { db -> Bool? in
                    try Self.pendingMigrations(db, path: path, migrator: migrator).map(\.isEmpty)
                }
            } catch {
                throw mapError(error, path: path, operation: "reading the schema")
            }
        }()
        guard let complete = state else { return nil }
        guard complete else {
            throw ProvenanceError.database(path: path, operation: "reading", detail: "the database was written by an older fleet-images; the next `fleet-images build` upgrades it")
        }
        return ProvenanceStore(path: path, pool: queue, reserve: nil)
    }

    /// `file:` URI of `path` with `immutable=1` (SQLite is built with URI filenames enabled).
    private static func immutableURI(_ path: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        return "file:" + (path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path) + "?immutable=1"
    }

    /// Runs SQLite's `PRAGMA quick_check` over the whole file (it reads every page: about as long
    /// as reading the file). `open` only checks what it needs; call this before a long write session
    /// (the start of `build`) to refuse a damaged file early.
    public func checkIntegrity() throws {
        let problems = try read("checking integrity") { db in
            try String.fetchAll(db, sql: "PRAGMA quick_check")
        }
        if problems != ["ok"] {
            throw ProvenanceError.corrupt(path: path, detail: problems.prefix(3).joined(separator: "; "))
        }
    }

    /// Closes the database connections (they also close when the last copy of the store goes away).
    /// The store cannot be used afterwards.
    public func close() throws {
        do {
            try pool.close()
        } catch {
            throw Self.mapError(error, path: path, operation: "closing")
        }
    }

    static func configuration(readonly: Bool) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.busyMode = .timeout(busyTimeout)
        configuration.foreignKeysEnabled = true
        configuration.label = "fleet-images.provenance"
        return configuration
    }

    /// Checks an existing file without writing to it. Returns whether migrations are pending.
    private static func inspect(path: String, migrator: DatabaseMigrator, checkIntegrity: Bool) throws -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return true }
            throw ProvenanceError.io(path: path, operation: "stat", errno: errno)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvenanceError.cannotOpen(path: path, detail: "not a regular file")
        }
        if info.st_size == 0 { return true }  // SQLite treats an empty file as a new database.
        guard try fileStartsWithSQLiteHeader(path: path) else {
            throw ProvenanceError.notADatabase(path: path)
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration(readonly: true))
            defer { try? queue.close() }
            return try queue.read { db in
                guard let pending = try Self.pendingMigrations(db, path: path, migrator: migrator) else { return true }
                if !pending.isEmpty || checkIntegrity {
                    // About to change the schema of an existing database: make sure it is sound first.
                    let problems = try String.fetchAll(db, sql: "PRAGMA quick_check")
                    if problems != ["ok"] {
                        throw ProvenanceError.corrupt(path: path, detail: problems.prefix(3).joined(separator: "; "))
                    }
                }
                return !pending.isEmpty
            }
        } catch {
            throw mapError(error, path: path, operation: "reading the schema")
        }
    }

    /// Turns a GRDB error into a ``ProvenanceError`` naming the file.
    static func mapError(_ error: any Error, path: String, operation: String) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        let detail = "\(error.message ?? "SQLite error") (SQLite code \(error.extendedResultCode.rawValue))"
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT:
            return ProvenanceError.corrupt(path: path, detail: detail)
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
            return ProvenanceError.cannotOpen(path: path, detail: detail)
        default:
            return ProvenanceError.database(path: path, operation: operation, detail: detail)
        }
    }

    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch {
            throw Self.mapError(error, path: path, operation: operation)
        }
    }

    func write<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch where Self.isDiskFull(error) && reserve?.release() == true {
            // The transaction was rolled back; with the reserve's space free it is tried once more.
            do {
                return try pool.write(body)
            } catch {
                throw Self.mapError(error, path: path, operation: operation)
            }
        } catch {
            throw Self.mapError(error, path: path, operation: operation)
        }
    }
}

/// Whether the file starts with the 16-byte SQLite header (read with plain POSIX calls: SQLite
/// is never handed a file that is not one of its own).
private func fileStartsWithSQLiteHeader(path: String) throws -> Bool {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ProvenanceError.io(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    var header = [UInt8](repeating: 0, count: 16)
    let count = read(fd, &header, header.count)
    guard count >= 0 else { throw ProvenanceError.io(path: path, operation: "read", errno: errno) }
    return count == 16 && header == Array("SQLite format 3\0".utf8)
}

extension ProvenanceStore {
    /// The migrations this version has that the database lacks; nil for an empty database.
    /// Throws for a database that is not fleet-images' or that a newer version migrated.
    static func pendingMigrations(_ db: Database, path: String, migrator: DatabaseMigrator) throws -> Set<String>? {
        let tables = try String.fetchAll(
            db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        guard !tables.isEmpty else { return nil }
        guard tables.contains("grdb_migrations") else {
            throw ProvenanceError.foreignDatabase(path: path, tables: tables)
        }
        let applied = try migrator.appliedIdentifiers(db)
        let unknown = applied.subtracting(migrator.migrations)
        guard unknown.isEmpty else {
            throw ProvenanceError.newerSchema(path: path, unknownMigrations: unknown.sorted())
        }
        return Set(migrator.migrations).subtracting(applied)
    }
}
