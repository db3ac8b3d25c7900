/// Checks and splits absolute paths inside an ext4 file system for use in debugfs commands.
enum Ext4Path {
    /// The components of an absolute path; `/` gives none. Rejects what debugfs cannot express or
    /// what would be ambiguous: relative paths, empty, `.` and `..` components, NUL, CR and LF.
    static func components(of path: String) throws(DiskImageError) -> [String] {
        guard path.hasPrefix("/") else { throw .invalidPath(path: path, reason: "must be absolute (start with /)") }
        try checkCharacters(path)
        guard path.utf8.count <= ImagePath.maximumLength else { throw .invalidPath(path: path, reason: "longer than \(ImagePath.maximumLength) bytes") }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if parts.count == 1 && parts.first == "" { return [] }
        var components: [String] = []
        for part in parts {
            guard !part.isEmpty else { throw .invalidPath(path: path, reason: "has an empty component (// or a trailing /)") }
            guard part != ".", part != ".." else { throw .invalidPath(path: path, reason: "has a . or .. component") }
            guard part.utf8.count <= ImagePath.maximumComponentLength else { throw .invalidPath(path: path, reason: "a component is longer than 255 bytes") }
            components.append(String(part))
        }
        return components
    }

    static func checkCharacters(_ text: String) throws(DiskImageError) {
        if text.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" || $0 == "\0" }) {
            throw .invalidPath(path: text, reason: "contains a newline, carriage return or NUL, which debugfs cannot take")
        }
    }

    /// `/a/b` from `["a", "b"]`.
    static func join(_ components: some Collection<String>) -> String {
        "/" + components.joined(separator: "/")
    }

    /// The spelling that makes debugfs follow symlinks in every component but the last: `/a/./b`.
    static func leafForm(_ components: [String]) -> String {
        precondition(!components.isEmpty)
        let parent = components.dropLast()
        return (parent.isEmpty ? "" : join(parent)) + "/./" + components.last!
    }

    /// The spelling that resolves a directory even when it is reached through a symlink: `/a/b/.`.
    static func directoryForm(_ components: [String]) -> String {
        components.isEmpty ? "/." : join(components) + "/."
    }
}
