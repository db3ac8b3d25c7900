import Foundation

/// What is known about a variant build when it starts; ``ProvenanceStore/beginBuild(runID:_:inputs:)`` records it.
public struct BuildStart: Sendable, Hashable {
    public var variantID: String
    public var site: String
    /// Axis → value; empty without a matrix.
    public var matrix: [String: String]
    /// `inject` or `packer-docker`.
    public var builder: String
    public var builderImageDigest: String?
    public var inputsDigest: String
    public var startedAt: Date
    public var logPath: String?

    public init(
        variantID: String, site: String, matrix: [String: String] = [:], builder: String,
        builderImageDigest: String? = nil, inputsDigest: String, startedAt: Date = Date(), logPath: String? = nil
    ) {
        self.variantID = variantID
        self.site = site
        self.matrix = matrix
        self.builder = builder
        self.builderImageDigest = builderImageDigest
        self.inputsDigest = inputsDigest
        self.startedAt = startedAt
        self.logPath = logPath
    }
}

/// One input of a build, as the planner digested it. Never the content itself: for a secret
/// pass an HMAC under ``StateSecretKey`` with ``DigestKind/hmacSHA256``.
public struct BuildInput: Sendable, Hashable {
    public var role: BuildInputRole
    public var name: String
    public var digest: String
    public var digestKind: DigestKind
    public var url: String?
    public var certificate: CertificateSummary?

    public init(
        role: BuildInputRole, name: String, digest: String, digestKind: DigestKind = .sha256,
        url: String? = nil, certificate: CertificateSummary? = nil
    ) {
        self.role = role
        self.name = name
        self.digest = digest
        self.digestKind = digestKind
        self.url = url
        self.certificate = certificate
    }
}

/// The recorded facts about an X.509 certificate input (the claim certificate).
public struct CertificateSummary: Sendable, Hashable {
    /// SHA-256 of the DER encoding, lowercase hex.
    public var fingerprint: String
    public var subject: String
    public var notAfter: Date

    public init(fingerprint: String, subject: String, notAfter: Date) {
        self.fingerprint = fingerprint
        self.subject = subject
        self.notAfter = notAfter
    }
}
