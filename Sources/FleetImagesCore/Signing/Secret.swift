/// Bytes that must never be printed: a private key passphrase, a Wi-Fi PSK.
///
/// `description`, `debugDescription` and the reflection mirror (`dump`, debugger) all show
/// `<redacted>`, so a `Secret` that ends up in string interpolation, a log line or an error
/// message leaks nothing. The bytes are reachable only through `withUnsafeBytes`.
public struct Secret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The UTF-8 encoding of `string`.
    public init(_ string: String) {
        self.bytes = Array(string.utf8)
    }

    /// The number of bytes; reveals the length only.
    public var count: Int { bytes.count }

    public var isEmpty: Bool { bytes.isEmpty }

    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBytes(body)
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
