import Foundation

/// The JSON that `fleet-images ls --json`, `runs --json` and `show --json` print. A stable,
/// documented shape for scripts: keys are snake_case and always present (`null` when unknown),
/// dates are ISO 8601 in UTC with milliseconds, sizes are bytes, durations are seconds.
///
/// `ls --json`:
/// ```json
/// {"builds": [{"variant": "zrh-lab-arm64", "site": "zrh-lab", "status": "succeeded",
///   "matrix": {"arch": "arm64"}, "builder": "inject",
///   "started_at": "2025-06-01T02:00:01.000Z", "finished_at": "2025-06-01T02:03:06.500Z",
///   "duration_seconds": 185.5,
///   "artifact": {"path": "build/images/zrh-lab-arm64.img", "size": 2786918400, "sha256": "…",
///                "signature": "build/images/zrh-lab-arm64.img.sig", "signing_key": "…",
///                "block_map": "….img.bmap", "compressed": {"path": "….img.xz", "size": …, "sha256": "…", "compression": "xz 6"}},
///   "inputs_digest": "…", "run_id": 7, "build_id": 42, "reused_build_id": null,
///   "exit_code": 0, "error": null, "log": "…", "provenance": "….img.intoto.json"}]}
/// ```
/// `status` is one of `running`, `succeeded`, `failed`, `interrupted`, `up-to-date`, `pruned`,
/// or `never-built` (a manifest variant with no build; then every other field is null).
/// `artifact` is null when the build produced none; its `block_map` and `compressed` are null for
/// builds made before them, `compressed` also when `output.compress` is `none`.
///
/// `runs --json`: `{"runs": [{"run_id", "uuid", "status", "started_at", "finished_at",
/// "duration_seconds", "command_line", "manifest": {"path", "sha256"}, "tool_version", "host",
/// "pid", "parallelism", "counts": {"planned", "built", "up_to_date", "failed", "skipped"}, "fleet", "shard",
/// "state_key_id", "merged_from", "merged_at"}]}` (the last five null where not recorded: `shard` for an
/// unsharded run, `merged_from`/`merged_at` for a run recorded in this state rather than merged into it).
///
/// `show --json`: `{"build": <as in ls>, "run": <as in runs, or null>, "inputs": [{"role", "name",
/// "digest", "digest_kind", "url", "certificate": {"fingerprint", "subject", "not_after"} or null}]}`.
public enum ProvenanceJSON {
    public struct BuildList: Codable, Sendable, Equatable {
        public var builds: [Build]
    }

    public struct RunList: Codable, Sendable, Equatable {
        public var runs: [Run]
    }

