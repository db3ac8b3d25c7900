/// Edits the one line of a Raspberry Pi `cmdline.txt` (the kernel command line on the boot partition).
public enum KernelCommandLine {
    /// Sets `key=value` on the command line in `content`, touching nothing else.
    ///
    /// The first `key` or `key=…` parameter is replaced in place (the kernel treats `-` and `_` in names
    /// alike, so this does too); later duplicates are removed with the blank before them, because the kernel
    /// would let the last one win. Without one, ` key=value` is appended after the last parameter, before any
    /// trailing blanks. Quoted values (`a="x y"`) count as one parameter. The result ends in exactly one
    /// newline; text after the first line is kept unless it is only blank lines. Applying it twice changes
    /// nothing more.
    ///
    /// - Precondition: `key` is non-empty and neither `key` nor `value` contains whitespace, `"` or
    ///   (in the key) `=`; the manifest validation guarantees this for the values the builder passes.
    public static func settingParameter(_ content: String, key: String, value: String) -> String {
        precondition(!key.isEmpty && !key.unicodeScalars.contains(where: { isBlank($0) || $0 == "=" || $0 == "\"" || $0 == "\n" }),
                     "kernel parameter name must be non-empty without blanks, = or quotes")
        precondition(!value.unicodeScalars.contains(where: { isBlank($0) || $0 == "\"" || $0 == "\n" }), "kernel parameter value must not contain blanks or quotes")
        let setting = "\(key)=\(value)"

        // Split on the scalar "\n": as Characters, "\r\n" is one grapheme and would hide the newline.
        let scalars = content.unicodeScalars
        let newline = scalars.firstIndex(of: "\n")
        let line = String(scalars[..<(newline ?? scalars.endIndex)])
        let rest = newline.map { String(scalars[scalars.index(after: $0)...]) } ?? ""

        var pieces = split(line.unicodeScalars[...])
        let wanted = normalized(key)
        let matches = pieces.indices.filter { pieces[$0].isParameter && normalized(name(of: Substring(pieces[$0].text))) == wanted }
        if let first = matches.first {
            pieces[first].text = Substring(setting).unicodeScalars
            for index in matches.dropFirst().reversed() {
                // Drop the duplicate and the blank run before it (the first match precedes it, so one exists).
                pieces.removeSubrange((index - 1)...index)
            }
        } else {
            let trailingBlank = pieces.last.map { $0.isParameter ? 0 : 1 } ?? 0
            let insertAt = pieces.count - trailingBlank
            let hasParameters = pieces.contains { $0.isParameter }
            var added = [Piece(text: Substring(setting).unicodeScalars, isParameter: true)]
            if hasParameters { added.insert(Piece(text: Substring(" ").unicodeScalars, isParameter: false), at: 0) }
            pieces.insert(contentsOf: added, at: insertAt)
        }

        var result = pieces.map { String($0.text) }.joined() + "\n"
        if rest.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) { result += rest }
        return result
    }

    struct Piece {
        var text: Substring.UnicodeScalarView
        var isParameter: Bool
    }

    /// Alternating blank runs and parameters, which together spell the line exactly.
    static func split(_ line: Substring.UnicodeScalarView) -> [Piece] {
        var pieces: [Piece] = []
        var index = line.startIndex
        while index < line.endIndex {
            let start = index
            let blank = isBlank(line[index])
            var quoted = false
            while index < line.endIndex {
                let character = line[index]
                if blank {
                    guard isBlank(character) else { break }
                } else {
                    if character == "\"" { quoted.toggle() }
                    if isBlank(character) && !quoted { break }
                }
                index = line.index(after: index)
            }
            pieces.append(Piece(text: line[start..<index], isParameter: !blank))
        }
        return pieces
    }

    static func isBlank(_ character: Unicode.Scalar) -> Bool {
        character == " " || character == "\t" || character == "\r" || character == "\u{0B}" || character == "\u{0C}"
    }

    static func name(of parameter: Substring) -> Substring {
        parameter.firstIndex(of: "=").map { parameter[..<$0] } ?? parameter
    }

    static func normalized(_ name: some StringProtocol) -> String {
        String(name.map { $0 == "-" ? "_" : $0 })
    }
}
