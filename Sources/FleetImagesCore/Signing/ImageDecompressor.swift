import CCompression
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads an `.img.xz` or `.img.zst` front to back and hands the decompressed bytes to a closure,
/// in chunks, with constant memory (liblzma, libzstd). For `flash`, which checks and then writes
/// the image a site downloaded without a decompressed copy on disk.
enum ImageDecompressor {
    static let chunkSize = 4 << 20

    /// The format a file name says (`.xz`, `.zst`), or nil for a raw image.
    static func format(of path: String) -> CompressionSpec.Format? {
        CompressionSpec.Format.allCases.first { path.hasSuffix("." + $0.fileExtension) }
    }

    /// Decompresses `path` into `fd` (an empty file open for writing) without writing its zeros:
    /// every all-zero 4 KiB block of the image stays a hole, so the copy is as sparse as the
    /// image's data (a decompressor's output written as it comes fills every hole, and punching
    /// them back reads it all once more). Sets the file's length to the image's; returns it.
    @discardableResult
    static func expand(_ path: String, format: CompressionSpec.Format, into fd: Int32, shown output: String) throws(SigningError) -> UInt64 {
        let block = 4096
        let zeros = [UInt8](repeating: 0, count: block)
        var offset: UInt64 = 0
        func write(_ bytes: UnsafeRawBufferPointer, at position: UInt64) throws(SigningError) {
            var done = 0
            while done < bytes.count {
                let count = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(position) + off_t(done))
                if count < 0 && errno == EINTR { continue }
                if count < 0 { throw .writeFailed(path: output, errno: errno) }
                done += count
            }
        }
        let total = try read(path, format: format) { (chunk: UnsafeRawBufferPointer) throws(SigningError) in
            // Pieces end at the image's 4 KiB boundaries; runs of pieces with data are written at
            // once, pieces of zeros are skipped (a hole reads as zeros).
            var start = 0, run: Int?
            while start < chunk.count {
                let absolute = offset + UInt64(start)
                let end = min(chunk.count, start + block - Int(absolute % UInt64(block)))
                let isZero = zeros.withUnsafeBytes { memcmp(chunk.baseAddress! + start, $0.baseAddress!, end - start) == 0 }
                if isZero, let from = run {
                    try write(UnsafeRawBufferPointer(rebasing: chunk[from..<start]), at: offset + UInt64(from))
                    run = nil
                } else if !isZero, run == nil {
                    run = start
                }
                start = end
            }
            if let from = run { try write(UnsafeRawBufferPointer(rebasing: chunk[from...]), at: offset + UInt64(from)) }
            offset += UInt64(chunk.count)
        }
        guard ftruncate(fd, off_t(total)) == 0 else { throw .writeFailed(path: output, errno: errno) }
        return total
    }

    /// Calls `body` with consecutive chunks of the decompressed stream; returns its length. Checks
    /// for cancellation between chunks. A truncated or corrupt file throws ``SigningError/compressionFailed(path:reason:)``.
    @discardableResult
    /// `compressedDigest`, when given, is updated with the compressed bytes as they are read
    /// (the download's own `.sha256`, checked in the same pass).
    static func read(_ path: String, format: CompressionSpec.Format, compressedDigest: SHA256Context? = nil,
                     body: (UnsafeRawBufferPointer) throws(SigningError) -> Void) throws(SigningError) -> UInt64 {
        let fd = try SigningFiles.openForReading(path)
        defer { close(fd) }
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { input.deallocate() }
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 4096)
        defer { output.deallocate() }
        var total: UInt64 = 0
        var atEnd = false

        func fill() throws(SigningError) -> Int {
            while true {
                let count = Glibc.read(fd, input.baseAddress!, input.count)
                if count < 0 && errno == EINTR { continue }
                if count < 0 { throw .fileUnreadable(path: path, errno: errno) }
                if count == 0 { atEnd = true }
                compressedDigest?.update(UnsafeRawBufferPointer(rebasing: input[0..<count]))
                return count
            }
        }
        func hand(_ count: Int) throws(SigningError) {
            guard count > 0 else { return }
            if Task.isCancelled { throw .cancelled(path: path) }
            try body(UnsafeRawBufferPointer(rebasing: output[0..<count]))
            total += UInt64(count)
        }

        switch format {
        case .xz:
            var stream = fleet_lzma_stream_init()
            // No memory limit beyond the machine's; concatenated streams as xz -d reads them.
            guard lzma_stream_decoder(&stream, UInt64.max, 0x08 /* LZMA_CONCATENATED: a macro Swift does not import */) == LZMA_OK else {
                throw .compressionFailed(path: path, reason: "xz decoder: out of memory")
            }
            defer { lzma_end(&stream) }
            while true {
                if stream.avail_in == 0 && !atEnd {
                    stream.next_in = UnsafePointer(input.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    stream.avail_in = try fill()
                }
                stream.next_out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.avail_out = output.count
                let status = lzma_code(&stream, atEnd ? LZMA_FINISH : LZMA_RUN)
                try hand(output.count - stream.avail_out)
                if status == LZMA_STREAM_END { return total }
                guard status == LZMA_OK else {
                    throw .compressionFailed(path: path, reason: status == LZMA_DATA_ERROR || status == LZMA_FORMAT_ERROR
                                             ? "not a valid xz file (corrupt or not xz)" : status == LZMA_BUF_ERROR ? "the file ends too early (truncated)" : "xz error \(status.rawValue)")
                }
            }
        case .zstd:
            guard let context = ZSTD_createDCtx() else { throw .compressionFailed(path: path, reason: "zstd: out of memory") }
            defer { ZSTD_freeDCtx(context) }
            var pending = ZSTD_inBuffer(src: input.baseAddress, size: 0, pos: 0)
            var frameOpen = false
            while true {
                if pending.pos == pending.size {
                    let count = try fill()
                    if count == 0 {
                        if frameOpen || total == 0 { throw .compressionFailed(path: path, reason: total == 0 ? "empty or not a zstd file" : "the file ends too early (truncated)") }
                        return total
                    }
                    pending = ZSTD_inBuffer(src: input.baseAddress, size: count, pos: 0)
                }
                var out = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                let result = ZSTD_decompressStream(context, &out, &pending)
                if ZSTD_isError(result) != 0 {
                    throw .compressionFailed(path: path, reason: "zstd: " + String(cString: ZSTD_getErrorName(result)))
                }
                frameOpen = result != 0
                try hand(out.pos)
            }
        }
    }
}
