/// The partitions of a disk image, as read from its MBR or GPT.
public struct PartitionTable: Sendable, Equatable {
    /// How the table is stored.
    public enum Scheme: String, Sendable, Equatable {
        case mbr
        case gpt
    }

    public var scheme: Scheme
    /// Sorted by `number`.
    public var partitions: [Partition]

    public init(scheme: Scheme, partitions: [Partition]) {
        self.scheme = scheme
        self.partitions = partitions
    }

    /// The partition Linux would call `<disk><number>`, if present.
    public func partition(number: Int) -> Partition? {
        partitions.first { $0.number == number }
    }
}

/// One partition: where its bytes lie in the image file and what its table entry says it holds.
public struct Partition: Sendable, Equatable {
    /// What the partition table entry declares (not what the bytes contain: see `FileSystemProbe`).
    public enum Kind: Sendable, Equatable, Hashable {
        /// An MBR FAT type (0x01 0x04 0x06 0x0b 0x0c 0x0e) or GPT "Microsoft basic data".
        case fat
        /// MBR 0x83 or GPT "Linux filesystem data".
        case linux
        /// GPT EFI System Partition (a FAT file system).
        case efiSystem
        /// An MBR extended partition: a container for logical partitions (5, 6, …), holds no file system itself.
        case extended
        /// Anything else: the MBR type byte as two hex digits, or the GPT type GUID in upper case.
        case other(String)

        /// True when the entry declares a FAT file system.
        public var isFAT: Bool { self == .fat || self == .efiSystem }
    }

    /// 1-based, as Linux numbers them: MBR primaries 1–4, logicals from 5; GPT by entry index + 1.
    public var number: Int
    public var startOffset: UInt64
    public var size: UInt64
    public var kind: Kind
    /// For messages: `MBR type 0x0c (FAT32 LBA)`, `GPT Linux filesystem (0FC63DAF-…)`.
    public var typeDescription: String

    public init(number: Int, startOffset: UInt64, size: UInt64, kind: Kind, typeDescription: String) {
        self.number = number
        self.startOffset = startOffset
        self.size = size
        self.kind = kind
        self.typeDescription = typeDescription
    }

    public var endOffset: UInt64 { startOffset + size }
}
