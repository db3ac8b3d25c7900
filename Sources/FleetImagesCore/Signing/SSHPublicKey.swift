import Foundation

/// One OpenSSH public key, as a line of an `authorized_keys` or `.pub` file holds it:
/// `<type> <base64 blob> [comment]`. Parsing checks what `sshd` would: a known type, a blob that
/// decodes, whose embedded type string is the line's type and whose fields have the type's shape.
public struct SSHPublicKey: Sendable, Equatable {
    /// The key types sshd accepts today (DSA is gone from OpenSSH 9.8).
    public static let knownTypes = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    public var type: String
    /// The decoded key blob (what the fingerprint is computed over).
    public var blob: [UInt8]
    public var comment: String

    /// `SHA256:` and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -lf` prints it.
    public var fingerprint: String {
        var text = Data(Digest.sha256(blob)).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return "SHA256:" + text
    }

    /// The line to write into `authorized_keys`.
    public var line: String {
        let base = type + " " + Data(blob).base64EncodedString()
        return comment.isEmpty ? base : base + " " + comment
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        /// 1-based line number in the file, when the problem is in a file.
        public var line: Int?
        public var reason: String
        public var description: String { line.map { "line \($0): \(reason)" } ?? reason }
    }

    /// Parses one key line (no options prefix: a public key file has none).
    public init(line text: String) throws(ParseError) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let type = fields.first else { throw ParseError(reason: "empty line") }
        guard Self.knownTypes.contains(type) else {
            if type.hasPrefix("-----BEGIN") {
                throw ParseError(reason: "this is a PEM file (a private key?), not an OpenSSH public key line; give the .pub file (`ssh-keygen -y -f KEY` prints it)")
            }
            if type == "ssh-dss" {
                throw ParseError(reason: "ssh-dss (DSA) keys are no longer accepted by OpenSSH; make an ssh-ed25519 key with `ssh-keygen -t ed25519`")
            }
            throw ParseError(reason: "does not start with an OpenSSH key type (\(Self.knownTypes.joined(separator: ", "))); authorized_keys options such as from= or command= are not supported here")
        }
        guard fields.count >= 2, let decoded = Data(base64Encoded: fields[1]) else {
            throw ParseError(reason: "the \(type) key has no valid base64 key data after its type")
        }
        let blob = [UInt8](decoded)
        try Self.checkBlob(blob, type: type)
        self.type = type
        self.blob = blob
        self.comment = fields.dropFirst(2).joined(separator: " ")
    }

    /// Every key of an `authorized_keys`-style text: one key per line, blank lines and `#` comments allowed.
    public static func parseAll(_ text: String) throws(ParseError) -> [SSHPublicKey] {
        var keys: [SSHPublicKey] = []
        // "\r\n" is one Character in Swift: split on both forms of line end.
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                keys.append(try SSHPublicKey(line: trimmed))
            } catch {
                throw ParseError(line: index + 1, reason: error.reason)
            }
        }
        return keys
    }

    /// The keys of the public key file at `path` (at least one); never blocks on a FIFO or device.
    /// - Parameter shown: how messages name the file.
    public static func load(contentsOf path: String, shown: String? = nil) throws(ParseError) -> [SSHPublicKey] {
        let name = shown ?? path
        let bytes: [UInt8]
        switch InputFile.read(path, shown: name, what: "public key file", limit: 1 << 20) {
        case .success(let read): bytes = read
        case .failure(let problem): throw ParseError(reason: problem.description)
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw ParseError(reason: "public key file \(name) is not UTF-8 text; is it a private key or a binary file?")
        }
        let keys = try parseAll(text)
        guard !keys.isEmpty else {
            throw ParseError(reason: "public key file \(name) holds no key (only blank or # comment lines); put the key's .pub line in it")
        }
        return keys
    }

    /// The fields each type's blob holds after its type string (RFC 4253 §6.6, RFC 5656 §3.1,
    /// RFC 8709 §4, OpenSSH PROTOCOL.u2f): fixed sizes where the format fixes them.
    static func checkBlob(_ blob: [UInt8], type: String) throws(ParseError) {
        var reader = BlobReader(bytes: blob)
        guard let embedded = reader.string() else { throw ParseError(reason: "the \(type) key data is truncated") }
        let embeddedType = String(decoding: embedded, as: UTF8.self)
        guard embeddedType == type else {
            throw ParseError(reason: "the line says \(type) but its key data is a \(embeddedType.isEmpty ? "key of no type" : embeddedType) key; the line was edited or pasted wrongly")
        }
        func field(_ name: String, size: Int? = nil) throws(ParseError) -> [UInt8] {
            guard let value = reader.string() else { throw ParseError(reason: "the \(type) key data is truncated (no \(name))") }
            if let size, value.count != size {
                throw ParseError(reason: "the \(type) key's \(name) is \(value.count) bytes; it must be \(size)")
            }
            return value
        }
        func curve(_ expected: String) throws(ParseError) {
            let name = String(decoding: try field("curve name"), as: UTF8.self)
            guard name == expected else { throw ParseError(reason: "the \(type) key names curve \(name); it must be \(expected)") }
        }
        func point(_ size: Int) throws(ParseError) {
            let value = try field("public point", size: size)
            guard value.first == 4 else { throw ParseError(reason: "the \(type) key's public point is not an uncompressed point") }
        }
        switch type {
        case "ssh-ed25519":
            _ = try field("public key", size: 32)
        case "ssh-rsa":
            let exponent = try field("exponent")
            let modulus = try field("modulus")
            guard !exponent.isEmpty, modulus.count > 1 else { throw ParseError(reason: "the ssh-rsa key has an empty exponent or modulus") }
        case "ecdsa-sha2-nistp256": try curve("nistp256"); try point(65)
        case "ecdsa-sha2-nistp384": try curve("nistp384"); try point(97)
        case "ecdsa-sha2-nistp521": try curve("nistp521"); try point(133)
        case "sk-ssh-ed25519@openssh.com":
            _ = try field("public key", size: 32)
            _ = try field("application")
        case "sk-ecdsa-sha2-nistp256@openssh.com":
            try curve("nistp256"); try point(65)
            _ = try field("application")
        default:
            throw ParseError(reason: "unknown key type \(type)")
        }
        guard reader.atEnd else { throw ParseError(reason: "the \(type) key data has \(reader.remaining) bytes too many") }
    }

    /// SSH wire-format strings: a 32-bit big-endian length, then the bytes.
    struct BlobReader {
        var bytes: [UInt8]
        var offset = 0

        var atEnd: Bool { offset == bytes.count }
        var remaining: Int { bytes.count - offset }

        mutating func string() -> [UInt8]? {
            guard remaining >= 4 else { return nil }
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            guard remaining - 4 >= length else { return nil }
            defer { offset += 4 + length }
            return Array(bytes[offset + 4..<offset + 4 + length])
        }
    }
}
