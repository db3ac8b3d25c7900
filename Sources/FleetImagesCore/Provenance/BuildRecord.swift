import Foundation
import GRDB

/// One attempt at one variant within a run: a row of the `build` table.
///
/// A variant found up to date also gets a row (status ``BuildStatus/upToDate``) that copies the
/// artifact of the build it reuses (`reusedBuildID`), so "the latest build of every variant"
/// always describes the image currently in the output folder.
public struct BuildRecord: Codable, Sendable, Hashable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "build"

    /// Nil until inserted.
    public var id: Int64?
    public var runID: Int64
    public var variantID: String
    public var site: String
    /// Decodes a row without going through `Codable`: `ls` decodes thousands of these, and the
    /// column-by-column path is several times faster than GRDB's Codable decoder.
    public init(row: Row) throws {
        id = try row.decode(forColumn: CodingKeys.id.stringValue)
        runID = try row.decode(forColumn: CodingKeys.runID.stringValue)
        variantID = try row.decode(forColumn: CodingKeys.variantID.stringValue)
        site = try row.decode(forColumn: CodingKeys.site.stringValue)
        matrixJSON = try row.decode(forColumn: CodingKeys.matrixJSON.stringValue)
        builder = try row.decode(forColumn: CodingKeys.builder.stringValue)
        builderImageDigest = try row.decode(forColumn: CodingKeys.builderImageDigest.stringValue)
        inputsDigest = try row.decode(forColumn: CodingKeys.inputsDigest.stringValue)
        startedAt = try row.decode(forColumn: CodingKeys.startedAt.stringValue)
        finishedAt = try row.decode(forColumn: CodingKeys.finishedAt.stringValue)
        status = try row.decode(forColumn: CodingKeys.status.stringValue)
        exitCode = try row.decode(forColumn: CodingKeys.exitCode.stringValue)
        errorMessage = try row.decode(forColumn: CodingKeys.errorMessage.stringValue)
        logPath = try row.decode(forColumn: CodingKeys.logPath.stringValue)
        artifactPath = try row.decode(forColumn: CodingKeys.artifactPath.stringValue)
        artifactSize = try row.decode(forColumn: CodingKeys.artifactSize.stringValue)
        artifactSHA256 = try row.decode(forColumn: CodingKeys.artifactSHA256.stringValue)
        signaturePath = try row.decode(forColumn: CodingKeys.signaturePath.stringValue)
        signingKeyFingerprint = try row.decode(forColumn: CodingKeys.signingKeyFingerprint.stringValue)
        provenancePath = try row.decode(forColumn: CodingKeys.provenancePath.stringValue)
        reusedBuildID = try row.decode(forColumn: CodingKeys.reusedBuildID.stringValue)
        originID = try row.decode(forColumn: CodingKeys.originID.stringValue)
        compression = try row.decode(forColumn: CodingKeys.compression.stringValue)
        compressedPath = try row.decode(forColumn: CodingKeys.compressedPath.stringValue)
        compressedSize = try row.decode(forColumn: CodingKeys.compressedSize.stringValue)
        compressedSHA256 = try row.decode(forColumn: CodingKeys.compressedSHA256.stringValue)
        blockMapPath = try row.decode(forColumn: CodingKeys.blockMapPath.stringValue)
    }

    /// The matrix axis values of the variant as a JSON object (axis → value, sorted keys); `{}` without a matrix.
    public var matrixJSON: String
    /// `inject` or `packer-docker`.
    public var builder: String
    /// The pinned builder image (`name@sha256:…`) for packer-docker.
    public var builderImageDigest: String?
    public var inputsDigest: String
    public var startedAt: Date
    public var finishedAt: Date?
    public var status: BuildStatus
    public var exitCode: Int32?
    /// Why the build failed; never holds a secret (the caller's responsibility: builder errors name files, not contents).
    public var errorMessage: String?
    public var logPath: String?
    public var artifactPath: String?
    public var artifactSize: Int64?
    public var artifactSHA256: String?
    public var signaturePath: String?
    public var signingKeyFingerprint: String?
    /// The `<image>.intoto.json` file.
    public var provenancePath: String?
    /// For an up-to-date row: the build whose artifact was kept.
    public var reusedBuildID: Int64?
    /// For a build brought in by `fleet-images merge`: its id in the database where it was built
    /// (nil for a build recorded here).
    public var originID: Int64?
    /// `output.compress`: format and level (`xz 6`), and the compressed copy of the image
    /// (`.img.xz`, `.img.zst`), its size and SHA-256.
    public var compression: String?
    public var compressedPath: String?
    public var compressedSize: Int64?
    public var compressedSHA256: String?
    /// The image's block map (`<image>.bmap`).
    public var blockMapPath: String?

    public init(
        id: Int64? = nil, runID: Int64, variantID: String, site: String, matrix: [String: String],
        builder: String, builderImageDigest: String? = nil, inputsDigest: String, startedAt: Date,
        finishedAt: Date? = nil, status: BuildStatus, exitCode: Int32? = nil, errorMessage: String? = nil,
        logPath: String? = nil, artifactPath: String? = nil, artifactSize: Int64? = nil,
        artifactSHA256: String? = nil, signaturePath: String? = nil, signingKeyFingerprint: String? = nil,
        provenancePath: String? = nil, reusedBuildID: Int64? = nil
    ) {
        self.id = id
        self.runID = runID
        self.variantID = variantID
        self.site = site
        self.matrixJSON = Self.encodeMatrix(matrix)
        self.builder = builder
        self.builderImageDigest = builderImageDigest
        self.inputsDigest = inputsDigest
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.status = status
        self.exitCode = exitCode
        self.errorMessage = errorMessage
        self.logPath = logPath
        self.artifactPath = artifactPath
        self.artifactSize = artifactSize
        self.artifactSHA256 = artifactSHA256
        self.signaturePath = signaturePath
        self.signingKeyFingerprint = signingKeyFingerprint
        self.provenancePath = provenancePath
        self.reusedBuildID = reusedBuildID
    }

    /// The matrix axis values (axis → value); empty without a matrix or if `matrixJSON` is not an object of strings.
    public var matrix: [String: String] {
        get { (try? JSONDecoder().decode([String: String].self, from: Data(matrixJSON.utf8))) ?? [:] }
        set { matrixJSON = Self.encodeMatrix(newValue) }
    }

    /// Seconds from start to finish; nil while running.
    public var duration: TimeInterval? {
        finishedAt.map { $0.timeIntervalSince(startedAt) }
    }

    static func encodeMatrix(_ matrix: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a [String: String] cannot fail.
        return (try? encoder.encode(matrix)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Encodes a row without going through `Codable`, for the same reason: a run records an
    /// up-to-date row per variant and a merge thousands of builds.
    public func encode(to container: inout PersistenceContainer) throws {
        container[CodingKeys.id.stringValue] = id
        container[CodingKeys.runID.stringValue] = runID
        container[CodingKeys.variantID.stringValue] = variantID
        container[CodingKeys.site.stringValue] = site
        container[CodingKeys.matrixJSON.stringValue] = matrixJSON
        container[CodingKeys.builder.stringValue] = builder
        container[CodingKeys.builderImageDigest.stringValue] = builderImageDigest
        container[CodingKeys.inputsDigest.stringValue] = inputsDigest
        container[CodingKeys.startedAt.stringValue] = startedAt
        container[CodingKeys.finishedAt.stringValue] = finishedAt
        container[CodingKeys.status.stringValue] = status
        container[CodingKeys.exitCode.stringValue] = exitCode
        container[CodingKeys.errorMessage.stringValue] = errorMessage
        container[CodingKeys.logPath.stringValue] = logPath
        container[CodingKeys.artifactPath.stringValue] = artifactPath
        container[CodingKeys.artifactSize.stringValue] = artifactSize
        container[CodingKeys.artifactSHA256.stringValue] = artifactSHA256
        container[CodingKeys.signaturePath.stringValue] = signaturePath
        container[CodingKeys.signingKeyFingerprint.stringValue] = signingKeyFingerprint
        container[CodingKeys.provenancePath.stringValue] = provenancePath
        container[CodingKeys.reusedBuildID.stringValue] = reusedBuildID
        container[CodingKeys.originID.stringValue] = originID
        container[CodingKeys.compression.stringValue] = compression
        container[CodingKeys.compressedPath.stringValue] = compressedPath
        container[CodingKeys.compressedSize.stringValue] = compressedSize
        container[CodingKeys.compressedSHA256.stringValue] = compressedSHA256
        container[CodingKeys.blockMapPath.stringValue] = blockMapPath
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let runID = Column(CodingKeys.runID)
        public static let variantID = Column(CodingKeys.variantID)
        public static let site = Column(CodingKeys.site)
        public static let inputsDigest = Column(CodingKeys.inputsDigest)
        public static let startedAt = Column(CodingKeys.startedAt)
        public static let finishedAt = Column(CodingKeys.finishedAt)
        public static let status = Column(CodingKeys.status)
        public static let exitCode = Column(CodingKeys.exitCode)
        public static let errorMessage = Column(CodingKeys.errorMessage)
        public static let artifactPath = Column(CodingKeys.artifactPath)
        public static let provenancePath = Column(CodingKeys.provenancePath)
        public static let reusedBuildID = Column(CodingKeys.reusedBuildID)
    }
}

/// The state of one variant build. Stored as its raw value; the `build.status` CHECK constraint lists them.
public enum BuildStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case running
    case succeeded
    case failed
    case interrupted
    /// The inputs digest matched an earlier successful build whose artifact was kept.
    case upToDate = "up-to-date"
    /// The artifact was deleted on purpose; the row stays as history.
    case pruned

    /// Statuses whose row describes an artifact that was produced (and may still exist).
    public static let withArtifact: [BuildStatus] = [.succeeded, .upToDate]
}
