/// A strict RFC 8259 JSON parser into ``JSONValue`` that also reports what `JSONDecoder`
/// silently resolves: a key given twice in one object. (`JSONDecoder` keeps one value, `jq` and
/// Python the last; a reviewer reading the file could see another value than the tool builds.)
/// Errors name the line and column.
struct JSONParser {
    /// A key that appears more than once in one object.
    struct Duplicate: Sendable, Equatable {
        /// The JSON path of the key (the same for every occurrence).
        var path: JSONPath
        /// Line and column (1-based) of the first and the repeated occurrence.
        var first: (line: Int, column: Int)
        var repeated: (line: Int, column: Int)

        static func == (a: Duplicate, b: Duplicate) -> Bool {
            a.path == b.path && a.first == b.first && a.repeated == b.repeated
        }
    }

    struct SyntaxError: Error, CustomStringConvertible, Sendable {
        var line: Int
        var column: Int
        var reason: String
        var description: String { "line \(line), column \(column): \(reason)" }
    }

    /// Deep enough for any manifest; stops a hostile file from exhausting the stack.
    static let maximumDepth = 256

    private let bytes: [UInt8]
    private var offset = 0
    private var depth = 0
    private var path: [PathComponent] = []
    private var duplicates: [(path: JSONPath, first: Int, repeated: Int)] = []

    private enum PathComponent {
        case key(String)
        case index(Int)
    }

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Parses UTF-8 `bytes` (a leading byte-order mark is skipped). Later duplicates replace
    /// earlier values in the tree; all of them are returned for the caller to refuse.
    static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> (value: JSONValue, duplicates: [Duplicate]) {
        var parser = JSONParser(bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.offset = 3 }
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        if parser.offset < bytes.count { throw parser.error("unexpected text after the end of the JSON value") }
        let duplicates = parser.duplicates.map { entry in
            Duplicate(path: entry.path, first: parser.position(of: entry.first), repeated: parser.position(of: entry.repeated))
        }
        return (value, duplicates)
    }

    /// Line and column (1-based, in characters) of a byte offset.
    func position(of target: Int) -> (line: Int, column: Int) {
        var line = 1, lineStart = 0
        for index in 0..<min(target, bytes.count) where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        // Count characters, not bytes: UTF-8 continuation bytes do not start one.
        let column = bytes[lineStart..<min(target, bytes.count)].reduce(1) { $1 & 0xC0 == 0x80 ? $0 : $0 + 1 }
        return (line, column)
    }

    private func error(_ reason: String, at position: Int? = nil) -> SyntaxError {
        let (line, column) = self.position(of: position ?? offset)
        return SyntaxError(line: line, column: column, reason: reason)
    }

