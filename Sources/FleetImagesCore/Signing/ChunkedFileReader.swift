#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file of any size (0 bytes, > 4 GiB, sparse) front to back in large chunks with `pread(2)`,
/// handing each chunk to a closure (holes as zeros, not read): constant memory, one pass.
enum ChunkedFileReader {
    /// 4 MiB. Measured on the 2-core build machine (2 GiB file in the page cache, SHA-NI): 128 KiB to
    /// 4 MiB hash at the same speed, 8 MiB about 5 % slower (the buffer no longer fits the caches as well),
    /// and fewer, larger chunks keep system-call overhead out of the picture.
    static let bufferSize = 4 << 20

    /// Calls `body` with consecutive chunks of the file; returns the file's length as read (holes included).
    /// Stops with `SigningError.cancelled` between chunks when the current task is cancelled, so a
    /// SIGINT during the signing of a large image is honoured within milliseconds.
    ///
    /// Holes (found with `SEEK_DATA`/`SEEK_HOLE`) are handed over as zeros without being read: a
    /// disk image is mostly holes, and reading one makes the kernel fill the page cache with zeroed
    /// pages, which cost a build most of its system time and, over a run of hundreds of images,
    /// pushed everything else out of memory. Where the file system cannot say, it is read as a whole.
    @discardableResult
    static func read(_ path: String, body: (UnsafeRawBufferPointer) throws(SigningError) -> Void) throws(SigningError) -> UInt64 {
        try read(path) { (chunk: UnsafeRawBufferPointer, _: Bool) throws(SigningError) in try body(chunk) }
    }

    /// The 4 KiB blocks holes are counted in: the block size of a block map (`.bmap`), and of ext4
    /// and XFS. Where a file system reports a hole that does not start or end on a block boundary,
    /// the part of it in a partly used block is read (as the zeros it is) and handed over as data,
    /// so that every hole `body` sees covers whole blocks.
    static let holeBlockSize = 4096

    /// ``read(_:body:)`` that also says, for each chunk, whether it is a hole (`true`: zeros the
    /// file system does not store, a whole number of ``holeBlockSize`` blocks).
    @discardableResult
    static func read(_ path: String, body: (UnsafeRawBufferPointer, _ isHole: Bool) throws(SigningError) -> Void) throws(SigningError) -> UInt64 {
        let block = off_t(holeBlockSize)
        let fd = try SigningFiles.openForReading(path)
        defer { close(fd) }
        #if os(Linux)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        #endif
        // A file smaller than one buffer (a certificate, a config file: a plan digests thousands)
        // gets a buffer of its size, one page more so that its end is seen in the same read, and
        // is read without looking for holes: a 4 MiB buffer per small file cost more in mapping
        // and unmapping memory than the hashing. (A file that grows meanwhile is still read whole.)
        var status = stat()
        let size = fstat(fd, &status) == 0 && status.st_size >= 0 ? Int(status.st_size) : bufferSize
        let small = size < bufferSize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: small ? (size / 4096 + 1) * 4096 : bufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        var zeros: UnsafeMutableRawBufferPointer?
        defer { zeros?.deallocate() }
        var position: off_t = 0
        var holesKnown = !small
        while true {
            if Task.isCancelled { throw .cancelled(path: path) }
            // How much data from `position` on, at most one buffer; 0 at the end of the file.
            var dataEnd = position + off_t(buffer.count)
            if holesKnown {
                let data = lseek(fd, position, SparseSeek.data)
                if data < 0 && errno == ENXIO {
                    // Only a hole from here to the end of the file (or the end itself: then the read
                    // below finds nothing and the loop ends).
                    let end = lseek(fd, 0, SEEK_END)
                    if end > position {
                        try handZeros(up: end - position, from: &zeros, path: path) { (zeros) throws(SigningError) in try body(zeros, true) }
                        position = end
                        continue
                    }
                } else if data < 0 {
                    holesKnown = false
                } else if data / block * block > position {
                    // The hole up to the block the data starts in (`position` is on a block boundary).
                    let holeEnd = data / block * block
                    try handZeros(up: holeEnd - position, from: &zeros, path: path) { (zeros) throws(SigningError) in try body(zeros, true) }
                    position = holeEnd
                    continue
                } else {
                    let hole = lseek(fd, max(position, data), SparseSeek.hole)
                    // Data up to the end of the block the next hole starts in.
                    if hole > position { dataEnd = min(dataEnd, (hole + block - 1) / block * block) } else if hole < 0 { holesKnown = false }
                }
            }
            // Fill the buffer as far as the data allows so `body` sees few, large chunks.
            var filled = 0
            let wanted = Int(dataEnd - position)
            while filled < wanted {
                let count = pread(fd, buffer.baseAddress! + filled, wanted - filled, position + off_t(filled))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw .fileUnreadable(path: path, errno: errno)
                }
                if count == 0 { break }
                filled += count
            }
            if filled == 0 { return UInt64(position) }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<filled]), false)
            position += off_t(filled)
            if filled < wanted { return UInt64(position) }
        }
    }

    /// Hands `count` zero bytes to `body`, at most one buffer at a time, checking for cancellation
    /// between buffers as the reading loop does (a hole can be gigabytes).
    private static func handZeros(up count: off_t, from zeros: inout UnsafeMutableRawBufferPointer?, path: String,
                                  body: (UnsafeRawBufferPointer) throws(SigningError) -> Void) throws(SigningError) {
        let block: UnsafeMutableRawBufferPointer
        if let zeros { block = zeros } else {
            block = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
            block.initializeMemory(as: UInt8.self, repeating: 0)
            zeros = block
        }
        var left = count
        while left > 0 {
            if Task.isCancelled { throw .cancelled(path: path) }
            let size = Int(min(left, off_t(block.count)))
            try body(UnsafeRawBufferPointer(rebasing: block[0..<size]))
            left -= off_t(size)
        }
    }
}
