internal import COpenSSL

/// A private key that signs images and DSSE envelopes: RSA ≥ 2048 bits, ECDSA P-256 or P-384.
///
/// Owns an OpenSSL `EVP_PKEY`, freed in `deinit`. `@unchecked Sendable` because the key is never
/// mutated after loading and OpenSSL allows a read-only `EVP_PKEY` to be used from several threads
/// at once; every operation makes its own context.
public final class SigningKey: @unchecked Sendable {
    let pointer: OpaquePointer
    /// The file the key was loaded from (for messages), or a description of where it came from.
    public let source: String
    public let algorithm: KeyAlgorithm
    public let publicKey: VerifyingKey

    /// Takes ownership of `pointer` (frees it if this initialiser throws).
    init(taking pointer: OpaquePointer, source: String) throws(SigningError) {
        do {
            self.algorithm = try PEMKeyDecoder.algorithm(of: pointer, path: source)
        } catch {
            EVP_PKEY_free(pointer)
            throw error
        }
        self.pointer = pointer
        self.source = source
        // A public-only copy, so the verifying key never carries private material around.
        let der = PEMKeyDecoder.subjectPublicKeyInfo(pointer)
        guard let publicPointer = PEMKeyDecoder.publicKey(der: der) else {
            fatalError("re-decoding our own SubjectPublicKeyInfo failed: \(OpenSSLErrorQueue.drain())")
        }
        self.publicKey = VerifyingKey(taking: publicPointer, algorithm: algorithm, source: source, der: der)
    }

    deinit { EVP_PKEY_free(pointer) }

    /// Loads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY` / `BEGIN ENCRYPTED PRIVATE KEY`) or
    /// traditional (`BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY`, possibly with `Proc-Type: 4,ENCRYPTED`).
    ///
    /// An encrypted key needs `passphrase`; without one this fails at once with
    /// `SigningError.passphraseRequired` and never prompts.
    public static func load(contentsOf path: String, passphrase: Secret?) throws(SigningError) -> SigningKey {
        let bytes = try SigningFiles.readSmallFile(path)
        let pointer = try PEMKeyDecoder.privateKey(bytes, path: path, passphrase: passphrase)
        return try SigningKey(taking: pointer, source: path)
    }

    /// Signs `message` with SHA-256 in one shot (for small payloads such as DSSE envelopes).
    /// The result is what `openssl dgst -sha256 -sign` writes for the same bytes.
    public func sign(_ message: [UInt8], padding: RSAPadding) throws(SigningError) -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLErrorQueue.failure("signing", path: source) }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestSignInit(context, &keyContext, EVP_sha256(), nil, pointer) == 1, let keyContext else {
            throw OpenSSLErrorQueue.failure("initialising the signature", path: source)
        }
        try RSAParameters.apply(padding, to: keyContext, algorithm: algorithm, source: source)
        var length = 0
        let data = message.isEmpty ? [0] : message  // a valid pointer for an empty message; its length stays 0
        guard EVP_DigestSign(context, nil, &length, data, message.count) == 1 else {
            throw OpenSSLErrorQueue.failure("signing", path: source)
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, data, message.count) == 1 else {
            throw OpenSSLErrorQueue.failure("signing", path: source)
        }
        return Array(signature[0..<length])
    }

    /// Signs a SHA-256 digest computed elsewhere. For RSA PKCS#1 v1.5 the DigestInfo is added here
    /// (because the signature digest is set to SHA-256), so the result has exactly the format of
    /// `openssl dgst -sha256 -sign` over the original data; this lets one hashing pass over an image
    /// serve both its `.sha256` and its `.sig`.
    func sign(sha256Digest digest: [UInt8], padding: RSAPadding) throws(SigningError) -> [UInt8] {
        precondition(digest.count == 32, "a SHA-256 digest has 32 bytes")
        OpenSSLErrorQueue.clear()
        guard let context = EVP_PKEY_CTX_new(pointer, nil) else { throw OpenSSLErrorQueue.failure("signing", path: source) }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_sign_init(context) == 1, EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) == 1 else {
            throw OpenSSLErrorQueue.failure("initialising the signature", path: source)
        }
        try RSAParameters.apply(padding, to: context, algorithm: algorithm, source: source)
        var length = 0
        guard EVP_PKEY_sign(context, nil, &length, digest, digest.count) == 1 else {
            throw OpenSSLErrorQueue.failure("signing", path: source)
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_PKEY_sign(context, &signature, &length, digest, digest.count) == 1 else {
            throw OpenSSLErrorQueue.failure("signing", path: source)
        }
        return Array(signature[0..<length])
    }

    /// Whether `publicKey` is this key's public half.
    public func matches(_ publicKey: VerifyingKey) -> Bool {
        let result = EVP_PKEY_eq(pointer, publicKey.pointer)
        OpenSSLErrorQueue.clear()  // a type mismatch (RSA vs EC) queues an error; the answer is just "no"
        return result == 1
    }
}

/// RSA signature parameters shared by signing and verification.
enum RSAParameters {
    static func apply(_ padding: RSAPadding, to context: OpaquePointer, algorithm: KeyAlgorithm, source: String) throws(SigningError) {
        guard algorithm.isRSA else { return }
        let ok: Bool
        switch padding {
        case .pkcs1:
            ok = EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1
        case .pss:
            ok = EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PSS_PADDING) == 1
                && EVP_PKEY_CTX_set_rsa_pss_saltlen(context, RSA_PSS_SALTLEN_DIGEST) == 1
                && EVP_PKEY_CTX_set_rsa_mgf1_md(context, EVP_sha256()) == 1
        }
        guard ok else { throw OpenSSLErrorQueue.failure("setting RSA \(padding.rawValue) padding", path: source) }
    }
}
