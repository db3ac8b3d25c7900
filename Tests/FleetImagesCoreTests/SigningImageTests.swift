import Foundation
import Testing
@testable import FleetImagesCore

/// ImageSigning against the tools a user verifies with: `openssl dgst` and `sha256sum -c`.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SigningImageTests {
    static let pssOptions = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]

    /// 3 MiB + 17 bytes of varied data: more than one read buffer would be at smaller sizes, not a round number.
    static func sampleImage(in scratch: SigningScratch, name: String = "disk.img") throws -> String {
        var bytes = [UInt8](repeating: 0, count: 3 << 20 + 17)
        var state: UInt32 = 2_463_534_242
        for index in bytes.indices {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            bytes[index] = UInt8(truncatingIfNeeded: state)
        }
        return try scratch.write(name, bytes)
    }

    @Test(arguments: [
        ("rsa2048", RSAPadding.pkcs1), ("rsa2048", .pss), ("rsa3072", .pkcs1), ("rsa3072", .pss), ("p256", .pkcs1), ("p384", .pkcs1),
    ])
    func signaturesCrossCheckWithOpenSSL(kind: String, padding: RSAPadding) throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate(kind, in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let publicKey = try VerifyingKey.load(contentsOf: publicPath)
        let image = try Self.sampleImage(in: scratch)
        let pss = padding == .pss ? Self.pssOptions : []

        // Ours → openssl and sha256sum.
        let signature = try ImageSigning.sign(imageAt: image, key: key, padding: padding)
        try ImageSigning.writeSidecars(signature, forImageAt: image)
        #expect(signature.size == 3 << 20 + 17)
        #expect(signature.sha256 == signingHexWord(try signingOpenSSL("dgst", "-sha256", image)))
        #expect(signature.keyFingerprint == publicKey.fingerprint)
        #expect(try scratch.read("disk.img.sig") == signature.signature)
        #expect(String(decoding: try scratch.read("disk.img.sha256"), as: UTF8.self) == "\(signature.sha256)  disk.img\n")
        let checked = try signingTool(["sha256sum", "-c", "disk.img.sha256"], in: scratch.path)
        #expect(checked.stdout == "disk.img: OK\n")
        let verified = try signingTool(
            ["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", image + ".sig"] + pss + [image])
        #expect(verified.stdout == "Verified OK\n")

        let verification = try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: padding, expectedSize: signature.size)
        #expect(verification.isValid, "\(verification)")
        #expect(verification.sizeMatches == true)
        #expect(verification.description.hasPrefix("\(image): OK"))

        // openssl → ours.
        try signingTool(["openssl", "dgst", "-sha256", "-sign", privatePath] + pss + ["-out", image + ".sig", image])
        let fromOpenSSL = try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: padding, expectedSize: nil)
        #expect(fromOpenSSL.isValid, "\(fromOpenSSL)")
        #expect(fromOpenSSL.sizeMatches == nil)
        if kind.hasPrefix("rsa") && padding == .pkcs1 {
            #expect(try scratch.read("disk.img.sig") == signature.signature, "PKCS#1 v1.5 signatures are byte-identical")
        }
        if kind.hasPrefix("rsa") {
            // The other padding must not verify: padding really is applied.
            let other: RSAPadding = padding == .pkcs1 ? .pss : .pkcs1
            #expect(!(try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: other, expectedSize: nil)).signatureValid)
        }
    }

    @Test(arguments: ["first", "middle", "last"])
    func oneChangedByteFailsVerification(position: String) throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let image = try Self.sampleImage(in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        try ImageSigning.writeSidecars(try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1), forImageAt: image)

        var bytes = try scratch.read("disk.img")
        let index = position == "first" ? 0 : position == "last" ? bytes.count - 1 : bytes.count / 2
        bytes[index] ^= 0x01
        _ = try scratch.write("disk.img", bytes)

        let result = try ImageSigning.verify(
            imageAt: image, publicKey: try VerifyingKey.load(contentsOf: publicPath), padding: .pkcs1, expectedSize: UInt64(bytes.count))
        #expect(!result.isValid)
        #expect(result.sizeMatches == true)
        #expect(!result.sha256Matches)
        #expect(!result.signatureValid)
        #expect(result.description.hasPrefix("\(image): FAILED: sha256 "))
        #expect(result.description.contains("signature \(image).sig is not valid for key SHA256:"))
        // openssl agrees.
        let theirs = try signingTool(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", image + ".sig", image], allowFailure: true)
        #expect(theirs.status != 0)
    }

    @Test func eachCheckIsReportedSeparately() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let otherScratch = try SigningScratch()
        let otherKey = try SigningTestKeys.generate("p384", in: otherScratch)
        let image = try Self.sampleImage(in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let signature = try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1)
        try ImageSigning.writeSidecars(signature, forImageAt: image)
        let publicKey = try VerifyingKey.load(contentsOf: publicPath)

        let wrongSize = try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: .pkcs1, expectedSize: 42)
        #expect(wrongSize.sizeMatches == false && wrongSize.sha256Matches && wrongSize.signatureValid)
        #expect(wrongSize.description == "\(image): FAILED: size is \(signature.size) bytes, expected 42")

        let wrongKey = try ImageSigning.verify(
            imageAt: image, publicKey: try VerifyingKey.load(contentsOf: otherKey.publicKey), padding: .pkcs1, expectedSize: nil)
        #expect(wrongKey.sha256Matches && !wrongKey.signatureValid)
        #expect(wrongKey.failures.count == 1)

        // A sidecar that disagrees while the signature still holds: only the sha256 check fails.
        _ = try scratch.write("disk.img.sha256", Array((String(repeating: "0", count: 64) + "  disk.img\n").utf8))
        let wrongDigest = try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: .pkcs1, expectedSize: nil)
        #expect(!wrongDigest.sha256Matches && wrongDigest.signatureValid)
        #expect(wrongDigest.failures.count == 1)
    }

    @Test func missingAndMalformedSidecarsAreErrors() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let image = try Self.sampleImage(in: scratch)
        let publicKey = try VerifyingKey.load(contentsOf: publicPath)
        let noDigest = #expect(throws: SigningError.self) {
            try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: .pkcs1, expectedSize: nil)
        }
        #expect(noDigest?.description.hasPrefix("\(image).sha256: signature sidecar missing") == true)

        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        try ImageSigning.writeSidecars(try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1), forImageAt: image)
        try FileManager.default.removeItem(atPath: image + ".sig")
        let noSignature = #expect(throws: SigningError.self) {
            try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: .pkcs1, expectedSize: nil)
        }
        #expect(noSignature?.description.hasPrefix("\(image).sig: signature sidecar missing") == true)

        _ = try scratch.write("disk.img.sig", [1, 2, 3])
        _ = try scratch.write("disk.img.sha256", Array("not a digest  disk.img\n".utf8))
        let malformed = #expect(throws: SigningError.self) {
            try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: .pkcs1, expectedSize: nil)
        }
        #expect(malformed?.description.hasPrefix("\(image).sha256: malformed sidecar") == true)

        let missingImage = scratch.file("absent.img")
        let notFound = #expect(throws: SigningError.self) { try ImageSigning.sign(imageAt: missingImage, key: key, padding: .pkcs1) }
        #expect(notFound?.description == "\(missingImage): no such file")
    }

    @Test func sidecarsAreMode0640AndLeaveNoTemporaryFiles() throws {
        let scratch = try SigningScratch()
        let (privatePath, _) = try SigningTestKeys.generate("p256", in: scratch)
        let image = try Self.sampleImage(in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let signature = try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1)
        try ImageSigning.writeSidecars(signature, forImageAt: image)
        try ImageSigning.writeSidecars(signature, forImageAt: image)  // replacing existing sidecars is fine
        for name in ["disk.img.sha256", "disk.img.sig"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: scratch.file(name))
            #expect((attributes[.posixPermissions] as? Int) == 0o640, "\(name)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.path)
        #expect(!names.contains(where: { $0.contains(".tmp-") }), "\(names)")
    }

    @Test func emptyImage() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("rsa2048", in: scratch)
        let image = try scratch.write("empty.img", [])
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let signature = try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1)
        #expect(signature.size == 0)
        #expect(signature.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        try ImageSigning.writeSidecars(signature, forImageAt: image)
        let verified = try signingTool(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", image + ".sig", image])
        #expect(verified.stdout == "Verified OK\n")
        #expect(try ImageSigning.verify(imageAt: image, publicKey: try VerifyingKey.load(contentsOf: publicPath), padding: .pkcs1, expectedSize: 0).isValid)
    }

    /// A 5 GiB sparse file: sizes past 32 bits, and holes read as zeros, as `openssl dgst` sees them.
    @Test func sparseImageLargerThan4GiB() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let image = scratch.file("sparse.img")
        try signingTool(["truncate", "-s", "5G", image])
        // Some data near the end, so a reader that stops early or wraps at 4 GiB gets a different digest.
        try signingTool(["dd", "if=/dev/urandom", "of=\(image)", "bs=1M", "count=1", "seek=5000", "conv=notrunc", "status=none"])
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let signature = try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1)
        #expect(signature.size == 5 << 30)
        #expect(signature.sha256 == signingHexWord(try signingOpenSSL("dgst", "-sha256", image)))
        try ImageSigning.writeSidecars(signature, forImageAt: image)
        let verified = try signingTool(["openssl", "dgst", "-sha256", "-verify", publicPath, "-signature", image + ".sig", image])
        #expect(verified.stdout == "Verified OK\n")
    }

    /// Holes are handed to the digest as zeros without being read (SEEK_DATA/SEEK_HOLE): a file
    /// that starts and ends with a hole, with data at unaligned offsets and a hole larger than the
    /// read buffer between, digests as `openssl dgst` reads it, byte for byte.
    @Test func holesAreDigestedAsZerosWithoutReading() throws {
        let scratch = try SigningScratch()
        let image = scratch.file("holes.img")
        try signingTool(["truncate", "-s", "\(64 << 20)", image])
        for (offset, count) in [(9 << 20, 5000), ((9 << 20) + 70_001, 3), (40 << 20, 1 << 20), ((50 << 20) - 1, 1)] {
            try signingTool(["dd", "if=/dev/urandom", "of=\(image)", "bs=1", "count=\(count)", "seek=\(offset)", "conv=notrunc", "status=none"])
        }
        var chunks: [Int] = []
        let readBefore = try Self.bytesReadByThisProcess()
        let total = try ChunkedFileReader.read(image) { chunk in chunks.append(chunk.count) }
        let readBytes = try Self.bytesReadByThisProcess() - readBefore
        #expect(total == 64 << 20)
        // About the 1 MiB of data (whole pages, read-ahead aside), not the 64 MiB of the file.
        #expect(readBytes < 8 << 20, "\(readBytes) bytes read for a 64 MiB file with 1 MiB of data")
        #expect(chunks.allSatisfy { $0 > 0 && $0 <= ChunkedFileReader.bufferSize })
        #expect(try Digest.sha256Hex(fileAt: image) == signingHexWord(try signingOpenSSL("dgst", "-sha256", image)))
        // All data, no hole: the same path as before.
        let dense = scratch.file("dense.img")
        try signingTool(["dd", "if=/dev/urandom", "of=\(dense)", "bs=1000", "count=9001", "status=none"])
        #expect(try Digest.sha256Hex(fileAt: dense) == signingHexWord(try signingOpenSSL("dgst", "-sha256", dense)))
    }

    /// `rchar` of /proc/thread-self/io: bytes this thread has had read(2) and pread(2) return (per thread: other tests read files at the same time).
    static func bytesReadByThisProcess() throws -> Int {
        let text = try String(contentsOfFile: "/proc/thread-self/io", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("rchar:") }),
              let value = Int(line.dropFirst("rchar:".count).trimmingCharacters(in: .whitespaces)) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return value
    }

    @Test func cancelledTaskStopsReading() async throws {
        let scratch = try SigningScratch()
        let (privatePath, _) = try SigningTestKeys.generate("p256", in: scratch)
        let image = try Self.sampleImage(in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let outcome = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return Result { () throws(SigningError) in try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1) }
        }.value
        guard case .failure(.cancelled(let path)) = outcome else { Issue.record("got \(outcome)"); return }
        #expect(path == image)
        #expect(try ImageSigning.sign(imageAt: image, key: key, padding: .pkcs1).size == 3 << 20 + 17, "uncancelled, it completes")
    }
}
