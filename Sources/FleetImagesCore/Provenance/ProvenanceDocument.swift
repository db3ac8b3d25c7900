import Foundation

/// The provenance file written next to each image, `<image>.intoto.json`: an in-toto
/// Statement v1 whose predicate is SLSA Provenance v1, wrapped in a DSSE envelope signed with
/// the image's signing key, so standard in-toto and SLSA tooling can read and verify it.
///
/// What it says: the subject (the image file name, its SHA-256 and size) was built by
/// fleet-images (`runDetails.builder`) from the manifest and variant in `externalParameters`,
/// using the base image, builder image, templates and files in `resolvedDependencies`, during
/// the run and build in `runDetails.metadata`. Secret inputs (Wi-Fi passphrase, claim private
/// key) are named in `internalParameters.secretInputs` without any digest: the document travels
/// with the image, and even a keyed digest has no use outside this machine.
public struct ProvenanceDocument: Sendable, Equatable {
    public static let statementType = "https://in-toto.io/Statement/v1"
    public static let predicateType = "https://slsa.dev/provenance/v1"
    /// The DSSE payload type of an in-toto statement.
    public static let payloadType = "application/vnd.in-toto+json"
    /// The default `runDetails.builder.id`.
    public static let defaultBuilderID = "https://fleet-images.invalid/builder/v1"
    /// File name suffix appended to the image's name.
    public static let fileSuffix = ".intoto.json"

    public var statement: Statement

    /// Describes `build` of `run`, whose signed image is `artifact`.
    ///
    /// - Parameters:
    ///   - finishedOn: when the image was finished (signed); the build row is usually not finished yet.
    ///   - builderID: the SLSA builder id (the trust boundary that made the image).
    public init(
        run: RunRecord, build: BuildRecord, inputs: [BuildInputRecord], artifact: BuildArtifact,
        finishedOn: Date, builderID: String = ProvenanceDocument.defaultBuilderID
    ) {
        let imageName = (artifact.path as NSString).lastPathComponent
        let subject = ResourceDescriptor(
            name: imageName, digest: ["sha256": artifact.sha256], annotations: ["size": .integer(artifact.size)])

        var dependencies: [ResourceDescriptor] = []
        var secrets: [SecretInput] = []
        for input in inputs {
            if input.digestKind == .sshFingerprint {
                // A public key: a dependency like any other, by the SHA-256 of its key blob (what
                // the fingerprint encodes), with the fingerprint as ssh-keygen prints it.
                var dependency = ResourceDescriptor(
                    name: input.name, uri: nil, digest: [:],
                    annotations: ["role": .string(input.role.rawValue), "ssh_fingerprint": .string(input.digest)])
                if let hex = Self.sha256Hex(sshFingerprint: input.digest) { dependency.digest = ["sha256": hex] }
                dependencies.append(dependency)
                continue
            }
            guard input.digestKind == .sha256 else {
                secrets.append(SecretInput(role: input.role.rawValue, name: input.name))
                continue
            }
            var annotations: [String: AnnotationValue] = ["role": .string(input.role.rawValue)]
            if let fingerprint = input.certFingerprint {
                annotations["certificate_sha256_fingerprint"] = .string(fingerprint)
            }
            if let subject = input.certSubject { annotations["certificate_subject"] = .string(subject) }
            if let notAfter = input.certNotAfter {
                annotations["certificate_not_after"] = .string(ProvenanceFormat.iso8601(notAfter))
            }
            dependencies.append(
                ResourceDescriptor(
                    name: input.name, uri: input.url, digest: ["sha256": input.digest], annotations: annotations))
        }

        // The pinned builder image is a dependency even when the caller did not list it as an input.
        if let reference = build.builderImageDigest, !inputs.contains(where: { $0.role == .builderImage }),
            let at = reference.range(of: "@sha256:")
        {
            dependencies.append(
                ResourceDescriptor(
                    name: reference, digest: ["sha256": String(reference[at.upperBound...])],
                    annotations: ["role": .string(BuildInputRole.builderImage.rawValue)]))
        }

        let definition = BuildDefinition(
            buildType: "https://fleet-images.invalid/\(build.builder)/v1",
            externalParameters: ExternalParameters(
                manifest: ManifestReference(path: run.manifestPath, digest: ["sha256": run.manifestSHA256]),
                variant: build.variantID, site: build.site, matrix: build.matrix),
            internalParameters: InternalParameters(
                toolVersion: run.toolVersion, builder: build.builder, builderImage: build.builderImageDigest,
                inputsDigest: build.inputsDigest, runID: run.id ?? build.runID, buildID: build.id ?? 0,
                host: run.host, secretInputs: secrets),
            resolvedDependencies: dependencies)
        let details = RunDetails(
            builder: Builder(id: builderID, version: ["fleet-images": run.toolVersion]),
            metadata: BuildMetadata(
                invocationID: "urn:uuid:\(run.uuid)#build-\(build.id.map(String.init) ?? "0")",
                startedOn: ProvenanceFormat.iso8601(build.startedAt),
                finishedOn: ProvenanceFormat.iso8601(finishedOn)))
        statement = Statement(
            type: Self.statementType, subject: [subject], predicateType: Self.predicateType,
            predicate: Provenance(buildDefinition: definition, runDetails: details))
    }

