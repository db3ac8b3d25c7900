import CCompression
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How an image is compressed for distribution (`output.compress`).
public struct CompressionSpec: Sendable, Hashable, CustomStringConvertible {
    public enum Format: String, Sendable, CaseIterable {
        case xz
        case zstd

        /// The file name extension after `.img`.
        public var fileExtension: String { self == .xz ? "xz" : "zst" }
        /// Levels the format takes here, and the one used when the manifest names none.
        public var levels: ClosedRange<Int> { self == .xz ? 0...9 : 1...19 }
        public var defaultLevel: Int { self == .xz ? 6 : 3 }
    }

    public var format: Format
    public var level: Int

    public init(format: Format, level: Int? = nil) {
        self.format = format
        self.level = level ?? format.defaultLevel
    }

    /// `xz 6`: how the record names it.
    public var description: String { "\(format.rawValue) \(level)" }

    /// `<image>.xz` or `<image>.zst`.
    public func path(forImageAt image: String) -> String { image + "." + format.fileExtension }
}

/// Compresses a stream of bytes into a file with the system's liblzma or libzstd, hashing the
/// compressed bytes as they are written. Both encoders are the multi-threaded ones, whose output
/// does not depend on the number of threads: the same image gives the same compressed bytes on
/// any host (xz: blocks of a fixed size; zstd: `nbWorkers` ≥ 1), as `xz -T2` and `zstd -T2` do.
final class ImageCompressor {
    private enum Encoder {
        case xz(UnsafeMutablePointer<lzma_stream>)
        case zstd(OpaquePointer)
    }

    let path: String
    private let fd: Int32
    private let encoder: Encoder
    private let output: UnsafeMutableRawBufferPointer
    private let digest = SHA256Context()
    private(set) var compressedSize: UInt64 = 0
    private var finished = false

    /// Creates `path` (which must not exist; mode 0600 until the caller publishes it).
    init(_ spec: CompressionSpec, threads: Int, writingTo path: String) throws(SigningError) {
        precondition(spec.format.levels.contains(spec.level), "level checked by the manifest reader")
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .writeFailed(path: path, errno: errno) }
        self.fd = fd
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        let threads = max(1, threads)
        switch spec.format {
        case .xz:
            let stream = UnsafeMutablePointer<lzma_stream>.allocate(capacity: 1)
            stream.initialize(to: fleet_lzma_stream_init())
            var options = lzma_mt()
            options.threads = UInt32(threads)
            options.preset = UInt32(spec.level)
            options.check = LZMA_CHECK_CRC64  // what xz(1) writes
            let status = lzma_stream_encoder_mt(stream, &options)
            guard status == LZMA_OK else {
                stream.deallocate()
                Self.discard(fd, path, output)
                throw .compressionFailed(path: path, reason: "xz encoder: \(Self.lzmaMessage(status))")
            }
            encoder = .xz(stream)
        case .zstd:
            guard let context = ZSTD_createCCtx() else {
                Self.discard(fd, path, output)
                throw .compressionFailed(path: path, reason: "zstd: out of memory")
            }
            for (parameter, value) in [(ZSTD_c_compressionLevel, spec.level), (ZSTD_c_checksumFlag, 1), (ZSTD_c_nbWorkers, threads)] {
                let result = ZSTD_CCtx_setParameter(context, parameter, Int32(value))
                if ZSTD_isError(result) != 0 {
                    ZSTD_freeCCtx(context)
                    Self.discard(fd, path, output)
                    throw .compressionFailed(path: path, reason: "zstd: " + String(cString: ZSTD_getErrorName(result)))
                }
            }
            encoder = .zstd(context)
        }
    }

    deinit {
        switch encoder {
        case .xz(let stream):
            lzma_end(stream)
            stream.deallocate()
        case .zstd(let context):
            ZSTD_freeCCtx(context)
        }
        output.deallocate()
        close(fd)
        // An unfinished file is half a compressed image: never left behind.
        if !finished { unlink(path) }
    }

    /// Compresses the next bytes of the image.
    func write(_ chunk: UnsafeRawBufferPointer) throws(SigningError) {
        try run(chunk, finishing: false)
    }

    /// Ends the stream, writes the rest and fsyncs the file. Returns the compressed file's size
    /// and lowercase hex SHA-256.
    func finish() throws(SigningError) -> (size: UInt64, sha256: String) {
        try run(UnsafeRawBufferPointer(start: nil, count: 0), finishing: true)
        guard fsync(fd) == 0 else { throw .writeFailed(path: path, errno: errno) }
        finished = true
        return (compressedSize, Digest.hex(digest.finish()))
    }

    private func run(_ chunk: UnsafeRawBufferPointer, finishing: Bool) throws(SigningError) {
        switch encoder {
        case .xz(let stream):
            stream.pointee.next_in = chunk.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.pointee.avail_in = chunk.count
            while true {
                stream.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_out = output.count
                let status = lzma_code(stream, finishing ? LZMA_FINISH : LZMA_RUN)
                guard status == LZMA_OK || status == LZMA_STREAM_END else {
                    throw .compressionFailed(path: path, reason: "xz: \(Self.lzmaMessage(status))")
                }
                try emit(output.count - stream.pointee.avail_out)
                if finishing ? status == LZMA_STREAM_END : (stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0) { return }
            }
        case .zstd(let context):
            var input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
            while true {
                var out = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                let remaining = ZSTD_compressStream2(context, &out, &input, finishing ? ZSTD_e_end : ZSTD_e_continue)
                if ZSTD_isError(remaining) != 0 {
                    throw .compressionFailed(path: path, reason: "zstd: " + String(cString: ZSTD_getErrorName(remaining)))
                }
                try emit(out.pos)
                if finishing ? remaining == 0 : input.pos == input.size { return }
            }
        }
    }

    private func emit(_ count: Int) throws(SigningError) {
        guard count > 0 else { return }
        let bytes = UnsafeRawBufferPointer(rebasing: output[0..<count])
        digest.update(bytes)
        var written = 0
        while written < count {
            let result = Glibc.write(fd, bytes.baseAddress! + written, count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, errno: errno)
            }
            written += result
        }
        compressedSize += UInt64(count)
    }

    private static func discard(_ fd: Int32, _ path: String, _ output: UnsafeMutableRawBufferPointer) {
        close(fd)
        unlink(path)
        output.deallocate()
    }

    private static func lzmaMessage(_ status: lzma_ret) -> String {
        switch status {
        case LZMA_MEM_ERROR: "out of memory"
        case LZMA_OPTIONS_ERROR: "unsupported options"
        case LZMA_UNSUPPORTED_CHECK: "unsupported integrity check"
        case LZMA_BUF_ERROR: "no progress"
        case LZMA_PROG_ERROR: "programming error"
        default: "error \(status.rawValue)"
        }
    }
}
