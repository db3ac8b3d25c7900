import Foundation

/// The lock on the output folder itself: two runs with different state folders (so different
/// run locks and databases) on one output folder never overlap, or `latest` would end up on a
/// build that the other database recorded.
///
/// An advisory `flock` on the folder (opened `O_DIRECTORY`): no file is added to the output, and
/// the kernel releases the lock when the holder dies, however it dies. The holder is found in
/// `/proc/locks` to say who has it.
public final class OutputLock: @unchecked Sendable {
    // @unchecked: `fd` is set once in init and closed once in deinit.
    private let fd: Int32
    public let path: String

    public enum Failure: Error, CustomStringConvertible {
        case held(path: String, holder: String)
        case cannotOpen(path: String, reason: String)

        public var description: String {
            switch self {
            case .held(let path, let holder):
                "another fleet-images run is writing to the output folder \(path) (\(holder)); runs with different --state folders cannot share an output folder at the same time. Wait for it, or pass --wait-lock 30m"
            case .cannotOpen(let path, let reason):
                "cannot lock the output folder \(path): \(reason)"
            }
        }
    }

    /// Takes the lock on `path` (created, mode 0750, when missing), waiting up to `waitSeconds`.
    public init(path: String, waitSeconds: Int = 0) async throws {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        } catch {
            throw Failure.cannotOpen(path: path, reason: error.localizedDescription)
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let deadline = Date().addingTimeInterval(TimeInterval(waitSeconds))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() >= deadline {
                let holder = Self.holder(of: fd)
                close(fd)
                throw Failure.held(path: path, holder: holder)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// "pid N: fleet-images build --state …" from `/proc/locks` and `/proc/N/cmdline`.
    static func holder(of fd: Int32) -> String {
        var info = stat()
        guard fstat(fd, &info) == 0, let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return "holder unknown" }
        // "1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF": MAJOR:MINOR in hex, then the inode.
        let device = String(format: "%02x:%02x:%llu", major(info.st_dev), minor(info.st_dev), UInt64(info.st_ino))
        for line in locks.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == device, let pid = Int32(fields[4]) else { continue }
            let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let command = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
            return "pid \(pid)" + (command.isEmpty ? "" : ": \(command)")
        }
        return "holder unknown"
    }
}

private func major(_ device: dev_t) -> UInt32 { UInt32((device >> 8) & 0xfff) | UInt32((device >> 32) & ~0xfff) }
private func minor(_ device: dev_t) -> UInt32 { UInt32(device & 0xff) | UInt32((device >> 12) & ~0xff) }
