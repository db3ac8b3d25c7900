#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the external programs the disk-image layer runs, so a caller can report a missing one up front
/// (the CLI maps `DiskImageError.toolMissing` to exit code 69).
///
/// The search covers `PATH` and then `/usr/sbin` and `/sbin`, because Debian installs e2fsprogs and dosfstools
/// there and an ordinary user's `PATH` often lacks them.
public enum ToolAvailability {
    /// A program this layer runs, with the Debian package that provides it.
    public enum Tool: String, Sendable, CaseIterable {
        case debugfs
        case e2fsck
        case mcopy
        case mmd
        case mdir
        case fsckFAT = "fsck.fat"

        public var package: String {
            switch self {
            case .debugfs, .e2fsck: return "e2fsprogs"
            case .mcopy, .mmd, .mdir: return "mtools"
            case .fsckFAT: return "dosfstools"
            }
        }
    }

    /// Tools the `inject` builder needs to write into ext4 and FAT partitions.
    public static let injectTools: [Tool] = [.debugfs, .mcopy, .mmd]

    /// The full path of `tool`, or nil when it is not installed.
    public static func path(of tool: Tool) -> String? {
        path(named: tool.rawValue)
    }

    /// The full path of any executable named `name` on the same search path (PATH plus the sbin folders).
    public static func path(named name: String) -> String? {
        for directory in searchPath.split(separator: ":") where directory.hasPrefix("/") {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return String(candidate) }
        }
        return nil
    }

    /// Throws `.toolMissing` for the first of `tools` that is not installed.
    public static func require(_ tools: [Tool]) throws(DiskImageError) {
        for tool in tools where path(of: tool) == nil {
            throw .toolMissing(tool: tool.rawValue, package: tool.package)
        }
    }

    /// The inherited `PATH` followed by the sbin directories.
    static var searchPath: String {
        let inherited = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        return inherited + ":/usr/sbin:/sbin"
    }
}
