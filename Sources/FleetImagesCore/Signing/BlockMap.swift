import Foundation

/// The block map of an image in the format of bmaptool (`bmap-tools`), version 2.0: which 4 KiB
/// blocks hold data, with a SHA-256 per range of blocks, so that `bmaptool copy` writes only
/// those blocks to a card (a 2.6 GiB image with 1.5 GiB of data writes 1.5 GiB) and checks what
/// it wrote. Built from the holes the file system reports while the image is read for signing:
/// no second pass over the image.
struct BlockMap: Equatable {
    static let blockSize = ChunkedFileReader.holeBlockSize

    struct Range: Equatable {
        /// First and last block, inclusive.
        var first: UInt64
        var last: UInt64
        /// Lowercase hex SHA-256 of the range's bytes (the last block only up to the end of the image).
        var sha256: String
    }

    var imageSize: UInt64
    var ranges: [Range]

    var blocksCount: UInt64 { (imageSize + UInt64(Self.blockSize) - 1) / UInt64(Self.blockSize) }
    var mappedBlocksCount: UInt64 { ranges.reduce(0) { $0 + $1.last - $1.first + 1 } }
    /// Bytes in the mapped blocks (the last block only up to the end of the image): what `bmaptool copy` writes.
    var mappedBytes: UInt64 {
        let block = UInt64(Self.blockSize)
        return ranges.reduce(0) { $0 + min(($1.last + 1) * block, imageSize) - $1.first * block }
    }

    /// The `.bmap` file. `BmapFileChecksum` is the SHA-256 of this text with its own value
    /// written as 64 zeros, as bmaptool checks it.
    func xml(imageName: String) -> String {
        func document(checksum: String) -> String {
            var text = """
                <?xml version="1.0" ?>
                <!-- Block map of \(Self.escaped(imageName)), written by fleet-images: "bmaptool copy" finds it beside
                     the image (raw or compressed), writes only the data blocks and checks each range. -->
                <bmap version="2.0">
                    <ImageSize> \(imageSize) </ImageSize>
                    <BlockSize> \(Self.blockSize) </BlockSize>
                    <BlocksCount> \(blocksCount) </BlocksCount>
                    <MappedBlocksCount> \(mappedBlocksCount) </MappedBlocksCount>
                    <ChecksumType> sha256 </ChecksumType>
                    <BmapFileChecksum> \(checksum) </BmapFileChecksum>
                    <BlockMap>

                """
            for range in ranges {
                let blocks = range.first == range.last ? "\(range.first)" : "\(range.first)-\(range.last)"
                text += "        <Range chksum=\"\(range.sha256)\"> \(blocks) </Range>\n"
            }
            text += "    </BlockMap>\n</bmap>\n"
            return text
        }
        let zeros = String(repeating: "0", count: 64)
        return document(checksum: Digest.sha256Hex(Array(document(checksum: zeros).utf8)))
    }

    private static func escaped(_ text: String) -> String {
        // In a comment: no "--" (XML forbids it there), no markup.
        var text = text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        while text.contains("--") { text = text.replacingOccurrences(of: "--", with: "- -") }
        return text
    }

    /// Collects the ranges from the chunks ``ChunkedFileReader`` hands over, in order.
    struct Builder {
        private var ranges: [Range] = []
        private var open: (first: UInt64, end: UInt64, digest: SHA256Context)?
        private var offset: UInt64 = 0

        mutating func add(_ chunk: UnsafeRawBufferPointer, isHole: Bool) {
            defer { offset += UInt64(chunk.count) }
            guard !isHole else {
                close()
                return
            }
            if let current = open, current.end == offset {
                current.digest.update(chunk)
                open!.end += UInt64(chunk.count)
                return
            }
            close()
            // Holes cover whole blocks, so data starts on a block boundary.
            precondition(offset % UInt64(BlockMap.blockSize) == 0, "data starts inside a block")
            let digest = SHA256Context()
            digest.update(chunk)
            open = (offset / UInt64(BlockMap.blockSize), offset + UInt64(chunk.count), digest)
        }

