import Foundation

/// How a variant build ended; ``ProvenanceStore/finishBuild(id:_:)`` records it.
public struct BuildOutcome: Sendable, Hashable {
    /// The end states a running build can reach (up-to-date and pruned are recorded by other calls).
    public enum Status: String, Sendable, Hashable {
        case succeeded, failed, interrupted

        var buildStatus: BuildStatus {
            switch self {
            case .succeeded: .succeeded
            case .failed: .failed
            case .interrupted: .interrupted
            }
        }
    }

    public var status: Status
    public var finishedAt: Date
    public var exitCode: Int32?
    /// Never a secret.
    public var errorMessage: String?
    /// Required for ``Status/succeeded``.
    public var artifact: BuildArtifact?
    public var provenancePath: String?
    /// Replaces the log path given at start when set.
    public var logPath: String?

    public init(
        status: Status, finishedAt: Date = Date(), exitCode: Int32? = nil, errorMessage: String? = nil,
        artifact: BuildArtifact? = nil, provenancePath: String? = nil, logPath: String? = nil
    ) {
        self.status = status
        self.finishedAt = finishedAt
        self.exitCode = exitCode
        self.errorMessage = errorMessage
        self.artifact = artifact
        self.provenancePath = provenancePath
        self.logPath = logPath
    }

    public static func succeeded(
        _ artifact: BuildArtifact, provenancePath: String?, finishedAt: Date = Date(), exitCode: Int32? = 0
    ) -> BuildOutcome {
        BuildOutcome(status: .succeeded, finishedAt: finishedAt, exitCode: exitCode, artifact: artifact, provenancePath: provenancePath)
    }

    public static func failed(_ message: String, exitCode: Int32? = nil, finishedAt: Date = Date()) -> BuildOutcome {
        BuildOutcome(status: .failed, finishedAt: finishedAt, exitCode: exitCode, errorMessage: message)
    }

    public static func interrupted(_ message: String = "interrupted", finishedAt: Date = Date()) -> BuildOutcome {
        BuildOutcome(status: .interrupted, finishedAt: finishedAt, errorMessage: message)
    }
}

/// The finished, signed image of a build.
public struct BuildArtifact: Sendable, Hashable {
    /// Where the image is (or will be, after the final rename) in the output folder.
    public var path: String
    public var size: Int64
    /// Lowercase hex.
    public var sha256: String
    public var signaturePath: String?
    /// SHA-256 of the signing public key (DER SubjectPublicKeyInfo), lowercase hex.
    public var signingKeyFingerprint: String?
    /// The compressed copy (`output.compress`).
    public var compressed: ImageOutputs.Compressed?
    /// `<image>.bmap`.
    public var blockMapPath: String?

    public init(path: String, size: Int64, sha256: String, signaturePath: String? = nil, signingKeyFingerprint: String? = nil,
                compressed: ImageOutputs.Compressed? = nil, blockMapPath: String? = nil) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.signaturePath = signaturePath
        self.signingKeyFingerprint = signingKeyFingerprint
        self.compressed = compressed
        self.blockMapPath = blockMapPath
    }
}
