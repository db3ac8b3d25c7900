import Foundation
import Testing

@testable import FleetImagesCore

/// Issue 14.1–14.2: the compressed copy, its `.sha256`, the signature and the block map of an
/// image, made in one read and checked with the tools a site uses (xz, zstd, openssl, bmaptool).
@Suite("Image outputs: compression and block map")
struct ImageOutputsTests {
    /// A 24 MiB sparse image: data at the start, in the middle (across a 4 MiB read buffer) and in
    /// the last, partial block; holes between. Random bytes, so compression cannot hide a mistake.
    static func sparseImage(in scratch: SigningScratch) throws -> String {
        let image = scratch.file("site.img")
        try signingTool(["truncate", "-s", "\((24 << 20) + 1000)", image])
        for (offset, count) in [(0, 70_000), ((3 << 20) + 8192, 3 << 20), (16 << 20, 4096), ((24 << 20), 1000)] {
            try signingTool(["dd", "if=/dev/urandom", "of=\(image)", "bs=\(count)", "count=1", "seek=\(offset)", "oflag=seek_bytes",
                             "conv=notrunc", "status=none"])
        }
        return image
    }

    func key(_ scratch: SigningScratch) throws -> (SigningKey, String) {
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        return (try SigningKey.load(contentsOf: privatePath, passphrase: nil), publicPath)
    }

