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
