#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong while reading or editing a disk image file.
///
/// Each message names the image file (and the partition or path inside it) and says what to do.
public enum DiskImageError: Error, CustomStringConvertible, Equatable {
    /// The file is not a partitioned disk image (for example no 0x55AA boot signature).
    case notADiskImage(path: String, reason: String)
    /// The file ends before a structure that must be there.
    case truncated(path: String, detail: String)
    /// The partition table is present but inconsistent (bad GPT signature, an entry that ends before it starts, …).
    case damagedTable(path: String, detail: String)
    /// A partition table entry points beyond the end of the file.
    case partitionPastEnd(path: String, partition: Int, endOffset: UInt64, fileSize: UInt64)
    /// Two partitions claim the same bytes.
    case overlappingPartitions(path: String, first: Int, second: Int)
    /// A GPT header or partition array does not match its CRC32.
    case gptChecksumMismatch(path: String, structure: String, stored: UInt32, computed: UInt32)
    /// A valid table that uses something this reader does not handle.
    case unsupported(path: String, detail: String)
    /// A system call on a file failed.
    case io(path: String, operation: String, errno: Int32)
    /// A required external tool is not installed.
    case toolMissing(tool: String, package: String)
    /// An external tool could not be started, was stopped, or reported a failure.
    case toolFailed(tool: String, image: String, detail: String)
    /// An edit inside a file system failed (`debugfs`/mtools reported an error for this path).
    case editFailed(image: String, path: String, cause: String)
    /// A path or argument cannot be used (relative, contains a newline, `..`, …).
    case invalidPath(path: String, reason: String)
    /// A file-system check found problems.
    case fileSystemCheckFailed(tool: String, image: String, output: String)
    /// The path exists in the image but is not a regular file.
    case notARegularFile(image: String, path: String, kind: String)

    public var description: String {
        switch self {
        case let .notADiskImage(path, reason):
            return "\(path): not a partitioned disk image (\(reason)); pass the raw .img file, decompressed"
        case let .truncated(path, detail):
            return "\(path): file is truncated: \(detail); download or copy the image again"
        case let .damagedTable(path, detail):
            return "\(path): damaged partition table: \(detail)"
        case let .partitionPastEnd(path, partition, end, size):
            return "\(path): partition \(partition) ends at byte \(end) but the file has only \(size) bytes; "
                + "the image is truncated or its partition table is damaged"
        case let .overlappingPartitions(path, first, second):
            return "\(path): partitions \(first) and \(second) overlap; the partition table is damaged"
        case let .gptChecksumMismatch(path, structure, stored, computed):
            return "\(path): GPT \(structure) CRC32 mismatch (stored 0x\(hex(stored)), computed 0x\(hex(computed))); "
                + "the partition table is damaged (repair it with gdisk or sgdisk, or use a fresh image)"
        case let .unsupported(path, detail):
            return "\(path): unsupported: \(detail)"
        case let .io(path, operation, code):
            return "\(path): \(operation) failed: \(errnoText(code)) (errno \(code))"
        case let .toolMissing(tool, package):
            return "\(tool) not found in PATH, /usr/sbin or /sbin; install the Debian package '\(package)'"
        case let .toolFailed(tool, image, detail):
            return "\(tool) on \(image): \(detail)"
        case let .editFailed(image, path, cause):
            return "\(image): cannot write \(path): \(cause)"
        case let .invalidPath(path, reason):
            return "invalid path \(quotedForMessage(path)): \(reason)"
        case let .fileSystemCheckFailed(tool, image, output):
            return "\(tool) found problems in \(image):\n\(output)"
        case let .notARegularFile(image, path, kind):
            return "\(image): \(path) is a \(kind), not a regular file"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

private func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error" }
    return String(cString: text)
}

/// Paths in messages are shown with control characters escaped, so a newline in a name cannot forge a second line.
func quotedForMessage(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\"": out += "\\\""
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