    @Test(arguments: [CompressionSpec(format: .xz), CompressionSpec(format: .zstd), CompressionSpec(format: .zstd, level: 19)])
    func oneReadMakesEveryOutputTheToolsAccept(_ spec: CompressionSpec) throws {
        let scratch = try SigningScratch()
        let image = try Self.sparseImage(in: scratch)
        let (key, publicPath) = try key(scratch)
        let written = try ImageOutputs.write(imageAt: image, key: key, padding: .pkcs1, compression: spec, threads: 2)
        let compressed = try #require(written.compressed)
        #expect(compressed.path == image + "." + spec.format.fileExtension)

        // The signature and .sha256 are over the raw image, and check after decompressing.
        let raw = scratch.file("raw.img")
        let tool = spec.format == .xz ? "xz" : "zstd"
        try signingTool(["sh", "-c", "\(tool) -dc \"$1\" > \"$2\"", "sh", compressed.path, raw])
        #expect(try signingTool(["cmp", raw, image]).status == 0)
        #expect(try signingTool(["sha256sum", "-c", image + ".sha256"], in: scratch.path).stdout.contains("site.img: OK"))
        #expect(try signingTool(["sh", "-c", "\(tool) -dc \"$1\" | openssl dgst -sha256 -verify \"$2\" -signature \"$3\"",
                                 "sh", compressed.path, publicPath, image + ".sig"]).stdout.contains("Verified OK"))
        // The compressed file's own digest and size, as sha256sum and stat see them.
        #expect(try signingTool(["sha256sum", "-c", compressed.path + ".sha256"], in: scratch.path).stdout.contains("OK"))
        #expect(compressed.size == UInt64(try FileManager.default.attributesOfItem(atPath: compressed.path)[.size] as! Int))
        #expect(compressed.sha256 == signingHexWord(try signingOpenSSL("dgst", "-sha256", compressed.path)))
        #expect(written.signature.sha256 == signingHexWord(try signingOpenSSL("dgst", "-sha256", image)))
        // No temporary file is left beside them.
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.path)
        #expect(!names.contains { $0.contains(".tmp-") }, "\(names)")

        // bmaptool writes the compressed image through the block map, checking every range, and
        // the result is the image.
        let card = scratch.file("card.img")
        let copy = try signingTool(["bmaptool", "copy", "--bmap", written.blockMapPath, compressed.path, card], allowFailure: true)
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(try signingTool(["cmp", card, image]).status == 0)
    }

    /// The block map lists exactly the data blocks, as ranges of the 4 KiB blocks holding data.
    @Test func theBlockMapHasTheDataBlocks() throws {
        let scratch = try SigningScratch()
        let image = try Self.sparseImage(in: scratch)
        let (key, _) = try key(scratch)
        let written = try ImageOutputs.write(imageAt: image, key: key, padding: .pkcs1, compression: nil, threads: 1)
        #expect(written.compressed == nil)
        let xml = try String(contentsOfFile: written.blockMapPath, encoding: .utf8)
        let ranges = xml.split(separator: "\n").filter { $0.contains("<Range") }.map { line in
            String(line.split(separator: ">")[1].split(separator: "<")[0]).trimmingCharacters(in: .whitespaces)
        }
        // 70,000 bytes: blocks 0-17; 3 MiB at 3 MiB + 8 KiB: blocks 770-1537; one block at 16 MiB: 4096;
        // 1,000 bytes at 24 MiB: block 6144, the last (partial) one.
        #expect(ranges == ["0-17", "770-1537", "4096", "6144"])
        #expect(xml.contains("<ImageSize> \((24 << 20) + 1000) </ImageSize>"))
        #expect(xml.contains("<BlocksCount> 6145 </BlocksCount>"))
        #expect(xml.contains("<MappedBlocksCount> \(18 + 768 + 1 + 1) </MappedBlocksCount>"))
        #expect(written.mappedBytes == UInt64(18 + 768 + 1) * 4096 + 1000)
        // bmaptool accepts it (its own checksum over the file included) and writes only those blocks.
        let card = scratch.file("card.img")
        let copy = try signingTool(["bmaptool", "copy", "--bmap", written.blockMapPath, image, card], allowFailure: true)
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(try signingTool(["cmp", card, image]).status == 0)
        let allocated = try signingTool(["du", "-B1", card]).stdout.split(separator: "\t")[0]
        #expect((Int(allocated) ?? .max) <= 4 << 20, "the copy allocates only the mapped blocks, not \(allocated) bytes")

        // A changed data byte no longer matches its range: bmaptool refuses it.
        try signingTool(["dd", "if=/dev/zero", "of=\(image)", "bs=1", "count=1", "seek=100", "conv=notrunc", "status=none"])
        let tampered = try signingTool(["bmaptool", "copy", "--bmap", written.blockMapPath, image, scratch.file("card2.img")], allowFailure: true)
        #expect(tampered.status != 0)
        #expect(tampered.stderr.lowercased().contains("checksum"), "\(tampered.stderr)")
    }

    /// The multi-threaded encoders give the same bytes whatever the number of threads, and xz's
    /// are those of `xz -T2` at the same level: a rebuilt image compresses to the same file.
    @Test func compressedBytesDoNotDependOnThreads() throws {
        let scratch = try SigningScratch()
        let image = try Self.sparseImage(in: scratch)
        let (key, _) = try key(scratch)
        for format in CompressionSpec.Format.allCases {
            let spec = CompressionSpec(format: format)
            let one = try ImageOutputs.write(imageAt: image, key: key, padding: .pkcs1, compression: spec, threads: 1).compressed!
            let oneBytes = try Data(contentsOf: URL(fileURLWithPath: one.path))
            try FileManager.default.removeItem(atPath: one.path)
            let four = try ImageOutputs.write(imageAt: image, key: key, padding: .pkcs1, compression: spec, threads: 4).compressed!
            #expect(four.sha256 == one.sha256 && four.size == one.size, "\(format)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: four.path)) == oneBytes)
        }
        let cli = try signingTool(["sh", "-c", "xz -T2 -6 -c \"$1\" | sha256sum", "sh", image]).stdout.prefix(64)
        #expect(String(cli) == (try Digest.sha256Hex(fileAt: image + ".xz")))
    }

    /// Cancelled while reading: no compressed file, temporary or final, is left.
    @Test func cancelledLeavesNoCompressedFile() async throws {
        let scratch = try SigningScratch()
        let image = try Self.sparseImage(in: scratch)
        let (key, _) = try key(scratch)
        let outcome = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return Result { () throws(SigningError) in
                try ImageOutputs.write(imageAt: image, key: key, padding: .pkcs1, compression: CompressionSpec(format: .xz), threads: 2)
            }
        }.value
        guard case .failure(.cancelled(let path)) = outcome else { Issue.record("got \(outcome)"); return }
        #expect(path == image)
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
        #expect(names == ["p256.key.pem", "p256.pub.pem", "site.img"])
    }
}
