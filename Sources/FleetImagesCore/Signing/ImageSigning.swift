#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Signs and verifies whole image files in one streaming pass.
///
/// One `read(2)` pass over the image feeds a plain SHA-256; the digest becomes both the `.sha256`
/// sidecar and the input of the signature (`SigningKey.sign(sha256Digest:)`), so the image is hashed
/// once, not twice, and memory stays constant whatever the image size. The signature has exactly the
/// format `openssl dgst -sha256 -sign key.pem -out image.sig image` writes, so an image can be checked
/// without fleet-images:
///
///     sha256sum -c image.img.sha256
///     openssl dgst -sha256 -verify pub.pem -signature image.img.sig image.img
///     (RSA-PSS: add -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest)
public enum ImageSigning {
    /// Hashes and signs the image at `path`.
    public static func sign(imageAt path: String, key: SigningKey, padding: RSAPadding) throws(SigningError) -> ImageSignature {
        let (size, digest) = try hash(path)
        let signature = try key.sign(sha256Digest: digest, padding: padding)
        return ImageSignature(size: size, sha256: Digest.hex(digest), signature: signature, keyFingerprint: key.publicKey.fingerprint)
    }

    /// `<path>.sha256`: the sha256sum line for the image.
    public static func sha256SidecarPath(forImageAt path: String) -> String { path + ".sha256" }
    /// `<path>.sig`: the raw signature bytes.
    public static func signatureSidecarPath(forImageAt path: String) -> String { path + ".sig" }

    /// Writes `<path>.sha256` (sha256sum format: `<hex>  <basename>\n`) and `<path>.sig` (the raw
    /// signature), each through a temporary file in the same folder that is fsynced, given mode 0640
    /// and renamed into place, so neither ever exists half-written.
    public static func writeSidecars(_ signature: ImageSignature, forImageAt path: String) throws(SigningError) {
        let name = SigningFiles.split(path).name
        let line = "\(signature.sha256)  \(name)\n"
        try SigningFiles.writeAtomically(Array(line.utf8), to: sha256SidecarPath(forImageAt: path), mode: 0o640)
        try SigningFiles.writeAtomically(signature.signature, to: signatureSidecarPath(forImageAt: path), mode: 0o640)
    }

    /// Checks the image at `path` against its sidecars and `publicKey`, in one read pass.
    ///
    /// A missing image throws `.fileNotFound`; missing or malformed sidecars throw (before the image is read); a size, digest or signature
    /// mismatch does not: the returned `ImageVerification` reports each check separately.
    public static func verify(
        imageAt path: String, publicKey: VerifyingKey, padding: RSAPadding, expectedSize: UInt64?
    ) throws(SigningError) -> ImageVerification {
        // A missing image is reported as such, not as the missing sidecars that come with it.
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw .fileNotFound(path: path) }
            throw .fileUnreadable(path: path, errno: errno)
        }
        let digestPath = sha256SidecarPath(forImageAt: path)
        let signaturePath = signatureSidecarPath(forImageAt: path)
        let recordedDigest = try readDigestSidecar(digestPath)
        let signature = try readSidecar(signaturePath, kind: "signature file")
        guard !signature.isEmpty else { throw .sidecarMalformed(path: signaturePath, reason: "empty file") }

        let (size, digest) = try hash(path)
        return ImageVerification(
            imagePath: path,
            size: size,
            expectedSize: expectedSize,
            sha256: Digest.hex(digest),
            sidecarSHA256: recordedDigest,
            signatureValid: publicKey.verify(sha256Digest: digest, signature: signature, padding: padding),
            keyFingerprint: publicKey.fingerprint
        )
    }

    /// Size and lowercase hex SHA-256 of the image at `path`, in one pass (for checks that need
    /// the digest when the sidecars cannot be read).
    public static func measure(imageAt path: String) throws(SigningError) -> (size: UInt64, sha256: String) {
        let (size, digest) = try hash(path)
        return (size, Digest.hex(digest))
    }

    /// Size and SHA-256 of a file in one pass.
    static func hash(_ path: String) throws(SigningError) -> (size: UInt64, digest: [UInt8]) {
        let context = SHA256Context()
        let size = try ChunkedFileReader.read(path) { chunk in context.update(chunk) }
        return (size, context.finish())
    }

    private static func readSidecar(_ path: String, kind: String) throws(SigningError) -> [UInt8] {
        do {
            return try SigningFiles.readSmallFile(path, kind: kind)
        } catch {
            if case .fileNotFound = error { throw .sidecarMissing(path: path) }
            throw error
        }
    }

    /// The lowercase hex digest from a sha256sum line (`<hex>  <name>` or `<hex> *<name>`).
    static func readDigestSidecar(_ path: String) throws(SigningError) -> String {
        let bytes = try readSidecar(path, kind: "sha256sum file")
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\n", omittingEmptySubsequences: true).first else {
            throw .sidecarMalformed(path: path, reason: "empty file")
        }
        let hexPart = line.prefix(while: { $0 != " " && $0 != "\t" })
        guard hexPart.utf8.count == 64, let digest = Digest.bytes(fromHex: hexPart) else {
            throw .sidecarMalformed(path: path, reason: "expected a line `<64 hex digits>  <file name>` as sha256sum writes")
        }
        return Digest.hex(digest)
    }
}

