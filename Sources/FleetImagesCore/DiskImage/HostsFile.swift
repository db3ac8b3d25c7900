/// Edits `/etc/hosts` the way Debian's installer writes the machine's own name: on a `127.0.1.1` line.
public enum HostsFile {
    /// Points the `127.0.1.1` line at `hostname`, touching nothing else.
    ///
    /// The first uncommented `127.0.1.1` line keeps its address, the blanks after it and any `# comment`,
    /// and gets `hostname` as its only name; further `127.0.1.1` lines are removed. Without one, the line
    /// `127.0.1.1<TAB>hostname` goes after the last `127.0.0.1` line, or at the end. The result ends in a
    /// newline. Applying it twice changes nothing more.
    ///
    /// - Precondition: `hostname` is non-empty and has no whitespace or `#` (manifest validation ensures an
    ///   RFC 1123 label).
    public static func settingHostname(_ hosts: String, hostname: String) -> String {
        precondition(!hostname.isEmpty && !hostname.contains(where: { $0.isWhitespace || $0 == "#" }),
                     "hostname must be non-empty without blanks or #")
        // Split on the scalar "\n": as Characters, "\r\n" is one grapheme and would hide the newline.
        var lines = hosts.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }

        var replaced = false
        var index = 0
        while index < lines.count {
            guard let edited = editedLine(lines[index], hostname: hostname) else {
                index += 1
                continue
            }
            if replaced {
                lines.remove(at: index)
            } else {
                lines[index] = edited
                replaced = true
                index += 1
            }
        }
        if !replaced {
            let line = "127.0.1.1\t\(hostname)"
            if let loopback = lines.lastIndex(where: { fields(of: $0).first == "127.0.0.1" }) {
                lines.insert(line, at: loopback + 1)
            } else {
                lines.append(line)
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }

    /// The whitespace-separated fields before any `#`.
    static func fields(of line: String) -> [Substring] {
        let data = line.firstIndex(of: "#").map { line[..<$0] } ?? line[...]
        return data.split(whereSeparator: { $0.isWhitespace })
    }

    /// The line rewritten for `hostname` if it is a `127.0.1.1` entry, else nil.
    static func editedLine(_ line: String, hostname: String) -> String? {
        guard fields(of: line).first == "127.0.1.1" else { return nil }
        let address = line.range(of: "127.0.1.1")!
        let prefix = line[..<address.upperBound]
        let afterAddress = line[address.upperBound...]
        let blanks = afterAddress.prefix { $0 == " " || $0 == "\t" }
        var comment = ""
        if let hash = afterAddress.firstIndex(of: "#") {
            // Keep the comment with the blanks before it; when no name stood before it, separate it by one space.
            let beforeHash = afterAddress[..<hash]
            if let lastName = beforeHash.lastIndex(where: { !($0 == " " || $0 == "\t") }) {
                comment = String(afterAddress[beforeHash.index(after: lastName)...])
            } else {
                comment = " " + afterAddress[hash...]
            }
        }
        let carriageReturn = line.hasSuffix("\r") && !comment.hasSuffix("\r") ? "\r" : ""
        return prefix + (blanks.isEmpty ? "\t" : String(blanks)) + hostname + comment + carriageReturn
    }
}
