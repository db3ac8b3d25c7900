/// Everything a builder needs to turn one planned variant into one raw `.img`.
public struct BuildJob: Sendable {
    public var planned: PlannedVariant
    public var manifest: Manifest
    /// The verified, decompressed base image (never modified).
    public var baseImagePath: String
    /// A private folder (mode 0700) for this build only; removed afterwards.
    public var workDirectory: String
    public var log: BuildLog

    public var variantID: String { planned.variant.id }
    /// Where the finished image is written inside the work folder.
    public var imagePath: String { workDirectory + "/" + variantID + ".img" }
}

/// Turns one variant into one raw image file inside its work folder. A builder throws on failure;
/// on cancellation it stops its children and throws `CancellationError`.
public protocol ImageBuilder: Sendable {
    /// Identifies the builder in provenance (`inject`, `packer-docker`).
    var kind: BuilderKind { get }
    /// The builder's pinned image digest, when it runs one (recorded with every build).
    var imageDigest: String? { get }
    func build(_ job: BuildJob) async throws -> String
}

/// Why a build failed, as one line for the log, the database and the summary.
public struct BuildFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var exitCode: Int32?

    public init(_ description: String, exitCode: Int32? = nil) {
        self.description = description
        self.exitCode = exitCode
    }
}