/// The result of signing one image.
public struct ImageSignature: Sendable, Equatable {
    /// Bytes read from the image.
    public let size: UInt64
    /// Lowercase hex SHA-256 of the image.
    public let sha256: String
    /// The raw signature (DER ECDSA-Sig-Value or RSA signature block), as `openssl dgst -sign` writes.
    public let signature: [UInt8]
    /// `VerifyingKey.fingerprint` of the signing key.
    public let keyFingerprint: String

    public init(size: UInt64, sha256: String, signature: [UInt8], keyFingerprint: String) {
        self.size = size
        self.sha256 = sha256
        self.signature = signature
        self.keyFingerprint = keyFingerprint
    }
}

/// The outcome of verifying one image: each check separately, and a one-line summary.
public struct ImageVerification: Sendable, Equatable, CustomStringConvertible {
    public let imagePath: String
    /// Bytes read from the image.
    public let size: UInt64
    /// The size the caller expected (from a record), if any.
    public let expectedSize: UInt64?
    /// Lowercase hex SHA-256 computed from the image.
    public let sha256: String
    /// The digest recorded in `<image>.sha256`.
    public let sidecarSHA256: String
    /// Whether `<image>.sig` is a valid signature of the image by the key.
    public let signatureValid: Bool
    /// Fingerprint of the key the signature was checked against.
    public let keyFingerprint: String

    /// nil when no size was expected.
    public var sizeMatches: Bool? { expectedSize.map { $0 == size } }
    public var sha256Matches: Bool { sha256 == sidecarSHA256 }
    /// Every check passed.
    public var isValid: Bool { sizeMatches != false && sha256Matches && signatureValid }

    /// One phrase per failed check; empty when valid.
    public var failures: [String] {
        var result: [String] = []
        if let expectedSize, expectedSize != size {
            result.append("size is \(size) bytes, expected \(expectedSize)")
        }
        if !sha256Matches {
            result.append("sha256 \(sha256) does not match \(ImageSigning.sha256SidecarPath(forImageAt: imagePath)) (\(sidecarSHA256))")
        }
        if !signatureValid {
            result.append("signature \(ImageSigning.signatureSidecarPath(forImageAt: imagePath)) is not valid for key \(keyFingerprint)")
        }
        return result
    }

    public var description: String {
        if isValid {
            return "\(imagePath): OK (\(size) bytes, sha256 \(sha256), signed by \(keyFingerprint))"
        }
        return "\(imagePath): FAILED: " + failures.joined(separator: "; ")
    }
}
