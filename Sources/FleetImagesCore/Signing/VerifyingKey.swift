internal import COpenSSL

/// A public key that checks signatures: RSA ≥ 2048 bits, ECDSA P-256 or P-384.
///
/// Owns an OpenSSL `EVP_PKEY` holding only public material, freed in `deinit`. `@unchecked Sendable`
/// because it is immutable after loading and a read-only `EVP_PKEY` may be shared between threads.
public final class VerifyingKey: @unchecked Sendable {
    let pointer: OpaquePointer
    /// The file the key was loaded from (for messages).
    public let source: String
    public let algorithm: KeyAlgorithm
    /// The DER SubjectPublicKeyInfo.
    let der: [UInt8]

    init(taking pointer: OpaquePointer, algorithm: KeyAlgorithm, source: String, der: [UInt8]) {
        self.pointer = pointer
        self.algorithm = algorithm
        self.source = source
        self.der = der
    }

    deinit { EVP_PKEY_free(pointer) }

    /// Loads a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout` writes).
    public static func load(contentsOf path: String) throws(SigningError) -> VerifyingKey {
        let bytes = try SigningFiles.readSmallFile(path)
        let pointer = try PEMKeyDecoder.publicKey(bytes, path: path)
        let algorithm: KeyAlgorithm
        do {
            algorithm = try PEMKeyDecoder.algorithm(of: pointer, path: path)
        } catch {
            EVP_PKEY_free(pointer)
            throw error
        }
        return VerifyingKey(taking: pointer, algorithm: algorithm, source: path, der: PEMKeyDecoder.subjectPublicKeyInfo(pointer))
    }

    /// `SHA256:` and the lowercase hex SHA-256 of the DER SubjectPublicKeyInfo; the same as
    /// `openssl pkey -pubin -in pub.pem -outform DER | openssl dgst -sha256`. The one key
    /// fingerprint used everywhere in fleet-images (records, provenance, messages).
    public var fingerprint: String { "SHA256:" + Digest.sha256Hex(der) }

    /// The key as PEM (`-----BEGIN PUBLIC KEY-----` …), ending in a newline.
    public var pemString: String {
        guard let bio = BIO_new(BIO_s_mem()) else { fatalError("BIO_new: out of memory") }
        defer { BIO_free(bio) }
        precondition(PEM_write_bio_PUBKEY(bio, pointer) == 1, "PEM_write_bio_PUBKEY failed: \(OpenSSLErrorQueue.drain())")
        return SigningBIO.string(bio)
    }

    /// Whether `signature` is a valid SHA-256 signature of `message` by this key.
    public func verify(_ message: [UInt8], signature: [UInt8], padding: RSAPadding) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestVerifyInit(context, &keyContext, EVP_sha256(), nil, pointer) == 1, let keyContext,
              (try? RSAParameters.apply(padding, to: keyContext, algorithm: algorithm, source: source)) != nil
        else { return false }
        let data = message.isEmpty ? [0] : message
        let sig = signature.isEmpty ? [0] : signature
        return EVP_DigestVerify(context, sig, signature.count, data, message.count) == 1
    }

    /// Whether `signature` is a valid signature of the data whose SHA-256 is `digest`
    /// (the counterpart of `SigningKey.sign(sha256Digest:padding:)`).
    func verify(sha256Digest digest: [UInt8], signature: [UInt8], padding: RSAPadding) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard digest.count == 32, !signature.isEmpty, let context = EVP_PKEY_CTX_new(pointer, nil) else { return false }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_verify_init(context) == 1, EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) == 1,
              (try? RSAParameters.apply(padding, to: context, algorithm: algorithm, source: source)) != nil
        else { return false }
        return EVP_PKEY_verify(context, signature, signature.count, digest, digest.count) == 1
    }
}

/// Reading a memory BIO's contents.
enum SigningBIO {
    static func string(_ bio: OpaquePointer) -> String {
        var data: UnsafeMutablePointer<CChar>?
        let length = fleet_BIO_get_mem_data(bio, &data)
        guard length > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }
}
