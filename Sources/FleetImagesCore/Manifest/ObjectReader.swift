/// Reads one JSON object of the manifest: checks it against its known keys (unknown ones are
/// errors with a "did you mean" hint) and reads typed fields, recording every type error with
/// its JSON path instead of throwing.
struct ObjectReader {
    let fields: [String: JSONValue]
    let path: JSONPath

    /// Returns nil (after recording an error) when `value` is not an object.
    init?(_ value: JSONValue, at path: JSONPath, knownKeys: [String], diagnostics: inout Diagnostics) {
        guard case .object(let fields) = value else {
            diagnostics.error(path, "expected an object, found \(value.typeName)")
            return nil
        }
        self.fields = fields
        self.path = path
        for key in fields.keys.sorted() where !knownKeys.contains(key) {
            var message = "unknown key \"\(key)\""
            if let hint = Suggestion.closest(to: key, among: knownKeys) {
                message += "; did you mean \"\(hint)\"?"
            } else {
                message += "; allowed here: \(knownKeys.filter { !$0.hasPrefix("$") }.joined(separator: ", "))"
            }
            diagnostics.error(path.key(key), message)
        }
    }

    func has(_ key: String) -> Bool { fields[key] != nil }

    func value(_ key: String) -> JSONValue? { fields[key] }

    func string(_ key: String, required: Bool = false, diagnostics: inout Diagnostics) -> Located<String>? {
        guard let value = fields[key] else {
            if required { diagnostics.error(path.key(key), "required; add a string value") }
            return nil
        }
        guard case .string(let text) = value else {
            diagnostics.error(path.key(key), "expected a string, found \(value.typeName)")
            return nil
        }
        return Located(text, at: path.key(key))
    }

    func bool(_ key: String, diagnostics: inout Diagnostics) -> Located<Bool>? {
        guard let value = fields[key] else { return nil }
        guard case .bool(let flag) = value else {
            diagnostics.error(path.key(key), "expected true or false, found \(value.typeName)")
            return nil
        }
        return Located(flag, at: path.key(key))
    }

    func integer(_ key: String, required: Bool = false, diagnostics: inout Diagnostics) -> Located<Int>? {
        guard let value = fields[key] else {
            if required { diagnostics.error(path.key(key), "required; add a whole number") }
            return nil
        }
        guard case .integer(let number) = value, let int = Int(exactly: number) else {
            diagnostics.error(path.key(key), "expected a whole number, found \(value.typeName)")
            return nil
        }
        return Located(int, at: path.key(key))
    }

    func stringArray(_ key: String, diagnostics: inout Diagnostics) -> Located<[String]>? {
        guard let value = fields[key] else { return nil }
        guard case .array(let elements) = value else {
            diagnostics.error(path.key(key), "expected an array of strings, found \(value.typeName)")
            return nil
        }
        var strings: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                diagnostics.error(path.key(key).index(index), "expected a string, found \(element.typeName)")
                continue
            }
            strings.append(text)
        }
        return Located(strings, at: path.key(key))
    }

    /// The elements of an array field, each with its path.
    func array(_ key: String, required: Bool = false, diagnostics: inout Diagnostics) -> [(JSONValue, JSONPath)]? {
        guard let value = fields[key] else {
            if required { diagnostics.error(path.key(key), "required; add an array") }
            return nil
        }
        guard case .array(let elements) = value else {
            diagnostics.error(path.key(key), "expected an array, found \(value.typeName)")
            return nil
        }
        return elements.enumerated().map { ($0.element, path.key(key).index($0.offset)) }
    }
}

/// A value together with the JSON path it was read from, so that a check made later (after
/// defaults, site and matrix values are merged) can still point at the line the user wrote.
public struct Located<Value: Sendable>: Sendable {
    public var value: Value
    public var path: JSONPath

    public init(_ value: Value, at path: JSONPath) {
        self.value = value
        self.path = path
    }
}

extension Located: Equatable where Value: Equatable {}
