/// One problem found in a manifest: where it is, what is wrong and what to do about it.
///
/// Errors stop a run (exit code 2); warnings are printed and the run goes on.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error
        case warning
    }

    public var severity: Severity
    /// The JSON path of the offending value, or a file path when the problem is in a file.
    public var location: String
    public var message: String

    public init(_ severity: Severity, at location: String, _ message: String) {
        self.severity = severity
        self.location = location
        self.message = message
    }

    public static func error(_ path: JSONPath, _ message: String) -> Diagnostic {
        Diagnostic(.error, at: path.description, message)
    }

    public static func warning(_ path: JSONPath, _ message: String) -> Diagnostic {
        Diagnostic(.warning, at: path.description, message)
    }

    public var description: String {
        "\(severity.rawValue): \(location): \(message)"
    }
}

/// Collects diagnostics while a manifest is read, so that every problem is reported in one pass.
public struct Diagnostics: Sendable {
    public private(set) var items: [Diagnostic] = []
    /// Input files the manifest names, recorded while reading so that their existence can be
    /// checked even when other mistakes keep the manifest from being used ("every problem at once").
    public private(set) var references: [(path: String, location: JSONPath)] = []

    mutating func reference(_ path: String, at location: JSONPath) {
        references.append((path, location))
    }

    public init() {}

    init(single: Diagnostic) {
        items = [single]
    }

    public mutating func error(_ path: JSONPath, _ message: String) {
        items.append(.error(path, message))
    }

    public mutating func warning(_ path: JSONPath, _ message: String) {
        items.append(.warning(path, message))
    }

    public mutating func append(contentsOf other: [Diagnostic]) {
        items.append(contentsOf: other)
    }

    public var hasErrors: Bool { items.contains { $0.severity == .error } }
    public var errors: [Diagnostic] { items.filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { items.filter { $0.severity == .warning } }
}
