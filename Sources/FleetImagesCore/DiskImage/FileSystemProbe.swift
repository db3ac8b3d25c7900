/// What a partition's bytes hold, judged from its superblock or boot sector.
public enum FileSystemKind: String, Sendable, Equatable, CustomStringConvertible {
    /// ext2/3 superblock with any of the ext4 incompatible features extents, 64bit or flex_bg.
    case ext4
    case ext2or3 = "ext2/ext3"
    case fat = "FAT"
    case unknown

    public var description: String { rawValue }
}

/// Recognises ext2/3/4 and FAT file systems at an offset inside an image file, reading only their first sectors.
public enum FileSystemProbe {
    public static func kind(imageAt path: String, offset: UInt64) throws(DiskImageError) -> FileSystemKind {
        let file = try DiskImageFile(readingAt: path)
        return try kind(of: file, offset: offset)
    }

    static func kind(of file: borrowing DiskImageFile, offset: UInt64) throws(DiskImageError) -> FileSystemKind {
        guard offset < file.size else {
            throw .truncated(path: file.path, detail: "offset \(offset) is beyond the end of the file (\(file.size) bytes)")
        }
        if file.size - offset >= 2048 {
            let superblock = try file.read(at: offset + 1024, count: 1024, what: "ext superblock")
            if superblock.littleEndian16(at: 56) == 0xEF53 {
                let incompatible = superblock.littleEndian32(at: 96)
                let extents: UInt32 = 0x40, bits64: UInt32 = 0x80, flexBlockGroups: UInt32 = 0x200
                return incompatible & (extents | bits64 | flexBlockGroups) != 0 ? .ext4 : .ext2or3
            }
        }
        if file.size - offset >= 512 {
            let boot = try file.read(at: offset, count: 512, what: "boot sector")
            let jumps = boot[0] == 0xEB || boot[0] == 0xE9
            let signed = boot[510] == 0x55 && boot[511] == 0xAA
            let label32 = boot.ascii(at: 82, count: 8)
            let label16 = boot.ascii(at: 54, count: 5)
            if jumps && signed && (label32 == "FAT32   " || label16 == "FAT16" || label16 == "FAT12") {
                return .fat
            }
        }
        return .unknown
    }
}