        private mutating func close() {
            guard let current = open, current.end > current.first * UInt64(BlockMap.blockSize) else {
                open = nil
                return
            }
            ranges.append(Range(first: current.first, last: (current.end - 1) / UInt64(BlockMap.blockSize), sha256: Digest.hex(current.digest.finish())))
            open = nil
        }

        mutating func finish() -> BlockMap {
            close()
            return BlockMap(imageSize: offset, ranges: ranges)
        }
    }
}

extension BlockMap {
    /// Reads a `.bmap` (format 1.4 or 2.x with SHA-256 range checksums, as fleet-images and
    /// `bmaptool create` write them), checking its `BmapFileChecksum`. The map is not trusted
    /// beyond that: `flash` checks every range, and that every block outside them is zeros,
    /// against the signed image before it writes.
    static func read(_ path: String) throws(SigningError) -> BlockMap {
        let bytes = try SigningFiles.readSmallFile(path, kind: "block map", limit: 64 << 20)
        let text = String(decoding: bytes, as: UTF8.self)
        func malformed(_ reason: String) -> SigningError { .sidecarMalformed(path: path, reason: reason) }
        func element(_ name: String) -> String? {
            guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
            return text[start.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let versionRange = text.range(of: #"<bmap version="([0-9]+)\.([0-9]+)">"#, options: .regularExpression) else {
            throw malformed("not a bmap file (no <bmap version=\"…\">)")
        }
        let version = text[versionRange].filter { $0.isNumber || $0 == "." }
        guard version == "1.4" || version.hasPrefix("2.") else { throw malformed("bmap format \(version); only 1.4 and 2.x are read") }
        guard element("ChecksumType") == "sha256", let checksum = element("BmapFileChecksum"), checksum.count == 64,
              let sizeText = element("ImageSize"), let imageSize = UInt64(sizeText),
              element("BlockSize") == String(Self.blockSize), let countText = element("BlocksCount"), let blocksCount = UInt64(countText),
              let mappedText = element("MappedBlocksCount"), let mapped = UInt64(mappedText) else {
            throw malformed("expected ImageSize, BlockSize 4096, BlocksCount, MappedBlocksCount, ChecksumType sha256 and BmapFileChecksum")
        }
        // The file's own checksum: over the file with its value written as 64 zeros (as bmaptool checks it).
        guard let at = text.range(of: checksum) else { throw malformed("BmapFileChecksum not found") }
        let zeroed = text.replacingCharacters(in: at, with: String(repeating: "0", count: 64))
        guard Digest.sha256Hex(Array(zeroed.utf8)) == checksum.lowercased() else {
            throw malformed("its BmapFileChecksum does not match its contents (changed or damaged)")
        }
        var ranges: [Range] = []
        var search = text.startIndex..<text.endIndex
        while let found = text.range(of: #"<Range chksum="([0-9a-f]{64})">\s*([0-9]+)(\s*-\s*([0-9]+))?\s*</Range>"#, options: .regularExpression, range: search) {
            let line = String(text[found])
            let digest = String(line.dropFirst("<Range chksum=\"".count).prefix(64))
            let blocks = line[line.index(line.startIndex, offsetBy: "<Range chksum=\"".count + 66)...].prefix { $0 != "<" }
            let parts = blocks.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let first = UInt64(parts[0]), let last = UInt64(parts.count > 1 ? parts[1] : parts[0]), first <= last,
                  last < blocksCount, ranges.last.map({ $0.last < first }) ?? true else {
                throw malformed("bad range \(blocks.trimmingCharacters(in: .whitespaces))")
            }
            ranges.append(Range(first: first, last: last, sha256: digest))
            search = found.upperBound..<text.endIndex
        }
        let map = BlockMap(imageSize: imageSize, ranges: ranges)
        guard map.blocksCount == blocksCount, map.mappedBlocksCount == mapped else {
            throw malformed("BlocksCount or MappedBlocksCount does not match ImageSize and the ranges")
        }
        return map
    }
}
