/// Reads the MBR or GPT partition table of a raw disk image (512-byte sectors), without root or loop devices.
///
/// MBR: the four primary entries and, through the chain of extended boot records, logical partitions 5, 6, ….
/// GPT (an MBR with a 0xEE entry): the primary header at LBA 1 and its partition array, both CRC32-checked.
/// The backup GPT at the end of the disk is not consulted. Every partition must lie inside the file and
/// no two may overlap.
public enum PartitionTableReader {
    static let sectorSize: UInt64 = 512

    public static func read(imageAt path: String) throws(DiskImageError) -> PartitionTable {
        let file = try DiskImageFile(readingAt: path)
        guard file.size >= sectorSize else {
            throw .truncated(path: path, detail: "\(file.size) bytes, shorter than one 512-byte sector (the MBR)")
        }
        let mbr = try file.read(at: 0, count: 512, what: "MBR")
        guard mbr[510] == 0x55, mbr[511] == 0xAA else {
            throw .notADiskImage(path: path, reason: bareFileSystemHint(file: file) ?? "no 0x55AA boot signature in sector 0")
        }
        let entries = (0..<4).map { MBREntry(sector: mbr, index: $0) }
        if let bad = entries.firstIndex(where: { $0.status != 0x00 && $0.status != 0x80 }) {
            let reason = bareFileSystemHint(file: file)
                ?? "MBR entry \(bad + 1) has status byte 0x\(hex2(entries[bad].status)), expected 0x00 or 0x80"
            throw .notADiskImage(path: path, reason: reason)
        }
        let table: PartitionTable
        if entries.contains(where: { $0.type == 0xEE }) {
            table = PartitionTable(scheme: .gpt, partitions: try readGPT(file))
        } else {
            table = PartitionTable(scheme: .mbr, partitions: try readMBR(entries, file))
        }
        try validate(table, file)
        return table
    }

    // MARK: MBR

    struct MBREntry {
        var status: UInt8
        var type: UInt8
        var firstSector: UInt64
        var sectorCount: UInt64

        init(sector: [UInt8], index: Int) {
            let base = 446 + 16 * index
            status = sector[base]
            type = sector[base + 4]
            firstSector = UInt64(sector.littleEndian32(at: base + 8))
            sectorCount = UInt64(sector.littleEndian32(at: base + 12))
        }

        var isUsed: Bool { type != 0 && sectorCount != 0 }
        var isExtended: Bool { type == 0x05 || type == 0x0F || type == 0x85 }
    }

    private static func readMBR(_ entries: [MBREntry], _ file: borrowing DiskImageFile) throws(DiskImageError) -> [Partition] {
        var partitions: [Partition] = []
        var extended: MBREntry?
        for (index, entry) in entries.enumerated() where entry.isUsed {
            if entry.isExtended {
                guard extended == nil else {
                    throw .unsupported(path: file.path, detail: "more than one extended partition in the MBR")
                }
                extended = entry
            }
            partitions.append(mbrPartition(number: index + 1, type: entry.type,
                                           firstSector: entry.firstSector, sectorCount: entry.sectorCount))
        }
        if let extended {
            partitions += try readLogicalPartitions(extendedStart: extended.firstSector, file)
        }
        return partitions
    }

    /// Follows the linked list of extended boot records; each holds one logical partition and a link to the next.
    private static func readLogicalPartitions(extendedStart: UInt64, _ file: borrowing DiskImageFile) throws(DiskImageError) -> [Partition] {
        var partitions: [Partition] = []
        var recordSector = extendedStart
        var visited: Set<UInt64> = []
        while visited.count < 256 {
            guard visited.insert(recordSector).inserted else {
                throw .damagedTable(path: file.path, detail: "the chain of extended boot records loops at sector \(recordSector)")
            }
            let record = try file.read(at: recordSector * sectorSize, count: 512, what: "extended boot record")
            guard record[510] == 0x55, record[511] == 0xAA else {
                throw .damagedTable(path: file.path, detail: "extended boot record at sector \(recordSector) has no 0x55AA signature")
            }
            let logical = MBREntry(sector: record, index: 0)
            let link = MBREntry(sector: record, index: 1)
            if logical.isUsed {
                partitions.append(mbrPartition(number: 5 + partitions.count, type: logical.type,
                                               firstSector: recordSector + logical.firstSector,
                                               sectorCount: logical.sectorCount))
            }
            guard link.isUsed, link.isExtended else { return partitions }
            recordSector = extendedStart + link.firstSector
        }
        throw .unsupported(path: file.path, detail: "more than 256 logical partitions")
    }

    private static func mbrPartition(number: Int, type: UInt8, firstSector: UInt64, sectorCount: UInt64) -> Partition {
        let kind: Partition.Kind
        let name: String
        switch type {
        case 0x01: (kind, name) = (.fat, "FAT12")
        case 0x04: (kind, name) = (.fat, "FAT16 <32M")
        case 0x06: (kind, name) = (.fat, "FAT16")
        case 0x0B: (kind, name) = (.fat, "W95 FAT32")
        case 0x0C: (kind, name) = (.fat, "W95 FAT32 (LBA)")
        case 0x0E: (kind, name) = (.fat, "W95 FAT16 (LBA)")
        case 0x83: (kind, name) = (.linux, "Linux")
        case 0x05, 0x0F, 0x85: (kind, name) = (.extended, "Extended")
        case 0x82: (kind, name) = (.other("82"), "Linux swap")
        default: (kind, name) = (.other(hex2(type)), "unknown")
        }
        return Partition(number: number, startOffset: firstSector * sectorSize, size: sectorCount * sectorSize,
                         kind: kind, typeDescription: "MBR type 0x\(hex2(type)) (\(name))")
    }

