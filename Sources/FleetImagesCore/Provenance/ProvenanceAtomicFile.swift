import Foundation

/// Writes a whole file or nothing: bytes go to a temporary file in the same folder, are
/// flushed, and the temporary file is renamed over the destination, so a reader (or a crash)
/// never sees half a file.
enum ProvenanceAtomicFile {
    static func replace(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ProvenanceError.io(path: temporary, operation: "create", errno: errno) }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw ProvenanceError.io(path: temporary, operation: "chmod", errno: errno) }
            try bytes.withUnsafeBytes { try writeFully(fd, $0, path: temporary) }
        }
        guard rename(temporary, path) == 0 else { throw ProvenanceError.io(path: path, operation: "rename", errno: errno) }
        renamed = true
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Writes all of `buffer` to `fd` (retrying short writes and EINTR), then fsyncs it.
    static func writeFully(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw ProvenanceError.io(path: path, operation: "write", errno: errno)
            }
            offset += written
        }
        guard fsync(fd) == 0 else { throw ProvenanceError.io(path: path, operation: "fsync", errno: errno) }
    }
}
