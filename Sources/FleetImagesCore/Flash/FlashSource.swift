import Foundation

/// The image `flash` writes: a raw `<variant>.img` or its compressed copy (`.img.xz`,
/// `.img.zst`), whose sidecars are named after the raw image (`<variant>.img.sha256`, `.sig`,
/// `.bmap`, `.intoto.json`) as the build writes them.
public struct FlashSource: Sendable {
    public var path: String
    public var format: CompressionSpec.Format?
    /// The raw image's path: what the sidecars and the provenance subject are named after (it
    /// need not exist when the source is compressed).
    public var rawPath: String

    public init(path: String) {
        self.path = path
        format = ImageDecompressor.format(of: path)
        rawPath = format.map { String(path.dropLast($0.fileExtension.count + 1)) } ?? path
    }

    var blockMapPath: String { ImageOutputs.blockMapPath(forImageAt: rawPath) }

    /// The raw image's bytes, decompressed on the way when the source is compressed, each chunk
    /// with its offset; `compressedDigest` gets the compressed bytes.
    func stream(compressedDigest: SHA256Context? = nil,
                _ body: (_ offset: UInt64, _ chunk: UnsafeRawBufferPointer) throws(SigningError) -> Void) throws(SigningError) -> UInt64 {
        var offset: UInt64 = 0
        let visit = { (chunk: UnsafeRawBufferPointer) throws(SigningError) in
            try body(offset, chunk)
            offset += UInt64(chunk.count)
        }
        if let format {
            return try ImageDecompressor.read(path, format: format, compressedDigest: compressedDigest, body: visit)
        }
        return try ChunkedFileReader.read(path, body: visit)
    }
}
