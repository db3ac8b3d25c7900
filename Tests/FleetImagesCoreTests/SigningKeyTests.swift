import Foundation
import Testing
@testable import FleetImagesCore

/// Loading private and public keys made by the openssl command line, and the errors for everything else.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SigningKeyTests {
    @Test(arguments: [
        ("rsa2048", KeyAlgorithm.rsa(bits: 2048)), ("rsa3072", .rsa(bits: 3072)), ("p256", .ecdsaP256), ("p384", .ecdsaP384),
    ])
    func loadsSupportedKeysAndFingerprintMatchesOpenSSL(kind: String, algorithm: KeyAlgorithm) throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate(kind, in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let publicKey = try VerifyingKey.load(contentsOf: publicPath)
        #expect(key.algorithm == algorithm)
        #expect(publicKey.algorithm == algorithm)

        let der = scratch.file("pub.der")
        try signingOpenSSL("pkey", "-pubin", "-in", publicPath, "-outform", "DER", "-out", der)
        let expected = "SHA256:" + signingHexWord(try signingOpenSSL("dgst", "-sha256", der))
        #expect(publicKey.fingerprint == expected)
        #expect(key.publicKey.fingerprint == expected)
        #expect(key.matches(publicKey))
        #expect(key.publicKey.pemString == String(decoding: try scratch.read("\(kind).pub.pem"), as: UTF8.self))
    }

    @Test func traditionalFormatsLoad() throws {
        let scratch = try SigningScratch()
        let rsa = scratch.file("rsa-trad.pem"), ec = scratch.file("ec-trad.pem")
        try signingOpenSSL("genrsa", "-traditional", "-out", rsa, "2048")
        try signingOpenSSL("ecparam", "-name", "prime256v1", "-genkey", "-out", ec)  // EC PARAMETERS + EC PRIVATE KEY
        #expect(String(decoding: try scratch.read("rsa-trad.pem"), as: UTF8.self).contains("BEGIN RSA PRIVATE KEY"))
        #expect(String(decoding: try scratch.read("ec-trad.pem"), as: UTF8.self).contains("BEGIN EC PRIVATE KEY"))
        #expect(try SigningKey.load(contentsOf: rsa, passphrase: nil).algorithm == .rsa(bits: 2048))
        #expect(try SigningKey.load(contentsOf: ec, passphrase: nil).algorithm == .ecdsaP256)
    }

    /// PKCS#8 `-aes256` and traditional `openssl rsa -aes256` keys: right, wrong and missing passphrase.
    /// A missing passphrase must fail at once with `passphraseRequired` (which proves our callback, not
    /// OpenSSL's terminal prompt, was asked); the time limit guards against a hang.
    @Test(arguments: ["pkcs8", "traditional"])
    func encryptedKeys(format: String) throws {
        let scratch = try SigningScratch()
        let (plain, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let encrypted = scratch.file("encrypted.pem")
        let passphrase = "correct horse battery"
        if format == "pkcs8" {
            try signingOpenSSL("pkcs8", "-topk8", "-v2", "aes256", "-in", plain, "-out", encrypted, "-passout", "pass:\(passphrase)")
            #expect(String(decoding: try scratch.read("encrypted.pem"), as: UTF8.self).contains("BEGIN ENCRYPTED PRIVATE KEY"))
        } else {
            let rsaPlain = scratch.file("rsa.pem")
            try signingOpenSSL("genrsa", "-traditional", "-out", rsaPlain, "2048")
            try signingOpenSSL("rsa", "-traditional", "-aes256", "-in", rsaPlain, "-out", encrypted, "-passout", "pass:\(passphrase)")
            try signingOpenSSL("rsa", "-in", rsaPlain, "-pubout", "-out", publicPath)
            #expect(String(decoding: try scratch.read("encrypted.pem"), as: UTF8.self).contains("Proc-Type: 4,ENCRYPTED"))
        }

        let key = try SigningKey.load(contentsOf: encrypted, passphrase: Secret(passphrase))
        #expect(key.matches(try VerifyingKey.load(contentsOf: publicPath)))

        let wrong = #expect(throws: SigningError.self) {
            try SigningKey.load(contentsOf: encrypted, passphrase: Secret("not the passphrase"))
        }
        guard case .wrongPassphrase(let path) = wrong else { Issue.record("got \(String(describing: wrong))"); return }
        #expect(path == encrypted)
        #expect(!(wrong?.description.contains("not the passphrase") ?? true))

        let started = Date()
        let missing = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: encrypted, passphrase: nil) }
        guard case .passphraseRequired = missing else { Issue.record("got \(String(describing: missing))"); return }
        #expect(Date().timeIntervalSince(started) < 10, "must fail fast, not wait for input")
        #expect(missing?.description.contains(encrypted) == true)
    }

    @Test func ed25519IsRefusedWithTheSupportedList() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("ed25519", in: scratch)
        let error = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: privatePath, passphrase: nil) }
        #expect(error?.description == "\(privatePath): unsupported key type Ed25519; supported: RSA ≥ 2048 bits, ECDSA P-256, ECDSA P-384")
        let publicError = #expect(throws: SigningError.self) { try VerifyingKey.load(contentsOf: publicPath) }
        #expect(publicError?.description.contains("unsupported key type Ed25519") == true)
    }

    @Test func otherCurvesAndSmallRSAAreRefused() throws {
        let scratch = try SigningScratch()
        let p521 = try SigningTestKeys.generate("p521", in: scratch).privateKey
        let curveError = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: p521, passphrase: nil) }
        #expect(curveError?.description.contains("unsupported key type EC secp521r1") == true)

        let rsa1024 = try SigningTestKeys.generate("rsa1024", in: scratch).privateKey
        let sizeError = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: rsa1024, passphrase: nil) }
        #expect(sizeError?.description == "\(rsa1024): RSA key has 1024 bits; supported: RSA ≥ 2048 bits, ECDSA P-256, ECDSA P-384")
    }

    @Test func wrongKindsOfFileAreNamed() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let certificate = scratch.file("cert.pem")
        try signingOpenSSL("req", "-x509", "-new", "-key", privatePath, "-subj", "/CN=test", "-days", "1", "-out", certificate)
        let der = scratch.file("key.der")
        try signingOpenSSL("pkey", "-in", privatePath, "-outform", "DER", "-out", der)

        let publicAsPrivate = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: publicPath, passphrase: nil) }
        #expect(publicAsPrivate?.description == "\(publicPath): expected a PEM private key, found a public key")
        let certificateAsPrivate = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: certificate, passphrase: nil) }
        #expect(certificateAsPrivate?.description == "\(certificate): expected a PEM private key, found a certificate")
        let privateAsPublic = #expect(throws: SigningError.self) { try VerifyingKey.load(contentsOf: privatePath) }
        #expect(privateAsPublic?.description.hasPrefix("\(privatePath): expected a PEM public key") == true)
        #expect(privateAsPublic?.description.hasSuffix("found a private key") == true)
        let derKey = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: der, passphrase: nil) }
        #expect(derKey?.description.contains("found no PEM data") == true)

        let missing = scratch.file("absent.pem")
        let notFound = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: missing, passphrase: nil) }
        #expect(notFound?.description == "\(missing): no such file")
        let directory = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: scratch.path, passphrase: nil) }
        #expect(directory?.description.hasPrefix("\(scratch.path): cannot read: Is a directory") == true)

        let garbage = try scratch.write("garbage.pem", Array("-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n".utf8))
        let malformed = #expect(throws: SigningError.self) { try SigningKey.load(contentsOf: garbage, passphrase: nil) }
        guard case .openSSL(_, let path, let detail) = malformed else { Issue.record("got \(String(describing: malformed))"); return }
        #expect(path == garbage)
        #expect(!detail.isEmpty, "the OpenSSL error queue was drained into the message")
    }

    /// One-shot `sign` (for DSSE) against `openssl dgst`, both directions, every key kind and padding.
    @Test(arguments: [("rsa2048", RSAPadding.pkcs1), ("rsa2048", .pss), ("p256", .pkcs1), ("p384", .pkcs1)])
    func oneShotSignatureCrossChecksWithOpenSSL(kind: String, padding: RSAPadding) throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate(kind, in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let publicKey = try VerifyingKey.load(contentsOf: publicPath)
        let message = Array("{\"payloadType\":\"application/vnd.in-toto+json\"}".utf8)
        let messagePath = try scratch.write("message", message)
        let pss = padding == .pss ? ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"] : []

        let ours = try key.sign(message, padding: padding)
        let oursPath = try scratch.write("ours.sig", ours)
        let verified = try signingTool(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", oursPath] + pss + [messagePath])
        #expect(verified.stdout.contains("Verified OK"))
        #expect(publicKey.verify(message, signature: ours, padding: padding))

        let theirsPath = scratch.file("theirs.sig")
        try signingTool(["openssl", "dgst", "-sha256", "-sign", privatePath] + pss + ["-out", theirsPath, messagePath])
        let theirs = try scratch.read("theirs.sig")
        #expect(publicKey.verify(message, signature: theirs, padding: padding))
        if kind.hasPrefix("rsa") && padding == .pkcs1 {
            #expect(ours == theirs, "PKCS#1 v1.5 is deterministic: byte-identical to openssl")
        }
        var altered = message
        altered[0] ^= 1
        #expect(!publicKey.verify(altered, signature: theirs, padding: padding))
        #expect(!publicKey.verify(message, signature: [], padding: padding))
    }

    @Test func mismatchedKeysDoNotMatch() throws {
        let scratch = try SigningScratch()
        let a = try SigningTestKeys.generate("p256", in: scratch)
        let other = try SigningScratch()
        let b = try SigningTestKeys.generate("p256", in: other)
        let c = try SigningTestKeys.generate("rsa2048", in: other)
        let key = try SigningKey.load(contentsOf: a.privateKey, passphrase: nil)
        #expect(key.matches(try VerifyingKey.load(contentsOf: a.publicKey)))
        #expect(!key.matches(try VerifyingKey.load(contentsOf: b.publicKey)))
        #expect(!key.matches(try VerifyingKey.load(contentsOf: c.publicKey)))
    }
}
