import Foundation
import Testing
@testable import FleetImagesCore

@Suite(.serialized, .timeLimit(.minutes(3)))
struct SigningKeyGenerationTests {
    @Test(arguments: KeyKind.allCases)
    func generatedKeysAreReadByOpenSSL(kind: KeyKind) throws {
        let scratch = try SigningScratch()
        let privatePath = scratch.file("signing.key"), publicPath = scratch.file("signing.pub")
        let fingerprint = try KeyGeneration.generate(kind, privateKeyPath: privatePath, publicKeyPath: publicPath)

        let privateAttributes = try FileManager.default.attributesOfItem(atPath: privatePath)
        let publicAttributes = try FileManager.default.attributesOfItem(atPath: publicPath)
        #expect((privateAttributes[.posixPermissions] as? Int) == 0o600)
        #expect((publicAttributes[.posixPermissions] as? Int) == 0o644)
        #expect(String(decoding: try scratch.read("signing.key"), as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----\n"))

        // openssl reads the private key, checks it and derives the same public key and fingerprint.
        let text = try signingOpenSSL("pkey", "-in", privatePath, "-noout", "-text")
        switch kind {
        case .ecP256: #expect(text.contains("NIST CURVE: P-256"))
        case .ecP384: #expect(text.contains("NIST CURVE: P-384"))
        case .rsa3072: #expect(text.contains("Private-Key: (3072 bit"))
        case .rsa4096: #expect(text.contains("Private-Key: (4096 bit"))
        }
        try signingOpenSSL("pkey", "-in", privatePath, "-check", "-noout")
        let derived = try signingOpenSSL("pkey", "-in", privatePath, "-pubout")
        #expect(derived == String(decoding: try scratch.read("signing.pub"), as: UTF8.self))
        let der = scratch.file("pub.der")
        try signingOpenSSL("pkey", "-pubin", "-in", publicPath, "-outform", "DER", "-out", der)
        #expect(fingerprint == "SHA256:" + signingHexWord(try signingOpenSSL("dgst", "-sha256", der)))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: scratch.path)) == ["signing.key", "signing.pub", "pub.der"])
    }

    @Test func refusesToOverwriteEitherFileAndSaysWhich() throws {
        let scratch = try SigningScratch()
        let privatePath = scratch.file("signing.key"), publicPath = scratch.file("signing.pub")
        _ = try scratch.write("signing.pub", Array("keep me".utf8))
        let publicExists = #expect(throws: SigningError.self) {
            try KeyGeneration.generate(.ecP256, privateKeyPath: privatePath, publicKeyPath: publicPath)
        }
        #expect(publicExists?.description.hasPrefix("\(publicPath): already exists; refusing to overwrite") == true)
        #expect(!FileManager.default.fileExists(atPath: privatePath), "nothing half-written")
        #expect(try scratch.read("signing.pub") == Array("keep me".utf8))

        try FileManager.default.removeItem(atPath: publicPath)
        _ = try scratch.write("signing.key", Array("keep me too".utf8))
        let privateExists = #expect(throws: SigningError.self) {
            try KeyGeneration.generate(.ecP256, privateKeyPath: privatePath, publicKeyPath: publicPath)
        }
        #expect(privateExists?.description.hasPrefix("\(privatePath): already exists") == true)
        #expect(!FileManager.default.fileExists(atPath: publicPath))
        #expect(try scratch.read("signing.key") == Array("keep me too".utf8))
    }

    @Test func unwritableFolderLeavesNothing() throws {
        let scratch = try SigningScratch()
        let privatePath = scratch.file("signing.key")
        let publicPath = scratch.file("missing-folder/signing.pub")
        let error = #expect(throws: SigningError.self) {
            try KeyGeneration.generate(.ecP256, privateKeyPath: privatePath, publicKeyPath: publicPath)
        }
        #expect(error?.description.contains("cannot write") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty, "private key removed again, no temporaries")
    }

    @Test func generatedKeySignsWhatOpenSSLVerifies() throws {
        let scratch = try SigningScratch()
        let privatePath = scratch.file("k.pem"), publicPath = scratch.file("k.pub")
        try KeyGeneration.generate(.ecP384, privateKeyPath: privatePath, publicKeyPath: publicPath)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        #expect(key.algorithm == .ecdsaP384)
        let image = try scratch.write("x.img", Array(repeating: 7, count: 1000))
        try ImageSigning.writeSidecars(try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1), forImageAt: image)
        let verified = try signingTool(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", image + ".sig", image])
        #expect(verified.stdout == "Verified OK\n")
    }
}
