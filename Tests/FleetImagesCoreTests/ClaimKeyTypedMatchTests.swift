import Foundation
import Testing
@testable import FleetImagesCore

/// The typed fast path of the claim-key check (`Sources/CKeyCheck`): every key encoding a claim
/// pair arrives in gets the same answer as openssl's own tools, and what it does not read is left
/// to the general decoder (nil), never answered wrongly.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ClaimKeyTypedMatchTests {
    let scratch: SigningScratch

    init() throws { scratch = try SigningScratch() }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// A self-signed certificate of `key`, and what the typed path and `matches` say of `candidate` against it.
    func certificate(of key: String, name: String) throws -> CertificateInfo {
        let path = scratch.file(name + ".crt")
        try signingOpenSSL("req", "-x509", "-new", "-key", key, "-subj", "/CN=\(name)", "-days", "30", "-out", path)
        return try CertificateInfo.load(contentsOf: path)
    }

    func typed(_ candidate: String, _ info: CertificateInfo) throws -> Bool? {
        CertificateInfo.typedMatch(privateKeyPEM: try bytes(candidate), publicKeyDER: info.publicKeyDER)
    }

    @Test func everyUnencryptedEncodingOfRSAAndECIsAnsweredByTheTypedPath() throws {
        for kind in ["p256", "p384", "rsa2048"] {
            let key = try SigningTestKeys.generate(kind, in: scratch, name: kind).privateKey
            let other = try SigningTestKeys.generate(kind, in: scratch, name: kind + "-other").privateKey
            let info = try certificate(of: key, name: kind)
            // PKCS#8, as genpkey writes it.
            #expect(try typed(key, info) == true, "\(kind) PKCS#8")
            #expect(try typed(other, info) == false, "\(kind): another key")
            // The traditional encoding: SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY".
            let traditional = scratch.file(kind + "-traditional.pem")
            // (`openssl ec` writes SEC1 as it is; `openssl rsa` needs -traditional for PKCS#1.)
            if kind.hasPrefix("rsa") {
                try signingOpenSSL("rsa", "-in", key, "-traditional", "-out", traditional)
            } else {
                try signingOpenSSL("ec", "-in", key, "-out", traditional)
            }
            let label = kind.hasPrefix("rsa") ? "-----BEGIN RSA PRIVATE KEY-----" : "-----BEGIN EC PRIVATE KEY-----"
            #expect(String(decoding: try bytes(traditional), as: UTF8.self).hasPrefix(label))
            #expect(try typed(traditional, info) == true, "\(kind) traditional")
            #expect(try info.matches(privateKeyAt: traditional, passphrase: nil))
            #expect(try !info.matches(privateKeyAt: other, passphrase: nil))
        }
    }

    @Test func keysOfAnotherTypeOrCurveDoNotMatch() throws {
        let p256 = try SigningTestKeys.generate("p256", in: scratch).privateKey
        let p384 = try SigningTestKeys.generate("p384", in: scratch).privateKey
        let rsa = try SigningTestKeys.generate("rsa2048", in: scratch).privateKey
        let p256Info = try certificate(of: p256, name: "p256")
        let rsaInfo = try certificate(of: rsa, name: "rsa")
        #expect(try typed(p384, p256Info) == false)
        #expect(try typed(rsa, p256Info) == false)
        #expect(try typed(p256, rsaInfo) == false)
    }

    /// `openssl ecparam -genkey` writes an EC PARAMETERS block before the key: it is skipped.
    @Test func parametersBeforeTheKeyAreSkipped() throws {
        let key = scratch.file("ecparam.pem")
        try signingOpenSSL("ecparam", "-name", "prime256v1", "-genkey", "-out", key)
        #expect(String(decoding: try bytes(key), as: UTF8.self).hasPrefix("-----BEGIN EC PARAMETERS-----"))
        #expect(try typed(key, try certificate(of: key, name: "ecparam")) == true)
    }

    /// A certificate may carry its EC point compressed (02/03 + x): still the same key.
    @Test func aCompressedPointInTheCertificateIsTheSameKey() throws {
        let key = try SigningTestKeys.generate("p256", in: scratch).privateKey
        let compressed = scratch.file("compressed.pem")
        try signingOpenSSL("ec", "-in", key, "-conv_form", "compressed", "-out", compressed)
        let info = try certificate(of: compressed, name: "compressed")
        // SubjectPublicKeyInfo: 26 bytes of algorithm and framing + 33 of point (65 uncompressed).
        #expect(info.publicKeyDER.count == 59, "the certificate's point is not compressed: \(info.publicKeyDER.count) bytes")
        #expect(try typed(key, info) == true)
        let other = try SigningTestKeys.generate("p256", in: scratch, name: "other").privateKey
        #expect(try typed(other, info) == false)
    }

    /// A key file also stores its public point; the check computes it from the private scalar
    /// instead, so a file whose stored point is another key's is not taken for that key.
    @Test func theStoredPublicPointIsNotTrusted() throws {
        let key = try SigningTestKeys.generate("p256", in: scratch, name: "real")
        let other = try SigningTestKeys.generate("p256", in: scratch, name: "other")
        let sec1 = scratch.file("real.der")
        try signingOpenSSL("ec", "-in", key.privateKey, "-outform", "DER", "-out", sec1)
        let otherSPKI = scratch.file("other.pub.der")
        try signingOpenSSL("pkey", "-pubin", "-in", other.publicKey, "-outform", "DER", "-out", otherSPKI)
        // SEC1 ECPrivateKey ends with [1] BIT STRING { 00, 04 || X || Y }; so does the SPKI.
        var der = try bytes(sec1)
        let otherPoint = try bytes(otherSPKI).suffix(65)
        #expect(Array(der.suffix(65)) != Array(otherPoint) && der[der.count - 65] == 0x04 && otherPoint.first == 0x04)
        der.replaceSubrange((der.count - 65)..., with: otherPoint)
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        let forged = try scratch.write("forged.pem", Array("-----BEGIN EC PRIVATE KEY-----\n\(base64)\n-----END EC PRIVATE KEY-----\n".utf8))

        #expect(try typed(forged, try certificate(of: key.privateKey, name: "real")) == true)
        let otherInfo = try certificate(of: other.privateKey, name: "other")
        #expect(try typed(forged, otherInfo) == false)
        #expect(try !otherInfo.matches(privateKeyAt: forged, passphrase: nil))
    }

    /// Encrypted keys (PKCS#8 and the legacy PEM header), other algorithms and broken data are the
    /// general decoder's: it asks for the passphrase or names the problem.
    @Test func whatTheTypedPathDoesNotReadIsLeftToTheGeneralDecoder() throws {
        let key = try SigningTestKeys.generate("p256", in: scratch).privateKey
        let info = try certificate(of: key, name: "p256")
        let pkcs8 = scratch.file("encrypted-pkcs8.pem")
        try signingOpenSSL("pkcs8", "-topk8", "-v2", "aes256", "-in", key, "-out", pkcs8, "-passout", "pass:s3cret-pass")
        let legacy = scratch.file("encrypted-legacy.pem")
        try signingOpenSSL("ec", "-in", key, "-aes256", "-out", legacy, "-passout", "pass:s3cret-pass")
        #expect(String(decoding: try bytes(legacy), as: UTF8.self).contains("Proc-Type: 4,ENCRYPTED"))
        #expect(try typed(pkcs8, info) == nil)
        #expect(try typed(legacy, info) == nil)
        let error = #expect(throws: SigningError.self) { try info.matches(privateKeyAt: legacy, passphrase: nil) }
        guard case .passphraseRequired = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(try info.matches(privateKeyAt: legacy, passphrase: Secret("s3cret-pass")))

        let ed25519 = try SigningTestKeys.generate("ed25519", in: scratch).privateKey
        let edInfo = try certificate(of: ed25519, name: "ed25519")
        #expect(try typed(ed25519, edInfo) == nil)
        #expect(try edInfo.matches(privateKeyAt: ed25519, passphrase: nil))

        let broken = try scratch.write("broken.pem", Array("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8))
        #expect(try typed(broken, info) == nil)
        #expect(CertificateInfo.typedMatch(privateKeyPEM: try bytes(key), publicKeyDER: [0x30, 0x03, 0x02, 0x01, 0x00]) == nil)
    }
}
