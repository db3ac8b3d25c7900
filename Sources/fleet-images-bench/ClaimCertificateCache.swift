import COpenSSL
import Foundation

/// Real, distinct claim certificates and keys for generated fleets, made once and kept in
/// `<cache>/certs-<N>/`: one folder per site (`00001/claim.pem.crt`, `claim.private.pem.key`,
/// `wifi.psk`) and `ca.pem.crt`.
///
/// Each site gets its own EC P-256 key and an X.509 v3 certificate for it, signed by one bench
/// CA key, as AWS IoT's CA signs claim certificates; valid from an hour ago for two years, so the
/// checker neither refuses nor warns. They are made in-process with libcrypto: `openssl req` per
/// certificate would take minutes for 10,000.
enum ClaimCertificateCache {
    static let defaultCount = 10_000

    /// A folder with at least `count` certificates: an existing cache that is large enough, else a new one.
    static func ensure(count: Int) throws -> (folder: String, count: Int) {
        let root = BenchCache.root
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { name -> Int? in
                guard name.hasPrefix("certs-"), let n = Int(name.dropFirst(6)),
                      Files.exists("\(root)/\(name)/COMPLETE") else { return nil }
                return n
            }
            .filter { $0 >= count }
            .sorted()
        if let n = existing.first { return ("\(root)/certs-\(n)", n) }

        let total = max(count, defaultCount)
        let folder = "\(root)/certs-\(total)"
        let partial = folder + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        print("  making \(total) claim certificates and keys (EC P-256) in \(folder) (once) …")
        let seconds = try Stopwatch.time { try generate(total, into: partial) }
        try Files.write(partial + "/COMPLETE", "\(total)\n")
        try? FileManager.default.removeItem(atPath: folder)
        guard rename(partial, folder) == 0 else { throw BenchError("cannot rename \(partial) to \(folder): \(String(cString: strerror(errno)))") }
        print("  made \(total) certificates in \(Report.format(seconds)) s")
        return (folder, total)
    }

    /// Site folder name for the 1-based index `i`.
    static func siteFolder(_ i: Int) -> String {
        String(format: "%05d", i)
    }

    private static func generate(_ count: Int, into folder: String) throws {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw failure("creating an EC key context") }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1 else {
            throw failure("configuring P-256 key generation")
        }
        func newKey() throws -> OpaquePointer {
            var key: OpaquePointer?
            guard EVP_PKEY_generate(context, &key) == 1, let key else { throw failure("generating an EC key") }
            return key
        }

        let caKey = try newKey()
        defer { EVP_PKEY_free(caKey) }
        guard let caName = X509_NAME_new() else { throw failure("making a name") }
        defer { X509_NAME_free(caName) }
        for (field, value) in [("C", "US"), ("O", "fleet-images bench"), ("OU", "Benchmark claim CA (throw-away)"), ("CN", "fleet-images bench CA")] {
            guard X509_NAME_add_entry_by_txt(caName, field, MBSTRING_ASC, value, -1, -1, 0) == 1 else { throw failure("naming the CA") }
        }
        let ca = try certificate(serial: 1, subject: caName, issuer: caName, publicKey: caKey, signer: caKey, isCA: true)
        defer { X509_free(ca) }
        try writePEM(folder + "/ca.pem.crt", mode: 0o644) { PEM_write_bio_X509($0, ca) }

        for i in 1...count {
            let site = folder + "/" + siteFolder(i)
            guard mkdir(site, 0o700) == 0 else { throw BenchError("cannot create \(site): \(String(cString: strerror(errno)))") }
            let key = try newKey()
            defer { EVP_PKEY_free(key) }
            guard let subject = X509_NAME_new() else { throw failure("making a name") }
            defer { X509_NAME_free(subject) }
            guard X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, "fleet-images bench claim \(siteFolder(i))", -1, -1, 0) == 1 else {
                throw failure("naming a certificate")
            }
            let leaf = try certificate(serial: 1000 + i, subject: subject, issuer: caName, publicKey: key, signer: caKey, isCA: false)
            defer { X509_free(leaf) }
            try writePEM(site + "/claim.pem.crt", mode: 0o644) { PEM_write_bio_X509($0, leaf) }
            try writePEM(site + "/claim.private.pem.key", mode: 0o600) { PEM_write_bio_PKCS8PrivateKey($0, key, nil, nil, 0, nil, nil) }
            try Files.write(site + "/wifi.psk", "bench-passphrase-\(siteFolder(i))\n", mode: 0o600)
        }
    }

    private static func certificate(serial: Int, subject: OpaquePointer, issuer: OpaquePointer, publicKey: OpaquePointer,
                                    signer: OpaquePointer, isCA: Bool) throws -> OpaquePointer {
        guard let x509 = X509_new() else { throw failure("making a certificate") }
        var ok = X509_set_version(x509, 2) == 1
        ok = ok && ASN1_INTEGER_set(X509_get_serialNumber(x509), serial) == 1
        ok = ok && X509_gmtime_adj(X509_getm_notBefore(x509), -3600) != nil
        ok = ok && X509_gmtime_adj(X509_getm_notAfter(x509), 2 * 365 * 86_400) != nil
        ok = ok && X509_set_subject_name(x509, subject) == 1
        ok = ok && X509_set_issuer_name(x509, issuer) == 1
        ok = ok && X509_set_pubkey(x509, publicKey) == 1
        if ok, isCA {
            // basicConstraints critical CA:TRUE, as DER (SEQUENCE { BOOLEAN TRUE }): `openssl verify` needs it on the CA.
            let der: [UInt8] = [0x30, 0x03, 0x01, 0x01, 0xFF]
            guard let value = ASN1_OCTET_STRING_new() else { throw failure("making an extension") }
            defer { ASN1_OCTET_STRING_free(value) }
            ok = ASN1_OCTET_STRING_set(value, der, Int32(der.count)) == 1
            if ok, let constraints = X509_EXTENSION_create_by_NID(nil, NID_basic_constraints, 1, value) {
                ok = X509_add_ext(x509, constraints, -1) == 1
                X509_EXTENSION_free(constraints)
            } else {
                ok = false
            }
        }
        ok = ok && X509_sign(x509, signer, EVP_sha256()) > 0
        guard ok else {
            X509_free(x509)
            throw failure("building a certificate")
        }
        return x509
    }

    private static func writePEM(_ path: String, mode: mode_t, _ write: (OpaquePointer) -> Int32) throws {
        guard let bio = BIO_new_file(path, "w") else { throw failure("creating \(path)") }
        let written = write(bio)
        BIO_free(bio)
        guard written == 1 else { throw failure("writing \(path)") }
        chmod(path, mode)
    }

    private static func failure(_ what: String) -> BenchError {
        let code = ERR_get_error()
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        ERR_clear_error()
        return BenchError("\(what) failed: \(text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
    }
}
