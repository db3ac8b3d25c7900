#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `read(2)`; a free function because inside `ChunkedFileReader` the name `read` is the method.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}

/// Reads a file of any size (0 bytes, > 4 GiB, sparse) front to back in large chunks with `read(2)`,
/// handing each chunk to a closure: constant memory, one pass.
enum ChunkedFileReader {
    /// 4 MiB. Measured on the 2-core build machine (2 GiB file in the page cache, SHA-NI): 128 KiB to
    /// 4 MiB hash at the same speed, 8 MiB about 5 % slower (the buffer no longer fits the caches as well),
    /// and fewer, larger chunks keep system-call overhead out of the picture.
    static let bufferSize = 4 << 20

    /// Calls `body` with consecutive chunks of the file; returns the number of bytes read.
    /// Stops with `SigningError.cancelled` between chunks when the current task is cancelled, so a
    /// SIGINT during the signing of a large image is honoured within milliseconds.
    @discardableResult
    static func read(_ path: String, body: (UnsafeRawBufferPointer) throws(SigningError) -> Void) throws(SigningError) -> UInt64 {
        let fd = try SigningFiles.openForReading(path)
        defer { close(fd) }
        #if os(Linux)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        #endif
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        var total: UInt64 = 0
        while true {
            if Task.isCancelled { throw .cancelled(path: path) }
            // Fill the buffer as far as the file allows so `body` sees few, large chunks.
            var filled = 0
            while filled < buffer.count {
                let count = systemRead(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw .fileUnreadable(path: path, errno: errno)
                }
                if count == 0 { break }
                filled += count
            }
            if filled == 0 { return total }
            total += UInt64(filled)
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<filled]))
            if filled < buffer.count { return total }
        }
    }
}
