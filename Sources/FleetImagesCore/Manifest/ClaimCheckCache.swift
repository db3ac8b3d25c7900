import Foundation

/// Remembers what checking a claim certificate and its private key found (validity dates,
/// whether the key matches), keyed by an HMAC of both files' bytes under the state's secret key,
/// so that a nightly run over thousands of unchanged sites does not parse them all again.
/// Expiry is still judged against the current time on every run. Kept in the state folder as
/// `claim-checks.json`; it holds no secret (HMACs and dates only).
public final class ClaimCheckCache: @unchecked Sendable {
    // @unchecked: `entries` and `dirty` are touched under `lock` only.
    public struct Entry: Codable, Sendable, Equatable {
        public var notBefore: Date
        public var notAfter: Date
        public var keyMatches: Bool
    }

    public let path: String
    private let secretKey: [UInt8]
    private var entries: [String: Entry]
    private var dirty = false
    private let lock = NSLock()

    /// Loads the cache at `path` (missing or unreadable: empty).
    public init(path: String, secretKey: [UInt8]) {
        self.path = path
        self.secretKey = secretKey
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        entries = FileManager.default.contents(atPath: path).flatMap { try? decoder.decode([String: Entry].self, from: $0) } ?? [:]
    }

    /// The cache key of a certificate/key pair, or nil when either file cannot be read.
    func key(certificate: String, privateKey: String) -> String? {
        guard case .success(let certBytes) = InputFile.read(certificate, shown: certificate, what: "claim certificate"),
              case .success(let keyBytes) = InputFile.read(privateKey, shown: privateKey, what: "claim private key") else { return nil }
        return Digest.hmacSHA256Hex(key: secretKey, message: certBytes + [0] + keyBytes)
    }

    func entry(_ key: String) -> Entry? {
        lock.withLock { entries[key] }
    }

    func store(_ entry: Entry, for key: String) {
        lock.withLock {
            entries[key] = entry
            dirty = true
        }
    }

    /// Writes the cache (temporary file, then rename) when it changed.
    public func save() throws {
        let (snapshot, changed) = lock.withLock { (entries, dirty) }
        guard changed else { return }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(snapshot)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o640]),
              rename(temporary, path) == 0 else {
            unlink(temporary)
            throw BuildFailure("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        lock.withLock { dirty = false }
    }
}
