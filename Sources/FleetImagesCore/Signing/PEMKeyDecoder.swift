internal import COpenSSL

/// Decodes PEM private and public keys from bytes already read, turning OpenSSL's failures into
/// `SigningError`s that say which file and why.
///
/// Private keys are read with a passphrase callback that hands OpenSSL the given passphrase or
/// refuses. It never falls back to OpenSSL's default callback, which would prompt on the terminal
/// and hang an unattended cron run.
enum PEMKeyDecoder {
    /// Any private key OpenSSL can read (no algorithm policy); the caller owns the returned EVP_PKEY.
    static func privateKey(_ bytes: [UInt8], path: String, passphrase: Secret?) throws(SigningError) -> OpaquePointer {
        let labels = SigningFiles.pemLabels(bytes)
        guard labels.contains(where: SigningFiles.isPrivateKeyLabel) else {
            throw .wrongContent(path: path, expected: "a PEM private key", found: SigningFiles.describeContent(labels))
        }
        OpenSSLErrorQueue.clear()
        let request = PassphraseRequest(passphrase)
        let key: OpaquePointer? = bytes.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return withExtendedLifetime(request) {
                PEM_read_bio_PrivateKey(bio, nil, passphraseCallback, Unmanaged.passUnretained(request).toOpaque())
            }
        }
        if let key { return key }
        if request.wasAsked {
            OpenSSLErrorQueue.clear()
            if passphrase == nil { throw .passphraseRequired(path: path) }
            throw .wrongPassphrase(path: path)
        }
        throw OpenSSLErrorQueue.failure("decoding the private key", path: path)
    }

    /// A PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`); the caller owns the returned EVP_PKEY.
    static func publicKey(_ bytes: [UInt8], path: String) throws(SigningError) -> OpaquePointer {
        let labels = SigningFiles.pemLabels(bytes)
        guard labels.contains("PUBLIC KEY") else {
            var found = SigningFiles.describeContent(labels)
            if labels.contains("RSA PUBLIC KEY") {
                found = "a PKCS#1 RSA public key (convert with `openssl rsa -RSAPublicKey_in -pubout`)"
            }
            throw .wrongContent(path: path, expected: "a PEM public key (-----BEGIN PUBLIC KEY-----)", found: found)
        }
        OpenSSLErrorQueue.clear()
        let key: OpaquePointer? = bytes.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, refusePassphrase, nil)
        }
        guard let key else { throw OpenSSLErrorQueue.failure("decoding the public key", path: path) }
        return key
    }

    /// A DER SubjectPublicKeyInfo; the caller owns the returned EVP_PKEY.
    static func publicKey(der: [UInt8]) -> OpaquePointer? {
        der.withUnsafeBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return d2i_PUBKEY(nil, &cursor, buffer.count)
        }
    }

    /// The DER SubjectPublicKeyInfo of a (public or private) key: what `openssl pkey -pubout -outform DER` writes.
    static func subjectPublicKeyInfo(_ key: OpaquePointer) -> [UInt8] {
        let length = i2d_PUBKEY(key, nil)
        precondition(length > 0, "i2d_PUBKEY failed: \(OpenSSLErrorQueue.drain())")
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return i2d_PUBKEY(key, &cursor)
        }
        precondition(written == length, "i2d_PUBKEY wrote \(written) of \(length) bytes")
        return der
    }

    /// The supported algorithm of `key`, or the error naming what it is instead.
    static func algorithm(of key: OpaquePointer, path: String) throws(SigningError) -> KeyAlgorithm {
        if EVP_PKEY_is_a(key, "RSA") == 1 {
            let bits = Int(EVP_PKEY_get_bits(key))
            guard bits >= 2048 else { throw .rsaKeyTooSmall(path: path, bits: bits) }
            return .rsa(bits: bits)
        }
        if EVP_PKEY_is_a(key, "EC") == 1 {
            var name = [CChar](repeating: 0, count: 80)
            var length = 0
            guard EVP_PKEY_get_group_name(key, &name, name.count, &length) == 1 else {
                OpenSSLErrorQueue.clear()
                throw .unsupportedKey(path: path, found: "EC with explicit curve parameters")
            }
            let group = String(nulTerminated: name)
            switch group {
            case "prime256v1", "P-256", "secp256r1": return .ecdsaP256
            case "secp384r1", "P-384": return .ecdsaP384
            default: throw .unsupportedKey(path: path, found: "EC \(group)")
            }
        }
        throw .unsupportedKey(path: path, found: typeName(of: key))
    }

    /// "Ed25519", "DSA", "RSA-PSS", …: OpenSSL's name with the usual capitalisation.
    static func typeName(of key: OpaquePointer) -> String {
        guard let raw = EVP_PKEY_get0_type_name(key) else { return "(unknown)" }
        switch String(cString: raw) {
        case "ED25519": return "Ed25519"
        case "ED448": return "Ed448"
        case let other: return other
        }
    }
}

/// What the passphrase callback needs, passed to it through OpenSSL's `void *u`.
private final class PassphraseRequest {
    let passphrase: Secret?
    var wasAsked = false
    init(_ passphrase: Secret?) { self.passphrase = passphrase }
}

/// Copies the passphrase into OpenSSL's buffer, or refuses (-1) when there is none or it does not fit.
private func passphraseCallback(
    _ buffer: UnsafeMutablePointer<CChar>?, _ size: Int32, _ writing: Int32, _ context: UnsafeMutableRawPointer?
) -> Int32 {
    guard let buffer, let context else { return -1 }
    let request = Unmanaged<PassphraseRequest>.fromOpaque(context).takeUnretainedValue()
    request.wasAsked = true
    guard let passphrase = request.passphrase, passphrase.count <= Int(size) else { return -1 }
    passphrase.withUnsafeBytes { bytes in
        if let base = bytes.baseAddress {
            UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: bytes.count)
        }
    }
    return Int32(passphrase.count)
}

/// For reads that should never need a passphrase (public keys, certificates): refuse, never prompt.
func refusePassphrase(
    _ buffer: UnsafeMutablePointer<CChar>?, _ size: Int32, _ writing: Int32, _ context: UnsafeMutableRawPointer?
) -> Int32 {
    -1
}