    /// The statement's canonical bytes (sorted keys, slashes unescaped, compact): the DSSE payload.
    public func payload() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(statement))
    }

    /// The DSSE Pre-Authentication Encoding that is actually signed:
    /// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal byte counts.
    /// The hex SHA-256 an OpenSSH fingerprint (`SHA256:<unpadded base64>`) encodes, or nil.
    static func sha256Hex(sshFingerprint: String) -> String? {
        guard sshFingerprint.hasPrefix("SHA256:") else { return nil }
        var text = String(sshFingerprint.dropFirst("SHA256:".count))
        while text.count % 4 != 0 { text += "=" }
        guard let bytes = Data(base64Encoded: text), bytes.count == 32 else { return nil }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    public static func pae(payloadType: String, payload: [UInt8]) -> [UInt8] {
        let type = Array(payloadType.utf8)
        return Array("DSSEv1 \(type.count) ".utf8) + type + Array(" \(payload.count) ".utf8) + payload
    }

    /// Signs the statement: `sign` receives the PAE bytes and returns the signature (for example
    /// the image signing key's `sign`), `keyID` names the key (its fingerprint).
    public func envelope(keyID: String, sign: ([UInt8]) throws -> [UInt8]) throws -> DSSEEnvelope {
        let payload = try payload()
        let signature = try sign(Self.pae(payloadType: Self.payloadType, payload: payload))
        return DSSEEnvelope(
            payloadType: Self.payloadType, payload: Data(payload).base64EncodedString(),
            signatures: [DSSEEnvelope.Signature(keyID: keyID, sig: Data(signature).base64EncodedString())])
    }

    /// Where the provenance of `imagePath` goes: `<image>.intoto.json` beside it.
    public static func path(forImage imagePath: String) -> String {
        imagePath + fileSuffix
    }

    /// Signs the statement and writes the envelope atomically (temporary file, then rename) to
    /// `path` (by default beside the image). Returns the path written.
    @discardableResult
    public func write(
        to path: String, keyID: String, sign: ([UInt8]) throws -> [UInt8]
    ) throws -> String {
        let bytes = try envelope(keyID: keyID, sign: sign).encoded()
        try ProvenanceAtomicFile.replace(bytes, to: path, mode: 0o644)
        return path
    }
}

extension ProvenanceDocument {
    /// in-toto Statement v1.
    public struct Statement: Codable, Sendable, Equatable {
        public var type: String
        public var subject: [ResourceDescriptor]
        public var predicateType: String
        public var predicate: Provenance

        enum CodingKeys: String, CodingKey {
            case type = "_type"
            case subject, predicateType, predicate
        }
    }

    /// in-toto ResourceDescriptor (the fields used here).
    public struct ResourceDescriptor: Codable, Sendable, Equatable {
        public var name: String?
        public var uri: String?
        public var digest: [String: String]
        public var annotations: [String: AnnotationValue]?

        public init(name: String? = nil, uri: String? = nil, digest: [String: String], annotations: [String: AnnotationValue]? = nil) {
            self.name = name
            self.uri = uri
            self.digest = digest
            self.annotations = annotations
        }
    }

    /// An annotation value: in-toto allows any JSON; these documents use strings and integers.
    public enum AnnotationValue: Codable, Sendable, Equatable {
        case string(String)
        case integer(Int64)

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int64.self) {
                self = .integer(value)
            } else {
                self = .string(try container.decode(String.self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let value): try container.encode(value)
            case .integer(let value): try container.encode(value)
            }
        }
    }

    /// SLSA Provenance v1 predicate.
    public struct Provenance: Codable, Sendable, Equatable {
        public var buildDefinition: BuildDefinition
        public var runDetails: RunDetails
    }

    public struct BuildDefinition: Codable, Sendable, Equatable {
        public var buildType: String
        public var externalParameters: ExternalParameters
        public var internalParameters: InternalParameters
        public var resolvedDependencies: [ResourceDescriptor]
    }

    /// What the operator chose: the manifest and the variant in it.
    public struct ExternalParameters: Codable, Sendable, Equatable {
        public var manifest: ManifestReference
        public var variant: String
        public var site: String
        public var matrix: [String: String]
    }

    public struct ManifestReference: Codable, Sendable, Equatable {
        public var path: String
        public var digest: [String: String]
    }

    /// What fleet-images decided on its own.
    public struct InternalParameters: Codable, Sendable, Equatable {
        public var toolVersion: String
        public var builder: String
        public var builderImage: String?
        public var inputsDigest: String
        public var runID: Int64
        public var buildID: Int64
        public var host: String
        public var secretInputs: [SecretInput]

        enum CodingKeys: String, CodingKey {
            case toolVersion, builder, builderImage, inputsDigest
            case runID = "runId"
            case buildID = "buildId"
            case host, secretInputs
        }
    }

    /// A secret that went into the image, by name only.
    public struct SecretInput: Codable, Sendable, Equatable {
        public var role: String
        public var name: String
    }

    public struct RunDetails: Codable, Sendable, Equatable {
        public var builder: Builder
        public var metadata: BuildMetadata
    }

    public struct Builder: Codable, Sendable, Equatable {
        public var id: String
        /// SLSA v1: a map from component to version.
        public var version: [String: String]
    }

    public struct BuildMetadata: Codable, Sendable, Equatable {
        public var invocationID: String
        public var startedOn: String
        public var finishedOn: String

        enum CodingKeys: String, CodingKey {
            case invocationID = "invocationId"
            case startedOn, finishedOn
        }
    }
}
