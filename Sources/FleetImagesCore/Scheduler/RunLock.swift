import Foundation

/// The run lock beside the database: two nightly runs on the same state never overlap.
///
/// An advisory `flock` on `lock`: the kernel releases it when the holder dies, however it dies, so
/// a stale lock from a killed run is simply free. The file holds the holder's pid, host and start
/// time, to say who has it.
public final class RunLock: @unchecked Sendable {
    // @unchecked: `fd` is set once in init and closed once in deinit.
    private let fd: Int32
    public let path: String

    public enum Failure: Error, CustomStringConvertible {
        case held(path: String, holder: String)
        case cannotOpen(path: String, reason: String)

        public var description: String {
            switch self {
            case .held(let path, let holder):
                "another fleet-images run holds the lock \(path) (\(holder)); wait for it, or pass --wait-lock 30m"
            case .cannotOpen(let path, let reason):
                "cannot open the lock file \(path): \(reason)"
            }
        }
    }

    /// Takes the lock, waiting up to `waitSeconds` (0: fail at once).
    public init(path: String, waitSeconds: Int = 0) async throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let deadline = Date().addingTimeInterval(TimeInterval(waitSeconds))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() >= deadline {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                close(fd)
                throw Failure.held(path: path, holder: holder.isEmpty ? "holder unknown" : holder)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        self.fd = fd
        let note = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Who holds the lock at `path` right now, or nil when nobody does (or there is no lock file).
    /// Never creates the file and never takes the lock: `merge` asks this of a shard's state folder,
    /// which may be read-only.
    public static func holder(path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) != 0 else {
            flock(fd, LOCK_UN)
            return nil
        }
        let note = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return note.isEmpty ? "holder unknown" : note
    }

    deinit {
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }
}
