/// The one check of a path inside the image, shared by `validate` (the manifest reader and the
/// overlay scan) and by the builders' editors (``Ext4Path``, ``FATEditor``): whatever passes here,
/// the build can write; whatever the build would refuse or silently lose is refused here first.
public enum ImagePath {
    /// Longest path in bytes. Linux allows 4095, but debugfs takes each command on one line of at
    /// most 8 KiB that also holds the host path, so the ext4 editor stops below 3000.
    public static let maximumLength = 2999
    /// Longest file name (one component) in bytes, as ext4 and FAT long names allow.
    public static let maximumComponentLength = 255
    /// Characters FAT cannot store in a name (besides control characters).
    public static let fatForbidden: Set<Character> = ["*", "?", "\"", "<", ">", ":", "|", "\\"]
    /// Mounted over at boot by the kernel or systemd (proc, sysfs, devtmpfs, tmpfs): a file put
    /// there in the image is hidden on the device.
    public static let virtualFileSystems = ["/proc", "/sys", "/dev", "/run"]

    /// Why `path` cannot be an absolute path in the image at all, or nil.
    public static func syntaxProblem(_ path: String) -> String? {
        let shown = abbreviated(path)
        guard path.hasPrefix("/") else { return "\"\(shown)\" must be an absolute path inside the image, e.g. /etc/motd" }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || $0 == "\"" }) {
            return "\"\(shown)\" contains a character that cannot be written into the image (NUL, newline or another control character, or a double quote)"
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if components.allSatisfy(\.isEmpty) { return "\"\(shown)\" names the root folder, not a file" }
        if path.hasSuffix("/") { return "\"\(shown)\" ends with /; name the file" }
        if components.contains(where: \.isEmpty) { return "\"\(shown)\" contains //; write each folder once, with single slashes" }
        if components.contains(where: { $0 == ".." || $0 == "." }) {
            return "\"\(shown)\" contains . or ..; write the plain absolute path"
        }
        if let long = components.first(where: { $0.utf8.count > maximumComponentLength }) {
            return "\"\(shown)\" has a name of \(long.utf8.count) bytes; a file or folder name can have at most \(maximumComponentLength)"
        }
        if path.utf8.count > maximumLength {
            return "\"\(shown)\" is \(path.utf8.count) bytes long; a path in the image can have at most \(maximumLength)"
        }
        return nil
    }

    /// Why `path` cannot be a destination of a file in the image, or nil. With `bootMount`, also
    /// what the FAT boot partition cannot hold.
    public static func destinationProblem(_ path: String, bootMount: String?) -> String? {
        if let problem = syntaxProblem(path) { return problem }
        if let mount = virtualFileSystems.first(where: { path == $0 || path.hasPrefix($0 + "/") }) {
            return "\"\(abbreviated(path))\" is under \(mount), which is mounted over at boot: the file would never be seen on the device; put it elsewhere (e.g. under /etc or /usr/local)"
        }
        if let bootMount { return bootPartitionProblem(path, bootMount: bootMount) }
        return nil
    }

    /// What the FAT boot partition (mounted at `bootMount`) cannot take.
    public static func bootPartitionProblem(_ path: String, bootMount: String) -> String? {
        if path == bootMount {
            return "\"\(path)\" is where the boot partition is mounted; name a file under it, e.g. \(bootMount)/config.txt"
        }
        guard path.hasPrefix(bootMount + "/") else { return nil }
        if path.contains(where: { fatForbidden.contains($0) }) {
            return "\"\(abbreviated(path))\" is on the FAT boot partition, which cannot store * ? \" < > : | \\ in names; rename it"
        }
        return nil
    }

    /// Long paths are shown by their start and end.
    static func abbreviated(_ path: String) -> String {
        guard path.count > 96 else { return path }
        return String(path.prefix(60)) + "…" + String(path.suffix(30))
    }
}
