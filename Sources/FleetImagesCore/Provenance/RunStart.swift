import Foundation

/// What is known about a run when it starts; ``ProvenanceStore/beginRun(_:)`` records it.
public struct RunStart: Sendable, Hashable {
    public var startedAt: Date
    /// Flags only, never a secret.
    public var commandLine: String
    public var manifestPath: String
    public var manifestSHA256: String
    public var toolVersion: String
    public var host: String
    public var pid: Int32
    public var parallelism: Int
    public var plannedCount: Int
    /// The manifest's fleet name, the state key's identity and the shard (see ``RunRecord``).
    public var fleet: String?
    public var stateKeyID: String?
    public var shard: String?

    public init(
        startedAt: Date = Date(), commandLine: String, manifestPath: String, manifestSHA256: String,
        toolVersion: String, host: String = ProcessInfo.processInfo.hostName,
        pid: Int32 = ProcessInfo.processInfo.processIdentifier, parallelism: Int, plannedCount: Int,
        fleet: String? = nil, stateKeyID: String? = nil, shard: String? = nil
    ) {
        self.startedAt = startedAt
        self.commandLine = commandLine
        self.manifestPath = manifestPath
        self.manifestSHA256 = manifestSHA256
        self.toolVersion = toolVersion
        self.host = host
        self.pid = pid
        self.parallelism = parallelism
        self.plannedCount = plannedCount
        self.fleet = fleet
        self.stateKeyID = stateKeyID
        self.shard = shard
    }
}
