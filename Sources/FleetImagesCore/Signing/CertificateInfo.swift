import Foundation
internal import COpenSSL
internal import CKeyCheck

/// What fleet-images needs to know about an X.509 certificate (a device's claim certificate):
/// identity, validity and the key it certifies. A plain value: the OpenSSL object is released once read.
public struct CertificateInfo: Sendable, Equatable {
    /// The file the certificate was read from.
    public let path: String
    /// Lowercase hex SHA-256 of the DER certificate, no prefix: exactly AWS IoT's certificate id.
    public let sha256Fingerprint: String
    /// Subject as one RFC 2253 line (`CN=…,O=…,C=…`, most specific first).
    public let subject: String
    /// Issuer as one RFC 2253 line.
    public let issuer: String
    public let notBefore: Date
    public let notAfter: Date
    /// `VerifyingKey.fingerprint` of the certified public key (`SHA256:` + hex of its DER SubjectPublicKeyInfo).
    public let publicKeyFingerprint: String
    /// DER SubjectPublicKeyInfo of the certified key, for `matches(privateKeyAt:)`.
    let publicKeyDER: [UInt8]

    /// Reads the first PEM certificate (`-----BEGIN CERTIFICATE-----`) in `path`.
    public static func load(contentsOf path: String) throws(SigningError) -> CertificateInfo {
        let bytes = try SigningFiles.readSmallFile(path)
        let labels = SigningFiles.pemLabels(bytes)
        guard labels.contains(where: SigningFiles.isCertificateLabel) else {
            throw .wrongContent(path: path, expected: "a PEM X.509 certificate", found: SigningFiles.describeContent(labels))
        }
        OpenSSLErrorQueue.clear()
        let decoded: OpaquePointer? = bytes.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_X509(bio, nil, refusePassphrase, nil)
        }
        guard let certificate = decoded else { throw OpenSSLErrorQueue.failure("decoding the certificate", path: path) }
        defer { X509_free(certificate) }

        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, EVP_sha256(), &digest, &length) == 1 else {
            throw OpenSSLErrorQueue.failure("hashing the certificate", path: path)
        }
        guard let notBefore = date(X509_get0_notBefore(certificate)), let notAfter = date(X509_get0_notAfter(certificate)) else {
            throw OpenSSLErrorQueue.failure("reading the certificate validity", path: path)
        }
        // The SubjectPublicKeyInfo exactly as the certificate carries it. Encoding the X509_PUBKEY
        // costs ~1 µs; going through the decoded EVP_PKEY (i2d_PUBKEY) ~130 µs, which a
        // 10,000-site fleet pays 10,000 times.
        guard let subjectPublicKey = X509_get_X509_PUBKEY(certificate), X509_get0_pubkey(certificate) != nil else {
            throw OpenSSLErrorQueue.failure("reading the certificate's public key", path: path)
        }
        let encodedLength = i2d_X509_PUBKEY(subjectPublicKey, nil)
        guard encodedLength > 0 else { throw OpenSSLErrorQueue.failure("encoding the certificate's public key", path: path) }
        var publicKeyDER = [UInt8](repeating: 0, count: Int(encodedLength))
        let written = publicKeyDER.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_X509_PUBKEY(subjectPublicKey, &cursor)
        }
        guard written == encodedLength else { throw OpenSSLErrorQueue.failure("encoding the certificate's public key", path: path) }
        return CertificateInfo(
            path: path,
            sha256Fingerprint: Digest.hex(Array(digest[0..<Int(length)])),
            subject: try rfc2253(X509_get_subject_name(certificate), path: path),
            issuer: try rfc2253(X509_get_issuer_name(certificate), path: path),
            notBefore: notBefore,
            notAfter: notAfter,
            publicKeyFingerprint: "SHA256:" + Digest.sha256Hex(publicKeyDER),
            publicKeyDER: publicKeyDER
        )
    }

    /// Whether the private key at `path` is the one this certificate certifies (their public halves are equal).
    /// Any private key type OpenSSL reads is accepted here: claim keys are not subject to the signing-key policy.
    public func matches(privateKeyAt path: String, passphrase: Secret?) throws(SigningError) -> Bool {
        let bytes = try SigningFiles.readSmallFile(path)
        if let typed = Self.typedMatch(privateKeyPEM: bytes, publicKeyDER: publicKeyDER) { return typed }
        let privateKey = try PEMKeyDecoder.privateKey(bytes, path: path, passphrase: passphrase)
        defer { EVP_PKEY_free(privateKey) }
        // Fast path: the key's public half encodes to the very bytes in the certificate. Only when
        // it does not (another but equal encoding, e.g. a compressed EC point) decode and compare.
        if PEMKeyDecoder.subjectPublicKeyInfo(privateKey) == publicKeyDER { return true }
        guard let certified = PEMKeyDecoder.publicKey(der: publicKeyDER) else {
            throw OpenSSLErrorQueue.failure("decoding the certificate's public key", path: self.path)
        }
        defer { EVP_PKEY_free(certified) }
        let result = EVP_PKEY_eq(certified, privateKey)
        OpenSSLErrorQueue.clear()  // different key types queue an error; the answer is just "no"
        return result == 1
    }

    /// The answer of OpenSSL's typed decoders for an unencrypted RSA or named-curve EC key (about
    /// 25 µs instead of 400 for the generic decoder), or nil for any other key: the general path
    /// then decodes it and says what is wrong with it.
    static func typedMatch(privateKeyPEM: [UInt8], publicKeyDER: [UInt8]) -> Bool? {
        let result = privateKeyPEM.withUnsafeBufferPointer { pem in
            publicKeyDER.withUnsafeBufferPointer { spki in
                fleet_private_key_matches_spki(pem.baseAddress, pem.count, spki.baseAddress, spki.count)
            }
        }
        switch result {
        case 1: return true
        case 0: return false
        default: return nil
        }
    }

    private static func rfc2253(_ name: OpaquePointer?, path: String) throws(SigningError) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLErrorQueue.failure("reading a certificate name", path: path) }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, fleet_XN_FLAG_RFC2253()) >= 0 else {
            throw OpenSSLErrorQueue.failure("printing a certificate name", path: path)
        }
        return SigningBIO.string(bio)
    }

    /// An ASN1_TIME (UTCTime or GeneralizedTime, always UTC in certificates) as a Date.
    private static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date? {
        guard let time else { return nil }
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }
}
