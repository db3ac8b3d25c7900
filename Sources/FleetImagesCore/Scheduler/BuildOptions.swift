import Foundation

/// What `fleet-images build` was asked to do.
public struct BuildOptions: Sendable {
    public var manifestPath: String
    public var statePath: String?
    /// At most this many variants build at once (1–64).
    public var parallel: Int
    public var only: String?
    /// Only this slice of the fleet (``Shard``), before `only`.
    public var shard: Shard?
    public var force = false
    public var failFast = false
    public var dryRun = false
    /// Overrides the manifest's builder timeout.
    public var timeoutSeconds: Int?
    public var waitLockSeconds = 0
    public var keepWork = false
    /// The flags as typed, recorded with the run (never a secret: flags carry none).
    public var commandLine: String
    public var environment: [String: String]

    public init(manifestPath: String, statePath: String? = nil, parallel: Int = BuildOptions.defaultParallelism,
                commandLine: String = "", environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.manifestPath = manifestPath
        self.statePath = statePath
        self.parallel = parallel
        self.commandLine = commandLine
        self.environment = environment
    }

    /// One build per core, at most 4: builds are I/O and SHA-256 bound, and each holds a full image copy on disk.
    public static var defaultParallelism: Int { max(1, min(4, ProcessInfo.processInfo.activeProcessorCount)) }
}

/// One variant's outcome in a run.
public struct VariantResult: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        case built
        case upToDate = "up-to-date"
        case failed
        case interrupted
        case skipped
        case wouldBuild = "would-build"
    }

    public var variant: String
    public var status: Status
    public var image: String?
    public var sha256: String?
    public var durationSeconds: Double?
    public var error: String?
    public var log: String?
    public var buildID: Int64?

    enum CodingKeys: String, CodingKey {
        case variant, status, image, sha256, error, log
        case durationSeconds = "duration_seconds"
        case buildID = "build_id"
    }
}

/// The whole run's outcome; its JSON is the stable shape `build --json` prints.
public struct BuildSummary: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        case succeeded, failed, interrupted
    }

    public var runID: Int64?
    public var status: Status
    public var variants: [VariantResult]
    public var durationSeconds: Double

    enum CodingKeys: String, CodingKey {
        case status, variants
        case runID = "run_id"
        case durationSeconds = "duration_seconds"
    }

    public func count(_ status: VariantResult.Status) -> Int { variants.filter { $0.status == status }.count }
}

/// Progress events for the display.
public enum BuildEvent: Sendable {
    /// The decision: how many variants the run covers and how many it builds.
    case planned(total: Int, building: Int)
    case note(String)
    case started(variant: String)
    case phase(variant: String, String)
    case finished(VariantResult)
}

/// Why a run could not start; the CLI maps each to its exit code.
public enum BuildRunError: Error, CustomStringConvertible {
    case badInput([Diagnostic], String?)
    case unavailable(String)
    case locked(String)
    case failed(String)

    public var description: String {
        switch self {
        case .badInput(let diagnostics, let message):
            (diagnostics.map(\.description) + (message.map { [$0] } ?? [])).joined(separator: "\n")
        case .unavailable(let message), .locked(let message), .failed(let message):
            message
        }
    }
}
