extension Secret: Equatable {
    public static func == (lhs: Secret, rhs: Secret) -> Bool {
        lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in a.elementsEqual(b) } }
    }
}

extension Secret {
    /// A copy of the bytes, for checks and for writing into an image; never for output.
    var unsafeBytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The value as text, for writing it into an image file; never for output.
    var unsafeString: String { String(decoding: unsafeBytes, as: UTF8.self) }
}
