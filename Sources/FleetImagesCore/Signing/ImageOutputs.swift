#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a built image is published with, all made in one read of the image: its signature and
/// `.sha256` (over the raw image: what a card holds), its block map (`.bmap`) and, when the
/// manifest asks, a compressed copy (`.xz` or `.zst`) with its own `.sha256`.
public enum ImageOutputs {
    public struct Written: Sendable, Equatable {
        public var signature: ImageSignature
        /// `<image>.bmap`.
        public var blockMapPath: String
        /// Blocks of data in the image (the rest are holes `bmaptool copy` does not write).
        public var mappedBytes: UInt64
        public var compressed: Compressed?
    }

    public struct Compressed: Sendable, Hashable {
        public var spec: CompressionSpec
        public var path: String
        public var size: UInt64
        /// Lowercase hex.
        public var sha256: String

        public init(spec: CompressionSpec, path: String, size: UInt64, sha256: String) {
            self.spec = spec
            self.path = path
            self.size = size
            self.sha256 = sha256
        }
    }

    /// Reads the image at `path` once: hashes and signs it, maps its data blocks and, with
    /// `compression`, compresses it with `threads` threads. Writes every file beside the image,
    /// each complete or not at all. Stops with ``SigningError/cancelled(path:)`` between chunks
    /// when the task is cancelled (nothing half-written is left).
    public static func write(imageAt path: String, key: SigningKey, padding: RSAPadding,
                             compression: CompressionSpec?, threads: Int) throws(SigningError) -> Written {
        let hash = SHA256Context()
        var blocks = BlockMap.Builder()
        let compressor: ImageCompressor?
        if let compression {
            let (folder, name) = SigningFiles.split(compression.path(forImageAt: path))
            compressor = try ImageCompressor(compression, threads: threads,
                                             writingTo: folder + "." + name + ".tmp-" + Digest.hex(Digest.randomBytes(6)))
        } else {
            compressor = nil
        }
        let size = try ChunkedFileReader.read(path) { (chunk: UnsafeRawBufferPointer, isHole: Bool) throws(SigningError) in
            hash.update(chunk)
            blocks.add(chunk, isHole: isHole)
            try compressor?.write(chunk)
        }
        let digest = hash.finish()
        let signature = ImageSignature(size: size, sha256: Digest.hex(digest), signature: try key.sign(sha256Digest: digest, padding: padding),
                                       keyFingerprint: key.publicKey.fingerprint)
        let map = blocks.finish()
        let name = SigningFiles.split(path).name
        var compressed: Compressed?
        if let compressor, let compression {
            let (compressedSize, compressedSHA256) = try compressor.finish()
            let final = compression.path(forImageAt: path)
            guard rename(compressor.path, final) == 0 else { throw .writeFailed(path: final, errno: errno) }
            SigningFiles.syncDirectory(of: final)
            try SigningFiles.writeAtomically(Array("\(compressedSHA256)  \(name).\(compression.format.fileExtension)\n".utf8),
                                             to: final + ".sha256", mode: 0o640)
            compressed = Compressed(spec: compression, path: final, size: compressedSize, sha256: compressedSHA256)
        }
        try ImageSigning.writeSidecars(signature, forImageAt: path)
        let mapPath = blockMapPath(forImageAt: path)
        try SigningFiles.writeAtomically(Array(map.xml(imageName: name).utf8), to: mapPath, mode: 0o640)
        return Written(signature: signature, blockMapPath: mapPath, mappedBytes: map.mappedBytes,
                       compressed: compressed)
    }

    /// `<image>.bmap`.
    public static func blockMapPath(forImageAt path: String) -> String { path + ".bmap" }
}
