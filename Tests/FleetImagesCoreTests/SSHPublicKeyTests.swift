import Foundation
import Testing
@testable import FleetImagesCore

/// OpenSSH public keys: parsed as sshd would take them, fingerprinted exactly as `ssh-keygen -lf` does.
@Suite(.serialized) struct SSHPublicKeyTests {
    /// A key made by ssh-keygen: the `.pub` line and ssh-keygen's own fingerprint of it.
    static func makeKey(_ type: String, bits: Int? = nil, in directory: String) throws -> (line: String, fingerprint: String, path: String) {
        let path = directory + "/\(type)-\(bits ?? 0)"
        try runTool("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "operator@example \(type)", "-f", path] + (bits.map { ["-b", String($0)] } ?? []))
        let line = try String(contentsOfFile: path + ".pub", encoding: .utf8)
        // "256 SHA256:… comment (ED25519)"
        let printed = try runTool("ssh-keygen", ["-l", "-E", "sha256", "-f", path + ".pub"])
        let fingerprint = String(printed.split(separator: " ")[1])
        return (line, fingerprint, path + ".pub")
    }

    @Test(arguments: [("ed25519", nil), ("rsa", 3072), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521)] as [(String, Int?)])
    func fingerprintIsSSHKeygens(_ type: String, _ bits: Int?) throws {
        let directory = try makeTemporaryDirectory()
        let made = try Self.makeKey(type, bits: bits, in: directory)
        let keys = try SSHPublicKey.load(contentsOf: made.path)
        #expect(keys.count == 1)
        #expect(keys[0].fingerprint == made.fingerprint)
        #expect(keys[0].comment == "operator@example \(type)")
        #expect(keys[0].line + "\n" == made.line)
    }

    /// Security-key types cannot be made without a token here; their blob is built by hand from
    /// OpenSSH's PROTOCOL.u2f layout and ssh-keygen fingerprints it all the same.
    @Test func securityKeyTypesParseAndMatchSSHKeygen() throws {
        func string(_ bytes: [UInt8]) -> [UInt8] {
            let n = UInt32(bytes.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + bytes
        }
        let ed = string(Array("sk-ssh-ed25519@openssh.com".utf8)) + string([UInt8](repeating: 7, count: 32)) + string(Array("ssh:".utf8))
        let ec = string(Array("sk-ecdsa-sha2-nistp256@openssh.com".utf8)) + string(Array("nistp256".utf8))
        // A real P-256 point (the generator), so ssh-keygen accepts it.
        let generator = Digest.bytes(fromHex: "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")!
        let ecBlob = ec + string(generator) + string(Array("ssh:".utf8))
        let directory = try makeTemporaryDirectory()
        for (type, blob) in [("sk-ssh-ed25519@openssh.com", ed), ("sk-ecdsa-sha2-nistp256@openssh.com", ecBlob)] {
            let line = "\(type) \(Data(blob).base64EncodedString()) token"
            let path = directory + "/sk.pub"
            try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: path))
            let printed = try runTool("ssh-keygen", ["-l", "-E", "sha256", "-f", path])
            let key = try SSHPublicKey(line: line)
            #expect(key.type == type)
            #expect(key.fingerprint == String(printed.split(separator: " ")[1]), "\(printed)")
        }
    }

    @Test func severalKeysWithCommentsAndBlankLines() throws {
        let directory = try makeTemporaryDirectory()
        let a = try Self.makeKey("ed25519", in: directory)
        let b = try Self.makeKey("ecdsa", bits: 256, in: directory)
        let text = "# operators\n\n\(a.line)   \n\r\n# the backup key\n\(b.line.replacingOccurrences(of: "\n", with: "\r\n"))"
        let keys = try SSHPublicKey.parseAll(text)
        #expect(keys.map(\.fingerprint) == [a.fingerprint, b.fingerprint])
    }

    @Test func malformedKeysAreRefusedWithTheLine() throws {
        let directory = try makeTemporaryDirectory()
        let ed = try Self.makeKey("ed25519", in: directory)
        let blob = String(ed.line.split(separator: " ")[1])
        func reason(_ text: String) -> String? {
            do { _ = try SSHPublicKey.parseAll(text); return nil } catch { return error.description }
        }
        // The line says rsa, the blob is an ed25519 key.
        #expect(reason("ssh-rsa \(blob) x")?.contains("its key data is a ssh-ed25519 key") == true)
        #expect(reason("# c\nssh-ed25519 !!!notbase64 x")?.hasPrefix("line 2:") == true)
        #expect(reason("ssh-ed25519") != nil)
        // Truncated: half the blob.
        let half = Data(Data(base64Encoded: blob)!.prefix(30)).base64EncodedString()
        #expect(reason("ssh-ed25519 \(half)")?.contains("truncated") == true)
        // Extra bytes after the key.
        let padded = Data(Data(base64Encoded: blob)! + Data([0, 0, 0, 0])).base64EncodedString()
        #expect(reason("ssh-ed25519 \(padded)")?.contains("too many") == true)
        #expect(reason(try String(contentsOfFile: (ed.path as NSString).deletingPathExtension, encoding: .utf8))?.contains("PEM file") == true)
        #expect(reason("ssh-dss AAAA")?.contains("DSA") == true)
        #expect(reason("from=\"10.0.0.1\" \(ed.line)")?.contains("options") == true)
    }

    @Test func emptyKeyFileIsRefused() throws {
        let directory = try makeTemporaryDirectory()
        try Data("# nothing yet\n\n".utf8).write(to: URL(fileURLWithPath: directory + "/empty.pub"))
        #expect(throws: SSHPublicKey.ParseError.self) { try SSHPublicKey.load(contentsOf: directory + "/empty.pub", shown: "empty.pub") }
    }
}
