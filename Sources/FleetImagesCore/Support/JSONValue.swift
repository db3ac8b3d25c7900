import Foundation

/// A parsed JSON document, kept as a tree so the manifest reader can walk it with JSON paths,
/// report unknown keys and collect every problem instead of stopping at the first (which a
/// `Decodable` model cannot do).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// A short name of the value's JSON type, for messages ("expected a string, found an array").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension JSONValue {
    /// Parses UTF-8 JSON text strictly (``JSONParser``): a key given twice in one object is an
    /// error, like any syntax error, and the message names the line and column.
    public static func parse(_ data: Data) throws -> JSONValue {
        let (value, duplicates) = try JSONParser.parse([UInt8](data))
        if let duplicate = duplicates.first {
            throw JSONParser.SyntaxError(line: duplicate.repeated.line, column: duplicate.repeated.column,
                                         reason: "\(duplicate.path) is given twice (also at line \(duplicate.first.line), column \(duplicate.first.column)); keep one")
        }
        return value
    }
}
