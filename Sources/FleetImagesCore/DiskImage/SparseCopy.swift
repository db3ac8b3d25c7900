#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes the private work copy of a base image quickly and without filling its holes.
///
/// A Raspberry Pi OS image is mostly unallocated space; copying it byte by byte would write gigabytes of zeros.
/// The strategies, tried in order:
/// 1. `FICLONE`: a copy-on-write clone (btrfs, XFS with reflink); instant, shares blocks with the base.
/// 2. `SEEK_DATA`/`SEEK_HOLE` + `copy_file_range`: copy only the data extents, in the kernel.
/// 3. A read/write loop that seeks over all-zero blocks instead of writing them.
/// The destination must not exist (it is created with `O_EXCL`, mode 0600); on failure it is removed.
public enum SparseCopy {
    /// How the copy was made, for logs.
    public enum Method: String, Sendable, CaseIterable {
        case clone
        case dataExtents = "data extents"
        case readWrite = "read/write"
    }

    static let blockSize = 1 << 20
    /// Compared against with memcmp: a byte loop is far too slow in debug builds.
    private static let zeroBlock = [UInt8](repeating: 0, count: blockSize)

    @discardableResult
    public static func copy(from source: String, to destination: String) throws(DiskImageError) -> Method {
        try copy(from: source, to: destination, trying: Method.allCases)
    }

    /// `trying` lets tests force one strategy; the last one in the list must be able to copy anything.
    @discardableResult
    static func copy(from source: String, to destination: String, trying methods: [Method]) throws(DiskImageError) -> Method {
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer before fstat can refuse it.
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard input >= 0 else { throw .io(path: source, operation: "open for reading", errno: errno) }
        defer { close(input) }
        var info = stat()
        guard fstat(input, &info) == 0 else { throw .io(path: source, operation: "stat", errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .notADiskImage(path: source, reason: "not a regular file")
        }
        let size = info.st_size

        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .io(path: destination, operation: "create (exclusively)", errno: errno) }
        var finished = false
        defer {
            close(output)
            if !finished { unlink(destination) }
        }

        for (position, method) in methods.enumerated() {
            let isLast = position == methods.count - 1
            let done: Bool
            switch method {
            case .clone:
                done = clone(from: input, to: output)
            case .dataExtents:
                done = try copyDataExtents(from: input, to: output, size: size, source: source, destination: destination,
                                           mustSucceed: isLast)
            case .readWrite:
                try copyReadWrite(from: input, to: output, range: 0..<size, source: source, destination: destination)
                done = true
            }
            guard done else { continue }
            guard ftruncate(output, size) == 0 else {
                throw .io(path: destination, operation: "set size to \(size) bytes", errno: errno)
            }
            guard fsync(output) == 0 else { throw .io(path: destination, operation: "fsync", errno: errno) }
            finished = true
            return method
        }
        throw .unsupported(path: source, detail: "no copy method among \(methods.map(\.rawValue)) could copy it")
    }

    private static func clone(from input: Int32, to output: Int32) -> Bool {
        #if os(Linux)
        let ficlone: UInt = 0x4004_9409  // _IOW(0x94, 9, int)
        return ioctl(output, ficlone, input) == 0
        #else
        return false
        #endif
    }

    /// Copies each data extent; returns false (having written nothing) when the kernel cannot report extents
    /// or copy between these files, so the caller falls back to the read/write loop.
    private static func copyDataExtents(
        from input: Int32, to output: Int32, size: off_t, source: String, destination: String, mustSucceed: Bool
    ) throws(DiskImageError) -> Bool {
        var position: off_t = 0
        var usedKernelCopy = false
        while position < size {
            let dataStart = lseek(input, position, SparseSeek.data)
            if dataStart < 0 {
                if errno == ENXIO { break }  // only a hole remains
                if !usedKernelCopy && !mustSucceed { return false }
                throw .io(path: source, operation: "seek to data", errno: errno)
            }
            let dataEnd = min(lseek(input, dataStart, SparseSeek.hole), size)
            guard dataEnd > dataStart else { throw .io(path: source, operation: "seek to hole", errno: errno) }
            var inOffset = Int64(dataStart)
            var outOffset = Int64(dataStart)
            while inOffset < Int64(dataEnd) {
                let count = Int(min(Int64(dataEnd) - inOffset, 1 << 30))
                let copied = kernelCopy(input, &inOffset, output, &outOffset, count)
                if copied > 0 {
                    usedKernelCopy = true
                    continue
                }
                if copied < 0 && errno == EINTR { continue }
                let failure = copied == 0 ? EIO : errno
                // Cross-file-system or unsupported: fall back for the rest of this extent, keep going.
                if [EXDEV, ENOSYS, EOPNOTSUPP, EINVAL, EBADF].contains(failure) || copied == 0 {
                    try copyReadWrite(from: input, to: output, range: off_t(inOffset)..<dataEnd,
                                      source: source, destination: destination)
                    inOffset = Int64(dataEnd)
                    continue
                }
                throw .io(path: destination, operation: "copy_file_range", errno: failure)
            }
            position = dataEnd
        }
        return true
    }