    public struct BuildDetail: Codable, Sendable, Equatable {
        public var build: Build
        public var run: Run?
        public var inputs: [Input]

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(build, forKey: .build)
            try container.encode(run, forKey: .run)
            try container.encode(inputs, forKey: .inputs)
        }
    }

    public struct Build: Codable, Sendable, Equatable {
        public var variant: String
        public var site: String?
        public var status: String
        public var matrix: [String: String]?
        public var builder: String?
        public var builderImage: String?
        public var startedAt: String?
        public var finishedAt: String?
        public var durationSeconds: Double?
        public var artifact: Artifact?
        public var inputsDigest: String?
        public var runID: Int64?
        public var buildID: Int64?
        public var reusedBuildID: Int64?
        public var exitCode: Int32?
        public var error: String?
        public var log: String?
        public var provenance: String?

        enum CodingKeys: String, CodingKey {
            case variant, site, status, matrix, builder
            case builderImage = "builder_image"
            case startedAt = "started_at"
            case finishedAt = "finished_at"
            case durationSeconds = "duration_seconds"
            case artifact
            case inputsDigest = "inputs_digest"
            case runID = "run_id"
            case buildID = "build_id"
            case reusedBuildID = "reused_build_id"
            case exitCode = "exit_code"
            case error, log, provenance
        }

        public init(_ record: BuildRecord) {
            variant = record.variantID
            site = record.site
            status = record.status.rawValue
            matrix = record.matrix
            builder = record.builder
            builderImage = record.builderImageDigest
            startedAt = ProvenanceFormat.iso8601(record.startedAt)
            finishedAt = record.finishedAt.map(ProvenanceFormat.iso8601)
            durationSeconds = record.duration.map { ($0 * 1000).rounded() / 1000 }
            if let path = record.artifactPath, let size = record.artifactSize, let sha256 = record.artifactSHA256 {
                var compressed: Compressed?
                if let compressedPath = record.compressedPath, let compressedSize = record.compressedSize, let compressedSHA256 = record.compressedSHA256 {
                    compressed = Compressed(path: compressedPath, size: compressedSize, sha256: compressedSHA256, compression: record.compression)
                }
                artifact = Artifact(
                    path: path, size: size, sha256: sha256, signature: record.signaturePath,
                    signingKey: record.signingKeyFingerprint, blockMap: record.blockMapPath, compressed: compressed)
            }
            inputsDigest = record.inputsDigest
            runID = record.runID
            buildID = record.id
            reusedBuildID = record.reusedBuildID
            exitCode = record.exitCode
            error = record.errorMessage
            log = record.logPath
            provenance = record.provenancePath
        }

        /// A manifest variant that has no recorded build.
        public init(neverBuilt variantID: String) {
            variant = variantID
            status = "never-built"
        }

        public func encode(to encoder: any Encoder) throws {
            // Every key always present: `null` rather than missing, so the shape never varies.
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(variant, forKey: .variant)
            try container.encode(site, forKey: .site)
            try container.encode(status, forKey: .status)
            try container.encode(matrix, forKey: .matrix)
            try container.encode(builder, forKey: .builder)
            try container.encode(builderImage, forKey: .builderImage)
            try container.encode(startedAt, forKey: .startedAt)
            try container.encode(finishedAt, forKey: .finishedAt)
            try container.encode(durationSeconds, forKey: .durationSeconds)
            try container.encode(artifact, forKey: .artifact)
            try container.encode(inputsDigest, forKey: .inputsDigest)
            try container.encode(runID, forKey: .runID)
            try container.encode(buildID, forKey: .buildID)
            try container.encode(reusedBuildID, forKey: .reusedBuildID)
            try container.encode(exitCode, forKey: .exitCode)
            try container.encode(error, forKey: .error)
            try container.encode(log, forKey: .log)
            try container.encode(provenance, forKey: .provenance)
        }
    }

    public struct Artifact: Codable, Sendable, Equatable {
        public var path: String
        public var size: Int64
        public var sha256: String
        public var signature: String?
        public var signingKey: String?
        /// `<image>.bmap` (null for builds made before block maps).
        public var blockMap: String?
        /// The `output.compress` copy, or null.
        public var compressed: Compressed?

        enum CodingKeys: String, CodingKey {
            case path, size, sha256, signature, compressed
            case signingKey = "signing_key"
            case blockMap = "block_map"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(path, forKey: .path)
            try container.encode(size, forKey: .size)
            try container.encode(sha256, forKey: .sha256)
            try container.encode(signature, forKey: .signature)
            try container.encode(signingKey, forKey: .signingKey)
            try container.encode(blockMap, forKey: .blockMap)
            try container.encode(compressed, forKey: .compressed)
        }
    }

    /// `{"path", "size", "sha256", "compression"}`: the compressed copy; `compression` is the format and level (`xz 6`).
    public struct Compressed: Codable, Sendable, Equatable {
        public var path: String
        public var size: Int64
        public var sha256: String
        public var compression: String?

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(path, forKey: .path)
            try container.encode(size, forKey: .size)
            try container.encode(sha256, forKey: .sha256)
            try container.encode(compression, forKey: .compression)
        }
    }

    public struct Run: Codable, Sendable, Equatable {
        public var runID: Int64?
        public var uuid: String
        public var status: String
        public var startedAt: String
        public var finishedAt: String?
        public var durationSeconds: Double?
        public var commandLine: String
        public var manifest: Manifest
        public var toolVersion: String
        public var host: String
        public var pid: Int32
        public var parallelism: Int
        public var counts: Counts
        public var fleet: String?
        public var shard: String?
        public var stateKeyID: String?
        public var mergedFrom: String?
        public var mergedAt: String?

        enum CodingKeys: String, CodingKey {
            case runID = "run_id"
            case uuid, status
            case startedAt = "started_at"
            case finishedAt = "finished_at"
            case durationSeconds = "duration_seconds"
            case commandLine = "command_line"
            case manifest
            case toolVersion = "tool_version"
            case host, pid, parallelism, counts, fleet, shard
            case stateKeyID = "state_key_id"
            case mergedFrom = "merged_from"
            case mergedAt = "merged_at"
        }

        public init(_ record: RunRecord) {
            runID = record.id
            uuid = record.uuid
            status = record.status.rawValue
            startedAt = ProvenanceFormat.iso8601(record.startedAt)
            finishedAt = record.finishedAt.map(ProvenanceFormat.iso8601)
            durationSeconds = record.finishedAt.map { ($0.timeIntervalSince(record.startedAt) * 1000).rounded() / 1000 }
            commandLine = record.commandLine
            manifest = Manifest(path: record.manifestPath, sha256: record.manifestSHA256)
            toolVersion = record.toolVersion
            host = record.host
            pid = record.pid
            parallelism = record.parallelism
            counts = Counts(
                planned: record.plannedCount, built: record.builtCount, upToDate: record.upToDateCount,
                failed: record.failedCount, skipped: record.skippedCount)
            fleet = record.fleet
            shard = record.shard
            stateKeyID = record.stateKeyID
            mergedFrom = record.mergedFrom
            mergedAt = record.mergedAt.map(ProvenanceFormat.iso8601)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(runID, forKey: .runID)
            try container.encode(uuid, forKey: .uuid)
            try container.encode(status, forKey: .status)
            try container.encode(startedAt, forKey: .startedAt)
            try container.encode(finishedAt, forKey: .finishedAt)
            try container.encode(durationSeconds, forKey: .durationSeconds)
            try container.encode(commandLine, forKey: .commandLine)
            try container.encode(manifest, forKey: .manifest)
            try container.encode(toolVersion, forKey: .toolVersion)
            try container.encode(host, forKey: .host)
            try container.encode(pid, forKey: .pid)
            try container.encode(parallelism, forKey: .parallelism)
            try container.encode(counts, forKey: .counts)
            try container.encode(fleet, forKey: .fleet)
            try container.encode(shard, forKey: .shard)
            try container.encode(stateKeyID, forKey: .stateKeyID)
            try container.encode(mergedFrom, forKey: .mergedFrom)
            try container.encode(mergedAt, forKey: .mergedAt)
        }
    }

    public struct Manifest: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var planned, built, upToDate, failed, skipped: Int

        enum CodingKeys: String, CodingKey {
            case planned, built
            case upToDate = "up_to_date"
            case failed, skipped
        }
    }

    public struct Input: Codable, Sendable, Equatable {
        public var role: String
        public var name: String
        public var digest: String
        public var digestKind: String
        public var url: String?
        public var certificate: Certificate?

        enum CodingKeys: String, CodingKey {
            case role, name, digest
            case digestKind = "digest_kind"
            case url, certificate
        }

        public init(_ record: BuildInputRecord) {
            role = record.role.rawValue
            name = record.name
            digest = record.digest
            digestKind = record.digestKind.rawValue
            url = record.url
            if let fingerprint = record.certFingerprint {
                certificate = Certificate(
                    fingerprint: fingerprint, subject: record.certSubject,
                    notAfter: record.certNotAfter.map(ProvenanceFormat.iso8601))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(role, forKey: .role)
            try container.encode(name, forKey: .name)
            try container.encode(digest, forKey: .digest)
            try container.encode(digestKind, forKey: .digestKind)
            try container.encode(url, forKey: .url)
            try container.encode(certificate, forKey: .certificate)
        }
    }

    public struct Certificate: Codable, Sendable, Equatable {
        public var fingerprint: String
        public var subject: String?
        public var notAfter: String?

        enum CodingKeys: String, CodingKey {
            case fingerprint, subject
            case notAfter = "not_after"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(fingerprint, forKey: .fingerprint)
            try container.encode(subject, forKey: .subject)
            try container.encode(notAfter, forKey: .notAfter)
        }
    }
}

