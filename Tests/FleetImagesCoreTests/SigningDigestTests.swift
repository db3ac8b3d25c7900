import Foundation
import Testing
@testable import FleetImagesCore

@Suite(.serialized)
struct SigningDigestTests {
    @Test func sha256KnownVectors() {
        #expect(Digest.sha256Hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func sha256OfFileMatchesOpenSSLAndSha256sum() throws {
        let scratch = try SigningScratch()
        // 9 MiB + 3: more than two 4 MiB read buffers and a ragged tail.
        let bytes = (0..<(9 << 20 + 3)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let path = try scratch.write("data.bin", bytes)
        let ours = try Digest.sha256Hex(fileAt: path)
        #expect(ours == signingHexWord(try signingOpenSSL("dgst", "-sha256", path)))
        #expect(ours == String(try signingTool(["sha256sum", path]).stdout.prefix(64)))
        #expect(ours == Digest.sha256Hex(bytes))
        let empty = try scratch.write("empty.bin", [])
        #expect(try Digest.sha256Hex(fileAt: empty) == Digest.sha256Hex([]))
        let missing = #expect(throws: SigningError.self) { try Digest.sha256Hex(fileAt: scratch.file("nope")) }
        #expect(missing?.description == "\(scratch.file("nope")): no such file")
    }

    @Test func hmacMatchesRFC4231AndOpenSSL() throws {
        // RFC 4231 test case 2.
        #expect(Digest.hmacSHA256Hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let scratch = try SigningScratch()
        let message = Array("fleet-images inputs".utf8)
        let path = try scratch.write("m", message)
        let key: [UInt8] = [0x0b, 0x00, 0xff, 0x42, 0x17]
        let theirs = try signingOpenSSL("dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:0b00ff4217", path)
        #expect(Digest.hmacSHA256Hex(key: key, message: message) == signingHexWord(theirs))
        #expect(Digest.hmacSHA256Hex(key: key, message: []).count == 64)
    }

    @Test func randomBytes() {
        #expect(Digest.randomBytes(0).isEmpty)
        let a = Digest.randomBytes(32), b = Digest.randomBytes(32)
        #expect(a.count == 32 && b.count == 32)
        #expect(a != b)
        #expect(Set(Digest.randomBytes(4096)).count > 200, "4096 random bytes cover most byte values")
    }

    @Test func secretsNeverPrint() {
        let secret = Secret("hunter2-passphrase")
        #expect(secret.description == "<redacted>")
        #expect(secret.debugDescription == "<redacted>")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        var dumped = ""
        dump(secret, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(!dumped.contains("104"), "no byte values either")  // 'h' is 104
        #expect(secret.withUnsafeBytes { Array($0) } == Array("hunter2-passphrase".utf8))
        #expect(Secret([1, 2, 3]).count == 3)
    }
}
