import Foundation
import Testing
@testable import FleetImagesCore

@Suite("Partition tables and file-system probing", .serialized)
struct DiskImagePartitionTableTests {
    @Test("MBR partitions match sfdisk --json and the probe sees FAT and ext4")
    func mbrMatchesSfdisk() throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let table = try PartitionTableReader.read(imageAt: image.path)
        #expect(table.scheme == .mbr)
        #expect(table.partitions.map(\.number) == image.partitions.map(\.number))
        #expect(table.partitions.map(\.startOffset) == image.partitions.map { $0.startSector * 512 })
        #expect(table.partitions.map(\.size) == image.partitions.map { $0.sectors * 512 })
        #expect(table.partitions.map(\.kind) == [.fat, .linux])
        #expect(table.partitions[0].typeDescription.contains("0x0C"))
        #expect(try FileSystemProbe.kind(imageAt: image.path, offset: table.partitions[0].startOffset) == .fat)
        #expect(try FileSystemProbe.kind(imageAt: image.path, offset: table.partitions[1].startOffset) == .ext4)
        #expect(try FileSystemProbe.kind(imageAt: image.path, offset: 0) == .unknown)
    }

    @Test("GPT partitions match sfdisk --json, with type GUIDs mapped")
    func gptMatchesSfdisk() throws {
        let image = try DiskImageTestImage(.gpt)
        defer { image.remove() }
        let table = try PartitionTableReader.read(imageAt: image.path)
        #expect(table.scheme == .gpt)
        #expect(table.partitions.map(\.number) == [1, 2, 3])
        #expect(table.partitions.map(\.startOffset) == image.partitions.map { $0.startSector * 512 })
        #expect(table.partitions.map(\.size) == image.partitions.map { $0.sectors * 512 })
        #expect(table.partitions.map(\.kind) == [.efiSystem, .linux, .fat])
        #expect(table.partitions.allSatisfy { $0.kind != .linux || !$0.kind.isFAT })
        #expect(try FileSystemProbe.kind(imageAt: image.path, offset: table.partitions[0].startOffset) == .fat)
        #expect(try FileSystemProbe.kind(imageAt: image.path, offset: table.partitions[1].startOffset) == .ext4)
    }

    @Test("logical partitions in an extended partition are numbered from 5, as sfdisk does")
    func extendedPartitions() throws {
        let image = try DiskImageTestImage(.mbrExtended, formatted: false)
        defer { image.remove() }
        let table = try PartitionTableReader.read(imageAt: image.path)
        #expect(table.partitions.map(\.number) == image.partitions.map(\.number))
        #expect(table.partitions.map(\.number) == [1, 2, 5, 6])
        #expect(table.partitions.map(\.startOffset) == image.partitions.map { $0.startSector * 512 })
        #expect(table.partitions.map(\.size) == image.partitions.map { $0.sectors * 512 })
        #expect(table.partitions.map(\.kind) == [.fat, .extended, .linux, .linux])
    }

    @Test("a zeroed boot signature is not a disk image")
    func zeroedSignature() throws {
        let image = try DiskImageTestImage(.mbr, formatted: false)
        defer { image.remove() }
        try DiskImageShell.run(["dd", "if=/dev/zero", "of=\(image.path)", "bs=1", "seek=510", "count=2",
                                "conv=notrunc", "status=none"])
        let error = #expect(throws: DiskImageError.self) { try PartitionTableReader.read(imageAt: image.path) }
        guard case .notADiskImage(let path, let reason) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(path == image.path)
        #expect(reason.contains("0x55AA"))
        #expect(error!.description.hasPrefix(image.path + ": not a partitioned disk image"))
    }

    @Test("a bare ext4 file system is reported as such")
    func bareFileSystem() throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/root.img"
        try DiskImageShell.run(["truncate", "-s", "16M", path])
        try DiskImageShell.run(["mkfs.ext4", "-q", "-F", path])
        let error = #expect(throws: DiskImageError.self) { try PartitionTableReader.read(imageAt: path) }
        #expect(error?.description.contains("bare ext4 file system") == true)
    }

    @Test("a corrupted GPT header or partition array fails its CRC32")
    func corruptedGPT() throws {
        let image = try DiskImageTestImage(.gpt, formatted: false)
        defer { image.remove() }
        let pristine = image.directory + "/pristine.img"
        try DiskImageShell.run(["cp", "--sparse=always", image.path, pristine])

        // Byte 56 of the header is the disk GUID: covered by the header CRC only.
        try flipByte(in: image.path, at: 512 + 56)
        let headerError = #expect(throws: DiskImageError.self) { try PartitionTableReader.read(imageAt: image.path) }
        guard case .gptChecksumMismatch(_, "header", let stored, let computed) = headerError else {
            Issue.record("got \(String(describing: headerError))"); return
        }
        #expect(stored != computed)

        // Byte 56 of the first entry is its name: covered by the array CRC only.
        try FileManager.default.removeItem(atPath: image.path)
        try DiskImageShell.run(["cp", "--sparse=always", pristine, image.path])
        try flipByte(in: image.path, at: 1024 + 56)
        let arrayError = #expect(throws: DiskImageError.self) { try PartitionTableReader.read(imageAt: image.path) }
        guard case .gptChecksumMismatch(_, "partition array", _, _) = arrayError else {
            Issue.record("got \(String(describing: arrayError))"); return
        }
        #expect(arrayError!.description.contains(image.path))
        // sfdisk agrees the primary table is damaged (it falls back to the backup and says so).
        let sfdisk = try DiskImageShell.run(["sfdisk", "--dump", image.path], allowFailure: true)
        #expect(sfdisk.error.lowercased().contains("corrupt") || sfdisk.error.lowercased().contains("invalid"))
    }

    @Test("a truncated image: partition past the end, or shorter than a sector")
    func truncatedImage() throws {
        let image = try DiskImageTestImage(.mbr, formatted: false)
        defer { image.remove() }
        try DiskImageShell.run(["truncate", "-s", "100M", image.path])
        let error = #expect(throws: DiskImageError.self) { try PartitionTableReader.read(imageAt: image.path) }
        let mebibyte: UInt64 = 1024 * 1024
        let expected = DiskImageError.partitionPastEnd(path: image.path, partition: 2, endOffset: 200 * mebibyte,
                                                       fileSize: 100 * mebibyte)
        #expect(error == expected)

        try DiskImageShell.run(["truncate", "-s", "300", image.path])
        let short = #expect(throws: DiskImageError.self) { try PartitionTableReader.read(imageAt: image.path) }
        guard case .truncated(image.path, _) = short else { Issue.record("got \(String(describing: short))"); return }
    }

    @Test("overlapping MBR entries are rejected")
    func overlapping() throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var sector = [UInt8](repeating: 0, count: 512)
        func entry(_ index: Int, type: UInt8, start: UInt32, count: UInt32) {
            let base = 446 + 16 * index
            sector[base + 4] = type
            for byte in 0..<4 {
                sector[base + 8 + byte] = UInt8(truncatingIfNeeded: start >> (8 * byte))
                sector[base + 12 + byte] = UInt8(truncatingIfNeeded: count >> (8 * byte))
            }
        }
        entry(0, type: 0x0C, start: 2048, count: 4096)
        entry(1, type: 0x83, start: 4096, count: 4096)
        sector[510] = 0x55
        sector[511] = 0xAA
        let path = directory + "/overlap.img"
        try DiskImageTestDirectory.write(sector, to: path)
        try DiskImageShell.run(["truncate", "-s", "8M", path])
        #expect(throws: DiskImageError.overlappingPartitions(path: path, first: 1, second: 2)) {
            try PartitionTableReader.read(imageAt: path)
        }
        // sfdisk, reading the same bytes, also sees the two entries where we do.
        let rows = try DiskImageTestImage.sfdiskPartitions(path)
        #expect(rows.map(\.startSector) == [2048, 4096])
    }

    @Test("ext2 and FAT16 are told apart from ext4 and FAT32")
    func probeKinds() throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ext2 = directory + "/ext2.img", fat16 = directory + "/fat16.img"
        try DiskImageShell.run(["truncate", "-s", "8M", ext2])
        try DiskImageShell.run(["mkfs.ext2", "-q", "-F", ext2])
        try DiskImageShell.run(["truncate", "-s", "32M", fat16])
        try DiskImageShell.run(["mkfs.vfat", "-F", "16", fat16])
        #expect(try FileSystemProbe.kind(imageAt: ext2, offset: 0) == .ext2or3)
        #expect(try FileSystemProbe.kind(imageAt: fat16, offset: 0) == .fat)
        #expect(throws: DiskImageError.self) { try FileSystemProbe.kind(imageAt: ext2, offset: 1 << 40) }
    }

    @Test("CRC32 matches the standard check value")
    func crc32() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    private func flipByte(in path: String, at offset: UInt64) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        let byte = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0xFF])
    }
}
