import Foundation
import GRDB

/// Space held back in the state folder so that a run's records can always be finished.
///
/// A state disk that fills during a build (a runaway log, another program, a too-small volume)
/// would otherwise leave the run `running` in the database: SQLite needs room in its WAL to write
/// the end of the run. The build keeps a preallocated file of ``size`` bytes (`space-reserve`)
/// in the state folder; when a write to the records fails because the disk is full, the store
/// deletes that file and tries the write once more, so the run is recorded as what it was
/// (`failed`, with the reason). The next build on a disk with room makes the file again.
public final class SpaceReserve: Sendable {
    public static let fileName = "space-reserve"
    /// Enough for the WAL frames of the writes that end a run (a few pages each), many times over.
    public static let size: Int = 1 << 20

    public let path: String
    private let state = LockedFlag()

    /// Makes sure `<directory>/space-reserve` holds ``size`` allocated bytes. Returns nil (and the
    /// reason in `problem`) when there is no room for it: the run goes on without a reserve.
    public static func ensure(inDirectory directory: String) -> (reserve: SpaceReserve?, problem: String?) {
        let path = directory + "/" + fileName
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return (nil, "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // posix_fallocate allocates real blocks (a sparse file would reserve nothing).
        let result = posix_fallocate(fd, 0, off_t(size))
        guard result == 0 else {
            _ = ftruncate(fd, 0)
            unlink(path)
            return (nil, "\(path): \(String(cString: strerror(result)))")
        }
        return (SpaceReserve(path: path), nil)
    }

    init(path: String) { self.path = path }

    /// Deletes the reserve the first time it is called; true when that freed the space.
    func release() -> Bool {
        guard state.setOnce() else { return false }
        return unlink(path) == 0
    }

    /// Whether the reserve was given up during this run.
    public var released: Bool { state.isSet }
}

/// A flag that goes from false to true once, from any thread.
private final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func setOnce() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if value { return false }
        value = true
        return true
    }

    var isSet: Bool {
        lock.lock(); defer { lock.unlock() }
        return value
    }
}

extension ProvenanceStore {
    /// Whether `error` is SQLite finding no room on the disk.
    static func isDiskFull(_ error: any Error) -> Bool {
        (error as? DatabaseError)?.resultCode == .SQLITE_FULL
    }
}