    // MARK: GPT

    private static let gptTypes: [String: (Partition.Kind, String)] = [
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": (.fat, "Microsoft basic data"),
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": (.efiSystem, "EFI System"),
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4": (.linux, "Linux filesystem"),
    ]

    private static func readGPT(_ file: borrowing DiskImageFile) throws(DiskImageError) -> [Partition] {
        let header = try file.read(at: sectorSize, count: 512, what: "GPT header (LBA 1)")
        guard header.ascii(at: 0, count: 8) == "EFI PART" else {
            if file.size >= 4096 + 8, (try? file.read(at: 4096, count: 8, what: "GPT header"))?.ascii(at: 0, count: 8) == "EFI PART" {
                throw .unsupported(path: file.path, detail: "GPT with 4096-byte sectors; only 512-byte sectors are handled")
            }
            throw .damagedTable(path: file.path, detail: "the MBR is a GPT protective MBR (type 0xEE) but LBA 1 has no 'EFI PART' signature")
        }
        let headerSize = Int(header.littleEndian32(at: 12))
        guard (92...512).contains(headerSize) else {
            throw .damagedTable(path: file.path, detail: "GPT header size \(headerSize), expected 92 to 512")
        }
        var zeroedHeader = Array(header[0..<headerSize])
        zeroedHeader.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        let storedHeaderCRC = header.littleEndian32(at: 16)
        let computedHeaderCRC = CRC32.checksum(zeroedHeader)
        guard storedHeaderCRC == computedHeaderCRC else {
            throw .gptChecksumMismatch(path: file.path, structure: "header", stored: storedHeaderCRC, computed: computedHeaderCRC)
        }
        let arrayLBA = header.littleEndian64(at: 72)
        let entryCount = Int(header.littleEndian32(at: 80))
        let entrySize = Int(header.littleEndian32(at: 84))
        guard entrySize >= 128, entrySize % 8 == 0, entrySize <= 4096, entryCount <= 4096 else {
            throw .damagedTable(path: file.path, detail: "GPT declares \(entryCount) entries of \(entrySize) bytes")
        }
        guard arrayLBA < file.size / sectorSize else {
            throw .truncated(path: file.path, detail: "the GPT partition array at LBA \(arrayLBA) lies beyond the end of the file")
        }
        let array = try file.read(at: arrayLBA * sectorSize, count: entryCount * entrySize, what: "GPT partition array")
        let storedArrayCRC = header.littleEndian32(at: 88)
        let computedArrayCRC = CRC32.checksum(array)
        guard storedArrayCRC == computedArrayCRC else {
            throw .gptChecksumMismatch(path: file.path, structure: "partition array", stored: storedArrayCRC, computed: computedArrayCRC)
        }

        var partitions: [Partition] = []
        for index in 0..<entryCount {
            let entry = Array(array[(index * entrySize)..<(index * entrySize + 128)])
            guard entry[0..<16].contains(where: { $0 != 0 }) else { continue }
            let typeGUID = guidString(entry)
            let firstLBA = entry.littleEndian64(at: 32)
            let lastLBA = entry.littleEndian64(at: 40)
            guard lastLBA >= firstLBA, lastLBA < UInt64.max / sectorSize else {
                throw .damagedTable(path: file.path, detail: "GPT entry \(index + 1) ends (LBA \(lastLBA)) before it starts (LBA \(firstLBA))")
            }
            let (kind, name) = gptTypes[typeGUID] ?? (.other(typeGUID), "unknown")
            partitions.append(Partition(number: index + 1, startOffset: firstLBA * sectorSize,
                                        size: (lastLBA - firstLBA + 1) * sectorSize, kind: kind,
                                        typeDescription: "GPT type \(typeGUID) (\(name))"))
        }
        return partitions
    }

    /// GPT stores the first three GUID fields little-endian and the last two as plain bytes.
    static func guidString(_ bytes: [UInt8]) -> String {
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        return order.map { $0 < 0 ? "-" : hex2(bytes[$0]) }.joined()
    }

    // MARK: Checks

    private static func validate(_ table: PartitionTable, _ file: borrowing DiskImageFile) throws(DiskImageError) {
        for partition in table.partitions where partition.endOffset > file.size {
            throw .partitionPastEnd(path: file.path, partition: partition.number,
                                    endOffset: partition.endOffset, fileSize: file.size)
        }
        let parts = table.partitions
        for i in parts.indices {
            for j in parts.indices where j > i {
                let (a, b) = (parts[i], parts[j])
                // Logical partitions live inside their extended container by design.
                if (a.kind == .extended && b.number >= 5) || (b.kind == .extended && a.number >= 5) {
                    guard a.kind == .extended ? contains(a, b) : contains(b, a) else {
                        throw .damagedTable(path: file.path, detail: "logical partition \(max(a.number, b.number)) lies outside its extended partition")
                    }
                    continue
                }
                if a.startOffset < b.endOffset && b.startOffset < a.endOffset {
                    throw .overlappingPartitions(path: file.path, first: a.number, second: b.number)
                }
            }
        }
    }

    private static func contains(_ outer: Partition, _ inner: Partition) -> Bool {
        inner.startOffset >= outer.startOffset && inner.endOffset <= outer.endOffset
    }

    /// When sector 0 is a file system rather than a partition table, say so.
    private static func bareFileSystemHint(file: borrowing DiskImageFile) -> String? {
        if let kind = try? FileSystemProbe.kind(of: file, offset: 0), kind != .unknown {
            return "it starts with a bare \(kind) file system, not a partition table"
        }
        return nil
    }
}

func hex2(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return digits.count == 1 ? "0" + digits : digits
}
