internal import COpenSSL

/// The kinds of signing key `KeyGeneration` makes. Raw values are the spellings for command lines.
public enum KeyKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case ecP256 = "ecdsa-p256"
    case ecP384 = "ecdsa-p384"
    case rsa3072 = "rsa-3072"
    case rsa4096 = "rsa-4096"

    public var description: String { rawValue }
}

/// Creates signing key pairs.
public enum KeyGeneration {
    /// Generates a key pair and writes the private key (PKCS#8 PEM, unencrypted, mode 0600) and the
    /// public key (PEM SubjectPublicKeyInfo, mode 0644). Returns the public key's fingerprint.
    ///
    /// Never overwrites: if either file exists nothing is written and the error names it. Each file is
    /// written completely under a temporary name (O_CREAT|O_EXCL) and then hard-linked to its final
    /// name, which fails rather than replace a file that appeared meanwhile; if the public key cannot
    /// be written, the private key just written is removed again, so a failure leaves neither.
    @discardableResult
    public static func generate(_ kind: KeyKind, privateKeyPath: String, publicKeyPath: String) throws(SigningError) -> String {
        for path in [privateKeyPath, publicKeyPath] where SigningFiles.exists(path) {
            throw .fileExists(path: path)
        }
        let key = try SigningKey(taking: generateKey(kind), source: "generated \(kind) key")
        let privatePEM = try pkcs8PEM(key)
        let publicPEM = Array(key.publicKey.pemString.utf8)

        try SigningFiles.writeExclusively(privatePEM, to: privateKeyPath, mode: 0o600)
        do throws(SigningError) {
            try SigningFiles.writeExclusively(publicPEM, to: publicKeyPath, mode: 0o644)
        } catch {
            SigningFiles.remove(privateKeyPath)
            throw error
        }
        return key.publicKey.fingerprint
    }

    private static func generateKey(_ kind: KeyKind) throws(SigningError) -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        let isRSA = kind == .rsa3072 || kind == .rsa4096
        guard let context = EVP_PKEY_CTX_new_from_name(nil, isRSA ? "RSA" : "EC", nil) else {
            throw OpenSSLErrorQueue.failure("creating a \(kind) key")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else { throw OpenSSLErrorQueue.failure("creating a \(kind) key") }
        let configured: Int32
        switch kind {
        case .ecP256: configured = EVP_PKEY_CTX_set_group_name(context, "P-256")
        case .ecP384: configured = EVP_PKEY_CTX_set_group_name(context, "P-384")
        case .rsa3072: configured = EVP_PKEY_CTX_set_rsa_keygen_bits(context, 3072)
        case .rsa4096: configured = EVP_PKEY_CTX_set_rsa_keygen_bits(context, 4096)
        }
        var key: OpaquePointer?
        guard configured == 1, EVP_PKEY_generate(context, &key) == 1, let key else {
            throw OpenSSLErrorQueue.failure("creating a \(kind) key")
        }
        return key
    }

    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8, unencrypted), as `openssl genpkey` writes.
    private static func pkcs8PEM(_ key: SigningKey) throws(SigningError) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLErrorQueue.failure("encoding the private key") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PKCS8PrivateKey(bio, key.pointer, nil, nil, 0, nil, nil) == 1 else {
            throw OpenSSLErrorQueue.failure("encoding the private key")
        }
        return Array(SigningBIO.string(bio).utf8)
    }
}
