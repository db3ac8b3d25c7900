import Foundation
import GRDB

/// One input of a build (a file, a secret, the base image, the builder image) and its digest:
/// a row of the `buildInput` table.
///
/// Secret-bearing inputs (Wi-Fi passphrase, claim private key, signing passphrase) are recorded
/// with ``DigestKind/hmacSHA256`` under the local ``StateSecretKey``: a plain SHA-256 of a
/// passphrase can be brute-forced from a stolen database; a keyed digest cannot without the key.
public struct BuildInputRecord: Codable, Sendable, Hashable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "buildInput"

    /// Nil until inserted.
    public var id: Int64?
    public var buildID: Int64
    public var role: BuildInputRole
    /// A repository-relative path, an environment variable reference (`env:NAME`), or an image reference.
    public var name: String
    /// Lowercase hex.
    public var digest: String
    public var digestKind: DigestKind
    /// Where the input came from when it was downloaded (the base image).
    public var url: String?
    /// For a certificate: SHA-256 fingerprint of its DER encoding, lowercase hex.
    public var certFingerprint: String?
    /// For a certificate: its subject, RFC 2253.
    public var certSubject: String?
    /// For a certificate: its expiry.
    public var certNotAfter: Date?

    public init(
        id: Int64? = nil, buildID: Int64, role: BuildInputRole, name: String, digest: String,
        digestKind: DigestKind, url: String? = nil, certFingerprint: String? = nil,
        certSubject: String? = nil, certNotAfter: Date? = nil
    ) {
        self.id = id
        self.buildID = buildID
        self.role = role
        self.name = name
        self.digest = digest
        self.digestKind = digestKind
        self.url = url
        self.certFingerprint = certFingerprint
        self.certSubject = certSubject
        self.certNotAfter = certNotAfter
    }

    /// Read column by column rather than through Codable: a merge reads every input of every shard
    /// build (five or more per build), and decoding them was the largest part of reading a shard.
    public init(row: Row) throws {
        id = try row.decode(forColumn: "id")
        buildID = try row.decode(forColumn: "buildID")
        role = try row.decode(forColumn: "role")
        name = try row.decode(forColumn: "name")
        digest = try row.decode(forColumn: "digest")
        digestKind = try row.decode(forColumn: "digestKind")
        url = try row.decode(forColumn: "url")
        certFingerprint = try row.decode(forColumn: "certFingerprint")
        certSubject = try row.decode(forColumn: "certSubject")
        certNotAfter = try row.decode(forColumn: "certNotAfter")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    /// Inserts `records` as inputs of build `buildID`: the same columns and values as
    /// `insert(db)`, without encoding each row through Codable, and up to 100 rows per statement
    /// (cached by its row count). A merge brings tens of thousands of inputs; one statement per
    /// row, encoded through Codable, was most of its time.
    static func insertAll(_ records: [BuildInputRecord], buildID: Int64, _ db: Database) throws {
        let columns = "buildID, role, name, digest, digestKind, url, certFingerprint, certSubject, certNotAfter"
        var start = records.startIndex
        while start < records.endIndex {
            let chunk = records[start..<min(start + 100, records.endIndex)]
            let rows = repeatElement("(?, ?, ?, ?, ?, ?, ?, ?, ?)", count: chunk.count).joined(separator: ", ")
            let statement = try db.cachedStatement(sql: "INSERT INTO buildInput (\(columns)) VALUES \(rows)")
            var values: [(any DatabaseValueConvertible)?] = []
            values.reserveCapacity(chunk.count * 9)
            for record in chunk {
                values += [buildID, record.role, record.name, record.digest, record.digestKind, record.url,
                           record.certFingerprint, record.certSubject, record.certNotAfter] as [(any DatabaseValueConvertible)?]
            }
            try statement.execute(arguments: StatementArguments(values))
            start = chunk.endIndex
        }
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let buildID = Column(CodingKeys.buildID)
        public static let role = Column(CodingKeys.role)
        public static let name = Column(CodingKeys.name)
        public static let digestKind = Column(CodingKeys.digestKind)
    }
}

/// How an input's digest was computed.
public enum DigestKind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Plain SHA-256 of the content: for anything that is not a secret.
    case sha256
    /// HMAC-SHA-256 of the content under the local ``StateSecretKey``: for secrets.
    case hmacSHA256 = "hmac-sha256"
    /// OpenSSH's fingerprint of a public key (`SHA256:` + unpadded base64 of the SHA-256 of the
    /// key blob), as `ssh-keygen -l` prints it: for `ssh.authorized_keys`, which are not secret.
    case sshFingerprint = "ssh-fingerprint"

    /// The kind of a planned input's `algorithm` (``InputDigest``).
    public init(algorithm: String) {
        self = DigestKind(rawValue: algorithm) ?? .hmacSHA256
    }
}

/// What an input is for. An open set: the well-known roles are constants; any other string is kept as is.
public struct BuildInputRole: RawRepresentable, Codable, Sendable, Hashable, Comparable,
    ExpressibleByStringLiteral, DatabaseValueConvertible, CustomStringConvertible
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public static let claimCertificate: Self = "claim-certificate"
    public static let claimPrivateKey: Self = "claim-private-key"
    public static let wifiPSK: Self = "wifi-psk"
    public static let baseImage: Self = "base-image"
    public static let builderImage: Self = "builder-image"
    public static let template: Self = "template"
    /// A Packer template variable set by `builder.variables` (name and digest; never the value).
    public static let packerVariable: Self = "packer-variable"
    public static let file: Self = "file"
    public static let manifest: Self = "manifest"
}
