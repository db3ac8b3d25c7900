import Foundation
import GRDB

/// One invocation of `fleet-images build`: a row of the `run` table.
///
/// The command line holds flags only (never a secret: secrets are referenced by
/// environment variable or file name in the manifest, never passed as flags).
public struct RunRecord: Codable, Sendable, Hashable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "run"

    /// Nil until inserted.
    public var id: Int64?
    /// A random UUID: database ids are only unique within one database, this one is global
    /// (the provenance documents use it as their invocation id).
    public var uuid: String
    public var startedAt: Date
    public var finishedAt: Date?
    public var status: RunStatus
    public var commandLine: String
    public var manifestPath: String
    public var manifestSHA256: String
    public var toolVersion: String
    public var host: String
    public var pid: Int32
    public var parallelism: Int
    public var plannedCount: Int
    public var builtCount: Int
    public var upToDateCount: Int
    public var failedCount: Int
    public var skippedCount: Int
    /// The manifest's `fleet` name (nil for runs recorded before fleet-images recorded it).
    public var fleet: String?
    /// ``StateSecretKey/identity(of:)`` of the key the run's HMAC digests were made under.
    public var stateKeyID: String?
    /// `K/N` for `build --shard K/N`.
    public var shard: String?
    /// For a run brought in by `fleet-images merge`: the shard state it came from, and when.
    public var mergedFrom: String?
    public var mergedAt: Date?

    public init(
        id: Int64? = nil, uuid: String = UUID().uuidString.lowercased(), startedAt: Date,
        finishedAt: Date? = nil, status: RunStatus, commandLine: String, manifestPath: String,
        manifestSHA256: String, toolVersion: String, host: String, pid: Int32, parallelism: Int,
        counts: RunCounts = RunCounts(), fleet: String? = nil, stateKeyID: String? = nil, shard: String? = nil
    ) {
        self.id = id
        self.uuid = uuid
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.status = status
        self.commandLine = commandLine
        self.manifestPath = manifestPath
        self.manifestSHA256 = manifestSHA256
        self.toolVersion = toolVersion
        self.host = host
        self.pid = pid
        self.parallelism = parallelism
        self.plannedCount = counts.planned
        self.builtCount = counts.built
        self.upToDateCount = counts.upToDate
        self.failedCount = counts.failed
        self.skippedCount = counts.skipped
        self.fleet = fleet
        self.stateKeyID = stateKeyID
        self.shard = shard
    }

    /// The five counters as one value (stored as five columns).
    public var counts: RunCounts {
        get {
            RunCounts(planned: plannedCount, built: builtCount, upToDate: upToDateCount, failed: failedCount, skipped: skippedCount)
        }
        set {
            plannedCount = newValue.planned
            builtCount = newValue.built
            upToDateCount = newValue.upToDate
            failedCount = newValue.failed
            skippedCount = newValue.skipped
        }
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let uuid = Column(CodingKeys.uuid)
        public static let startedAt = Column(CodingKeys.startedAt)
        public static let finishedAt = Column(CodingKeys.finishedAt)
        public static let status = Column(CodingKeys.status)
        public static let host = Column(CodingKeys.host)
        public static let pid = Column(CodingKeys.pid)
        public static let plannedCount = Column(CodingKeys.plannedCount)
        public static let builtCount = Column(CodingKeys.builtCount)
        public static let upToDateCount = Column(CodingKeys.upToDateCount)
        public static let failedCount = Column(CodingKeys.failedCount)
        public static let skippedCount = Column(CodingKeys.skippedCount)
    }
}

/// The state of a run. Stored as its raw value; the `run.status` CHECK constraint lists them.
public enum RunStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case running
    case succeeded
    case failed
    /// The process died or was stopped (SIGINT/SIGTERM, kill -9, power loss) before it finished.
    case interrupted
}

/// What a run did with its planned variants.
public struct RunCounts: Codable, Sendable, Hashable {
    public var planned: Int
    public var built: Int
    public var upToDate: Int
    public var failed: Int
    /// Not attempted (for example after `--fail-fast` stopped the run).
    public var skipped: Int

    public init(planned: Int = 0, built: Int = 0, upToDate: Int = 0, failed: Int = 0, skipped: Int = 0) {
        self.planned = planned
        self.built = built
        self.upToDate = upToDate
        self.failed = failed
        self.skipped = skipped
    }
}