    /// Copies bytes `range` of `source` into a new file `destination` (0600, holes for zero blocks): used to
    /// hand one partition of an image to a checker that cannot take an offset.
    static func extract(_ range: Range<UInt64>, of source: String, to destination: String) throws(DiskImageError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .io(path: source, operation: "open for reading", errno: errno) }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .io(path: destination, operation: "create (exclusively)", errno: errno) }
        defer { close(output) }
        let start = off_t(range.lowerBound), end = off_t(range.upperBound)
        // Only the data extents are read: reading a hole makes the kernel fill the page cache with
        // zeroed pages (the demo's 128 MiB boot partition cost about 0.13 s of system time per
        // variant that way, a third of a 60-site run's CPU).
        var position = start
        while position < end {
            let dataStart = lseek(input, position, SparseSeek.data)
            if dataStart < 0 {
                if errno == ENXIO { break }  // only a hole remains
                // No extent map here: read the rest (zero blocks still become holes).
                try copyReadWrite(from: input, to: output, range: position..<end, source: source, destination: destination, shift: start)
                break
            }
            if dataStart >= end { break }
            let dataEnd = min(lseek(input, dataStart, SparseSeek.hole), end)
            guard dataEnd > dataStart else { throw .io(path: source, operation: "seek to hole", errno: errno) }
            try copyReadWrite(from: input, to: output, range: dataStart..<dataEnd, source: source, destination: destination, shift: start)
            position = dataEnd
        }
        guard ftruncate(output, end - start) == 0 else {
            throw .io(path: destination, operation: "set size", errno: errno)
        }
    }

    private typealias CopyFileRange = @convention(c) (
        Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32
    ) -> Int

    /// `copy_file_range` is hidden behind `_GNU_SOURCE` in the C headers Swift sees, so it is looked up at run time.
    private static let copyFileRange: CopyFileRange? = {
        #if os(Linux)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "copy_file_range") else { return nil }
        return unsafeBitCast(symbol, to: CopyFileRange.self)
        #else
        return nil
        #endif
    }()

    private static func kernelCopy(
        _ input: Int32, _ inOffset: inout Int64, _ output: Int32, _ outOffset: inout Int64, _ count: Int
    ) -> Int {
        guard let copyFileRange else {
            errno = ENOSYS
            return -1
        }
        return copyFileRange(input, &inOffset, output, &outOffset, count, 0)
    }

    /// Copies `range` with pread/pwrite, leaving blocks that are entirely zero unwritten (holes);
    /// byte `n` of the source lands at `n - shift` in the destination.
    private static func copyReadWrite(
        from input: Int32, to output: Int32, range: Range<off_t>, source: String, destination: String,
        shift: off_t = 0
    ) throws(DiskImageError) {
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var position = range.lowerBound
        while position < range.upperBound {
            let want = Int(min(off_t(blockSize), range.upperBound - position))
            let got = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress!, want, position) }
            if got < 0 {
                if errno == EINTR { continue }
                throw .io(path: source, operation: "read", errno: errno)
            }
            if got == 0 { throw .truncated(path: source, detail: "it shrank while being copied (at byte \(position))") }
            let isZero = buffer.withUnsafeBytes { bytes in
                zeroBlock.withUnsafeBytes { memcmp(bytes.baseAddress!, $0.baseAddress!, got) == 0 }
            }
            if !isZero {
                var written = 0
                while written < got {
                    let result = buffer.withUnsafeBytes {
                        pwrite(output, $0.baseAddress! + written, got - written, position - shift + off_t(written))
                    }
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw .io(path: destination, operation: "write", errno: errno)
                    }
                    written += result
                }
            }
            position += off_t(got)
        }
    }
}