    private var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { offset += 1 }
    }

    private func describeCurrent() -> String {
        guard let byte = current else { return "the end of the file" }
        if (0x21...0x7E).contains(byte) { return "'\(Character(Unicode.Scalar(byte)))'" }
        return String(format: "byte 0x%02X", byte)
    }

    private mutating func parseValue() throws(SyntaxError) -> JSONValue {
        guard let byte = current else { throw error("expected a value, found the end of the file") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("expected a value, found \(describeCurrent())")
        }
    }

    private mutating func literal(_ word: String) throws(SyntaxError) {
        let expected = Array(word.utf8)
        let count = expected.count
        guard offset + count <= bytes.count, bytes[offset..<offset + count].elementsEqual(expected) else {
            throw error("expected a value, found \(describeCurrent()) (strings need double quotes)")
        }
        offset += count
    }

    private mutating func enter() throws(SyntaxError) {
        depth += 1
        if depth > Self.maximumDepth { throw error("nested more than \(Self.maximumDepth) levels deep") }
    }

    private mutating func parseObject() throws(SyntaxError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        offset += 1
        var fields: [String: JSONValue] = [:]
        var keyOffsets: [String: Int] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { offset += 1; return .object(fields) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else {
                throw error("expected a key in double quotes, found \(describeCurrent())")
            }
            let keyOffset = offset
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after the key \"\(key)\", found \(describeCurrent())") }
            offset += 1
            skipWhitespace()
            path.append(.key(key))
            let value = try parseValue()
            if let first = keyOffsets[key] {
                duplicates.append((jsonPath(), first, keyOffset))
            } else {
                keyOffsets[key] = keyOffset
            }
            path.removeLast()
            fields[key] = value
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "}"): offset += 1; return .object(fields)
            default: throw error("expected ',' or '}' after the value of \"\(key)\", found \(describeCurrent())")
            }
        }
    }

    private mutating func parseArray() throws(SyntaxError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        offset += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { offset += 1; return .array(elements) }
        while true {
            skipWhitespace()
            path.append(.index(elements.count))
            elements.append(try parseValue())
            path.removeLast()
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "]"): offset += 1; return .array(elements)
            default: throw error("expected ',' or ']' after an array element, found \(describeCurrent())")
            }
        }
    }

    private func jsonPath() -> JSONPath {
        path.reduce(JSONPath.root) { partial, component in
            switch component {
            case .key(let name): partial.key(name)
            case .index(let position): partial.index(position)
            }
        }
    }

    private mutating func parseString() throws(SyntaxError) -> String {
        let start = offset
        offset += 1
        var plainStart = offset
        var result: [UInt8] = []
        var escaped = false
        while true {
            guard let byte = current else { throw error("this string has no closing double quote", at: start) }
            switch byte {
            case UInt8(ascii: "\""):
                let text: String
                if escaped {
                    result += bytes[plainStart..<offset]
                    text = String(decoding: result, as: UTF8.self)
                } else {
                    text = String(decoding: bytes[plainStart..<offset], as: UTF8.self)
                }
                offset += 1
                return text
            case UInt8(ascii: "\\"):
                escaped = true
                result += bytes[plainStart..<offset]
                offset += 1
                guard let escape = current else { throw error("this string has no closing double quote", at: start) }
                offset += 1
                switch escape {
                case UInt8(ascii: "\""): result.append(0x22)
                case UInt8(ascii: "\\"): result.append(0x5C)
                case UInt8(ascii: "/"): result.append(0x2F)
                case UInt8(ascii: "b"): result.append(0x08)
                case UInt8(ascii: "f"): result.append(0x0C)
                case UInt8(ascii: "n"): result.append(0x0A)
                case UInt8(ascii: "r"): result.append(0x0D)
                case UInt8(ascii: "t"): result.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard current == UInt8(ascii: "\\"), offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: "u") else {
                            throw error("\\u escape: a high surrogate without its low surrogate")
                        }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("\\u escape: a high surrogate without its low surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("\\u escape: a low surrogate without its high surrogate")
                    }
                    result += Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
                default:
                    throw error("unknown escape \\\(Character(Unicode.Scalar(escape))) in a string", at: offset - 2)
                }
                plainStart = offset
            case 0x00..<0x20:
                throw error("a control character (\(String(format: "0x%02X", byte))) inside a string; write it as an escape such as \\n")
            default:
                offset += 1
            }
        }
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw error("\\u escape needs four hex digits") }
        var value: UInt32 = 0
        for byte in bytes[offset..<offset + 4] {
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("\\u escape needs four hex digits")
            }
            value = value << 4 | digit
        }
        offset += 4
        return value
    }

    private mutating func parseNumber() throws(SyntaxError) -> JSONValue {
        let start = offset
        func digits() -> Int {
            let begin = offset
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { offset += 1 }
            return offset - begin
        }
        if current == UInt8(ascii: "-") { offset += 1 }
        let integerStart = offset
        guard digits() > 0 else { throw error("a number needs digits") }
        if bytes[integerStart] == UInt8(ascii: "0") && offset - integerStart > 1 {
            throw error("a number cannot start with 0 (write 0755 as the string \"0755\")", at: start)
        }
        var integral = true
        if current == UInt8(ascii: ".") {
            integral = false
            offset += 1
            guard digits() > 0 else { throw error("a number needs digits after its decimal point") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            offset += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { offset += 1 }
            guard digits() > 0 else { throw error("a number needs digits in its exponent") }
        }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self)
        if integral, let value = Int64(text) { return .integer(value) }
        guard let value = Double(text), value.isFinite else { throw error("the number \(text) is out of range", at: start) }
        return .number(value)
    }
}