extension ProvenanceReport {
    /// `ls --json`; see ``ProvenanceJSON`` for the shape. Rows are ordered as in ``table(builds:manifestVariantIDs:)``.
    public static func json(builds: [BuildRecord], manifestVariantIDs: [String]? = nil) throws -> String {
        let entries = orderedRows(builds: builds, manifestVariantIDs: manifestVariantIDs).map { row in
            switch row {
            case .build(let record): ProvenanceJSON.Build(record)
            case .neverBuilt(let id): ProvenanceJSON.Build(neverBuilt: id)
            }
        }
        return try encodeJSON(ProvenanceJSON.BuildList(builds: entries))
    }

    /// `runs --json`; see ``ProvenanceJSON``.
    public static func json(runs: [RunRecord]) throws -> String {
        try encodeJSON(ProvenanceJSON.RunList(runs: runs.map(ProvenanceJSON.Run.init)))
    }

    /// `show --json`; see ``ProvenanceJSON``.
    public static func json(build: BuildRecord, inputs: [BuildInputRecord], run: RunRecord?) throws -> String {
        try encodeJSON(
            ProvenanceJSON.BuildDetail(
                build: ProvenanceJSON.Build(build), run: run.map(ProvenanceJSON.Run.init),
                inputs: inputs.map(ProvenanceJSON.Input.init)))
    }

    static func encodeJSON(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }
}
