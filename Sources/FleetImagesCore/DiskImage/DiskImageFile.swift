#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only file descriptor with positioned reads; errors name the file.
///
/// A `~Copyable` owner so the descriptor is closed exactly once, when the value goes away.
struct DiskImageFile: ~Copyable {
    let path: String
    let descriptor: Int32
    let size: UInt64

    init(readingAt path: String) throws(DiskImageError) {
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer before fstat can refuse it.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .io(path: path, operation: "open for reading", errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .io(path: path, operation: "stat", errno: code)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG || (info.st_mode & S_IFMT) == S_IFBLK else {
            close(fd)
            throw .notADiskImage(path: path, reason: "not a regular file")
        }
        self.path = path
        self.descriptor = fd
        self.size = UInt64(info.st_size)
    }

    deinit { close(descriptor) }

    /// Reads exactly `count` bytes at `offset`, or throws `.truncated` naming `what` when the file ends first.
    func read(at offset: UInt64, count: Int, what: String) throws(DiskImageError) -> [UInt8] {
        guard offset <= size, UInt64(count) <= size - offset else {
            throw .truncated(path: path, detail: "\(what) at byte \(offset) needs \(count) bytes, the file has \(size)")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "read \(what)", errno: errno)
            }
            if got == 0 {
                throw .truncated(path: path, detail: "\(what) at byte \(offset) is cut short")
            }
            done += got
        }
        return bytes
    }
}

/// The `S_IFMT` bits of a host file that this process can open for reading (following symlinks).
func hostFileType(_ path: String) throws(DiskImageError) -> mode_t {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw .io(path: path, operation: "open for reading", errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
    return info.st_mode & S_IFMT
}

extension Array where Element == UInt8 {
    func littleEndian16(at index: Int) -> UInt16 {
        UInt16(self[index]) | UInt16(self[index + 1]) << 8
    }

    func littleEndian32(at index: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(self[index + $1]) << (8 * $1) }
    }

    func littleEndian64(at index: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[index + $1]) << (8 * $1) }
    }

    func ascii(at index: Int, count: Int) -> String {
        String(decoding: self[index..<(index + count)], as: UTF8.self)
    }
}
