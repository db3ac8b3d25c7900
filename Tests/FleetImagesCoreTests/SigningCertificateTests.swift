import Foundation
import Testing
@testable import FleetImagesCore

@Suite(.serialized, .timeLimit(.minutes(2)))
struct SigningCertificateTests {
    /// A self-signed certificate, and one issued by a small CA, made with the openssl command line.
    struct Fixture {
        let scratch: SigningScratch
        let deviceKey: String
        let deviceCertificate: String
        let caCertificate: String

        init(deviceKind: String = "p256") throws {
            scratch = try SigningScratch()
            let ca = try SigningTestKeys.generate("rsa2048", in: scratch, name: "ca")
            caCertificate = scratch.file("ca.crt")
            try signingOpenSSL("req", "-x509", "-new", "-key", ca.privateKey, "-subj", "/C=CH/O=Example Fleet/CN=Example Claim CA",
                        "-days", "3650", "-out", caCertificate)
            deviceKey = try SigningTestKeys.generate(deviceKind, in: scratch, name: "device").privateKey
            let request = scratch.file("device.csr")
            try signingOpenSSL("req", "-new", "-key", deviceKey, "-subj", "/C=CH/O=Example Fleet/OU=zrh-lab/CN=claim, zrh\\+1", "-out", request)
            deviceCertificate = scratch.file("device.crt")
            try signingOpenSSL("x509", "-req", "-in", request, "-CA", caCertificate, "-CAkey", ca.privateKey, "-CAcreateserial",
                        "-days", "397", "-out", deviceCertificate)
        }
    }

    /// Parses `notAfter=Jan  1 00:00:00 2030 GMT` with GNU date.
    static func openSSLDate(_ line: String) throws -> Date {
        let value = String(line.split(separator: "=", maxSplits: 1)[1]).trimmingCharacters(in: .whitespacesAndNewlines)
        let seconds = try signingTool(["date", "-u", "-d", value, "+%s"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return Date(timeIntervalSince1970: TimeInterval(Int(seconds)!))
    }

    @Test func infoMatchesOpenSSL() throws {
        let fixture = try Fixture()
        let info = try CertificateInfo.load(contentsOf: fixture.deviceCertificate)

        let fingerprintLine = try signingOpenSSL("x509", "-in", fixture.deviceCertificate, "-noout", "-fingerprint", "-sha256")
        let expectedFingerprint = String(fingerprintLine.split(separator: "=")[1]).trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: ":", with: "").lowercased()
        #expect(info.sha256Fingerprint == expectedFingerprint)
        #expect(info.sha256Fingerprint.count == 64)

        let subject = try signingOpenSSL("x509", "-in", fixture.deviceCertificate, "-noout", "-subject", "-nameopt", "RFC2253")
        #expect("subject=" + info.subject + "\n" == subject)
        #expect(info.subject == #"CN=claim\, zrh\+1,OU=zrh-lab,O=Example Fleet,C=CH"#)
        let issuer = try signingOpenSSL("x509", "-in", fixture.deviceCertificate, "-noout", "-issuer", "-nameopt", "RFC2253")
        #expect("issuer=" + info.issuer + "\n" == issuer)

        #expect(info.notAfter == (try Self.openSSLDate(try signingOpenSSL("x509", "-in", fixture.deviceCertificate, "-noout", "-enddate"))))
        #expect(info.notBefore == (try Self.openSSLDate(try signingOpenSSL("x509", "-in", fixture.deviceCertificate, "-noout", "-startdate"))))
        #expect(abs(info.notAfter.timeIntervalSince(info.notBefore) - 397 * 86400) < 1)

        let publicKey = scratch(fixture).file("device-pub.der")
        try signingOpenSSL("x509", "-in", fixture.deviceCertificate, "-noout", "-pubkey", "-out", scratch(fixture).file("device-pub.pem"))
        try signingOpenSSL("pkey", "-pubin", "-in", scratch(fixture).file("device-pub.pem"), "-outform", "DER", "-out", publicKey)
        #expect(info.publicKeyFingerprint == "SHA256:" + signingHexWord(try signingOpenSSL("dgst", "-sha256", publicKey)))
    }

    private func scratch(_ fixture: Fixture) -> SigningScratch { fixture.scratch }

    @Test(arguments: ["p256", "rsa2048"])
    func certificateMatchesItsKeyOnly(kind: String) throws {
        let fixture = try Fixture(deviceKind: kind)
        let info = try CertificateInfo.load(contentsOf: fixture.deviceCertificate)
        #expect(try info.matches(privateKeyAt: fixture.deviceKey, passphrase: nil))
        let other = try SigningTestKeys.generate(kind, in: fixture.scratch, name: "other")
        #expect(try !info.matches(privateKeyAt: other.privateKey, passphrase: nil))
        // The CA's RSA key: a different key (and for the P-256 device, a different type).
        #expect(try !info.matches(privateKeyAt: fixture.scratch.file("ca.key.pem"), passphrase: nil))
        // The CA certificate does match the CA key.
        #expect(try CertificateInfo.load(contentsOf: fixture.caCertificate).matches(privateKeyAt: fixture.scratch.file("ca.key.pem"), passphrase: nil))
    }

    @Test func encryptedClaimKeyNeedsItsPassphrase() throws {
        let fixture = try Fixture()
        let encrypted = fixture.scratch.file("device-encrypted.pem")
        try signingOpenSSL("pkcs8", "-topk8", "-v2", "aes256", "-in", fixture.deviceKey, "-out", encrypted, "-passout", "pass:s3cret-pass")
        let info = try CertificateInfo.load(contentsOf: fixture.deviceCertificate)
        #expect(try info.matches(privateKeyAt: encrypted, passphrase: Secret("s3cret-pass")))
        let error = #expect(throws: SigningError.self) { try info.matches(privateKeyAt: encrypted, passphrase: nil) }
        guard case .passphraseRequired = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func notACertificateIsAClearError() throws {
        let fixture = try Fixture()
        let keyAsCertificate = #expect(throws: SigningError.self) { try CertificateInfo.load(contentsOf: fixture.deviceKey) }
        #expect(keyAsCertificate?.description == "\(fixture.deviceKey): expected a PEM X.509 certificate, found a private key")
        let text = try fixture.scratch.write("notes.txt", Array("hello\n".utf8))
        let plain = #expect(throws: SigningError.self) { try CertificateInfo.load(contentsOf: text) }
        #expect(plain?.description.hasPrefix("\(text): expected a PEM X.509 certificate, found no PEM data") == true)
        let broken = try fixture.scratch.write("broken.crt", Array("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8))
        let decode = #expect(throws: SigningError.self) { try CertificateInfo.load(contentsOf: broken) }
        #expect(decode?.description.hasPrefix("\(broken): decoding the certificate failed: ") == true)
    }
}
