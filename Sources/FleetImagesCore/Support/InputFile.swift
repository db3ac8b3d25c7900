import Foundation

/// Reads the small input files a manifest names (secrets, public keys, hashes) without ever
/// blocking: a FIFO, a socket or a device under a manifest path would make `read` wait for ever
/// (holding the run lock), so the file is opened with `O_NONBLOCK`, checked with `fstat` to be a
/// regular file, and read up to a size bound.
enum InputFile {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// What kind of file `mode` (an `st_mode`) is, in words, for messages.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a folder"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// Nil when `path` (following symbolic links) is a regular file, else why it cannot be read
    /// as one. `stat` never opens the file, so it cannot block on a FIFO.
    static func nonRegularProblem(_ path: String, shown: String, what: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let type = info.st_mode & S_IFMT
        if type == S_IFREG || type == S_IFDIR { return nil }
        return "\(what) \(shown) is \(kind(info.st_mode)), not a regular file; reading it could wait for ever. Name a regular file"
    }

    /// The bytes of the regular file at `path`, at most `limit` of them.
    /// - Parameter shown: how messages name the file (the manifest's relative path).
    static func read(_ path: String, shown: String, what: String, limit: Int = 1 << 20) -> Result<[UInt8], Problem> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            switch code {
            case ENOENT: return .failure(Problem(description: "\(what) \(shown) does not exist"))
            case EACCES: return .failure(Problem(description: "\(what) \(shown) is not readable by this user; fix its permissions"))
            default: return .failure(Problem(description: "\(what) \(shown) cannot be opened: \(String(cString: strerror(code)))"))
            }
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            return .failure(Problem(description: "\(what) \(shown) cannot be examined: \(String(cString: strerror(errno)))"))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            return .failure(Problem(description: "\(what) \(shown) is \(kind(info.st_mode)), not a regular file; name a regular file"))
        }
        guard info.st_size <= off_t(limit) else {
            return .failure(Problem(description: "\(what) \(shown) is \(info.st_size) bytes, more than the \(limit) such a file can have; is it the right file?"))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        // Sized to the file (most are under a few KiB, and a plan reads thousands), at most 64 KiB.
        var chunk = [UInt8](repeating: 0, count: min(64 << 10, max(512, Int(info.st_size) + 1)))
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Problem(description: "\(what) \(shown) cannot be read: \(String(cString: strerror(errno)))"))
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            // It may grow while being read; the bound holds all the same.
            if bytes.count > limit {
                return .failure(Problem(description: "\(what) \(shown) is more than \(limit) bytes; is it the right file?"))
            }
        }
        return .success(bytes)
    }
}
