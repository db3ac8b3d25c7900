import Foundation

/// The text of `fleet-images ls`, `runs` and `show`: pure formatting of records, so the CLI only
/// prints and tests compare against golden files. Times are UTC; no colour, no terminal width.
public enum ProvenanceReport {
    /// Placeholder used in the verification commands when the public key's path is not known.
    public static let publicKeyPlaceholder = "<public-key.pem>"

    /// An aligned table of builds: `VARIANT STATUS FINISHED DURATION SIZE SHA256 SIGNED BUILD`.
    ///
    /// With `manifestVariantIDs`, rows follow the manifest's order and a variant with no build
    /// shows as `never built`; builds of variants no longer in the manifest come last.
    /// Without it, rows keep the order of `builds`.
    public static func table(builds: [BuildRecord], manifestVariantIDs: [String]? = nil) -> String {
        let rows = orderedRows(builds: builds, manifestVariantIDs: manifestVariantIDs)
        if rows.isEmpty { return "No builds recorded.\n" }
        let header = ["VARIANT", "STATUS", "FINISHED (UTC)", "DURATION", "SIZE", "SHA256", "SIGNED", "BUILD"]
        let cells: [[String]] = rows.map { row in
            switch row {
            case .neverBuilt(let variantID):
                return [variantID, "never built", "-", "-", "-", "-", "-", "-"]
            case .build(let build):
                let hasArtifact = build.artifactSHA256 != nil
                return [
                    build.variantID,
                    build.status.rawValue,
                    build.finishedAt.map(ProvenanceFormat.minutes) ?? "-",
                    buildDuration(build).map(ProvenanceFormat.duration) ?? "-",
                    build.artifactSize.map(ProvenanceFormat.size) ?? "-",
                    build.artifactSHA256.map { String($0.prefix(12)) } ?? "-",
                    build.signaturePath != nil ? "yes" : (hasArtifact ? "no" : "-"),
                    build.id.map(String.init) ?? "-",
                ]
            }
        }
        return align(header: header, rows: cells, rightAligned: [3, 4, 7])
    }

    /// An aligned table of runs, newest first as given:
    /// `RUN STATUS STARTED DURATION PLANNED BUILT UP-TO-DATE FAILED SKIPPED HOST SHARD`
    /// (SHARD is `K/N` for `build --shard`, `-` otherwise; a merged run's host gets a `*`).
    public static func runsTable(runs: [RunRecord]) -> String {
        if runs.isEmpty { return "No runs recorded.\n" }
        let header = ["RUN", "STATUS", "STARTED (UTC)", "DURATION", "PLANNED", "BUILT", "UP-TO-DATE", "FAILED", "SKIPPED", "HOST", "SHARD"]
        let cells: [[String]] = runs.map { run in
            [
                run.id.map(String.init) ?? "-",
                run.status.rawValue,
                ProvenanceFormat.minutes(run.startedAt),
                run.finishedAt.map { ProvenanceFormat.duration($0.timeIntervalSince(run.startedAt)) } ?? "-",
                String(run.plannedCount), String(run.builtCount), String(run.upToDateCount),
                String(run.failedCount), String(run.skippedCount),
                run.host + (run.mergedFrom == nil ? "" : "*"),
                run.shard ?? "-",
            ]
        }
        let table = align(header: header, rows: cells, rightAligned: [0, 3, 4, 5, 6, 7, 8])
        guard runs.contains(where: { $0.mergedFrom != nil }) else { return table }
        return table + "* built on that host and brought here by `fleet-images merge` (`fleet-images show` says from where)\n"
    }

    /// Everything recorded about one build, every input with its digest, and the commands that
    /// verify the image.
    public static func showText(
        build: BuildRecord, inputs: [BuildInputRecord], run: RunRecord? = nil, publicKeyPath: String? = nil
    ) -> String {
        var fields: [(String, String)] = []
        func add(_ label: String, _ value: String?) { fields.append((label, value ?? "-")) }
        add("status", build.status.rawValue)
        add("site", build.site)
        let matrix = build.matrix
        add("matrix", matrix.isEmpty ? nil : matrix.keys.sorted().map { "\($0)=\(matrix[$0]!)" }.joined(separator: " "))
        if let run {
            add("run", "\(build.runID) (\(run.status.rawValue), started \(ProvenanceFormat.seconds(run.startedAt)))")
            add("run command", run.commandLine)
            add("manifest", "\(run.manifestPath) (sha256 \(run.manifestSHA256))")
            add("tool", "fleet-images \(run.toolVersion) on \(run.host), pid \(run.pid)")
            if let shard = run.shard { add("shard", shard) }
            if let from = run.mergedFrom {
                add("merged", "from \(from)\(run.mergedAt.map { " at " + ProvenanceFormat.seconds($0) } ?? "")")
            }
        } else {
            add("run", String(build.runID))
        }
        add("builder", build.builder)
        add("builder image", build.builderImageDigest)
        add("inputs digest", build.inputsDigest)
        add("started", ProvenanceFormat.seconds(build.startedAt))
        add("finished", build.finishedAt.map(ProvenanceFormat.seconds))
        add("duration", buildDuration(build).map(ProvenanceFormat.duration))
        add("exit code", build.exitCode.map(String.init))
        add("error", build.errorMessage)
        add("log", build.logPath)
        if let reused = build.reusedBuildID { add("reuses build", String(reused)) }
        add("image", build.artifactPath)
        add("size", build.artifactSize.map { "\(ProvenanceFormat.grouped($0)) bytes (\(ProvenanceFormat.size($0)))" })
        add("sha256", build.artifactSHA256)
        add("signature", build.signaturePath)
        add("signing key", build.signingKeyFingerprint.map { "sha256 \($0)" })
        add("block map", build.blockMapPath)
        if build.compressedPath != nil {
            add("compressed", build.compressedPath)
            add("compressed size", build.compressedSize.map { "\(ProvenanceFormat.grouped($0)) bytes (\(ProvenanceFormat.size($0)))" + (build.compression.map { ", \($0)" } ?? "") })
            add("compressed sha256", build.compressedSHA256)
        }
        add("provenance", build.provenancePath)

        let title = "Build \(build.id.map(String.init) ?? "-") of \(build.variantID)"
        var out = title + "\n"
        let width = fields.map(\.0.count).max() ?? 0
        for (label, value) in fields {
            out += "  " + (label + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + "  " + value + "\n"
        }

        out += "\nInputs (\(inputs.count)):\n"
        if inputs.isEmpty { out += "  none recorded\n" }
        let roleWidth = inputs.map(\.role.rawValue.count).max() ?? 0
        for input in inputs {
            out += "  " + input.role.rawValue.padding(toLength: roleWidth, withPad: " ", startingAt: 0) + "  " + input.name + "\n"
            let indent = "  " + String(repeating: " ", count: roleWidth) + "  "
            out += indent + "\(input.digestKind.rawValue) \(input.digest)\n"
            if let url = input.url { out += indent + "url \(url)\n" }
            if let fingerprint = input.certFingerprint {
                out += indent + "certificate sha256 fingerprint \(fingerprint)\n"
            }
            if let subject = input.certSubject { out += indent + "subject \(subject)\n" }
            if let notAfter = input.certNotAfter { out += indent + "expires \(ProvenanceFormat.seconds(notAfter))\n" }
        }

        out += "\nVerify:\n"
        if let image = build.artifactPath, BuildStatus.withArtifact.contains(build.status) {
            let key = publicKeyPath ?? publicKeyPlaceholder
            let signature = build.signaturePath ?? image + ".sig"
            out += "  openssl dgst -sha256 -verify \(shellQuoted(key)) -signature \(shellQuoted(signature)) \(shellQuoted(image))\n"
            out += "  fleet-images verify \(shellQuoted(image))\n"
        } else {
            out += "  no image to verify (\(build.status.rawValue))\n"
        }
        return out
    }

    // MARK: - Helpers

    /// An up-to-date row took no build time of its own: show none rather than "0ms".
    static func buildDuration(_ build: BuildRecord) -> TimeInterval? {
        build.status == .upToDate ? nil : build.duration
    }

    enum Row {
        case build(BuildRecord)
        case neverBuilt(String)
    }

    static func orderedRows(builds: [BuildRecord], manifestVariantIDs: [String]?) -> [Row] {
        guard let manifestVariantIDs else { return builds.map(Row.build) }
        var byVariant: [String: [BuildRecord]] = [:]
        for build in builds { byVariant[build.variantID, default: []].append(build) }
        var rows: [Row] = []
        var seen = Set<String>()
        for id in manifestVariantIDs where seen.insert(id).inserted {
            if let found = byVariant[id] {
                rows += found.map(Row.build)
            } else {
                rows.append(.neverBuilt(id))
            }
        }
        rows += builds.filter { !seen.contains($0.variantID) }.map(Row.build)
        return rows
    }

    /// Columns separated by two spaces, padded to the widest cell; no trailing spaces.
    static func align(header: [String], rows: [[String]], rightAligned: Set<Int>) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        var out = ""
        for row in all {
            var line = ""
            for (column, cell) in row.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                if column > 0 { line += "  " }
                line += rightAligned.contains(column) ? padding + cell : cell + padding
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// Quotes a path for a shell command line when it needs it.
    static func shellQuoted(_ text: String) -> String {
        if text == publicKeyPlaceholder { return text }  // a placeholder for the reader to replace
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@")
        if !text.isEmpty, text.allSatisfy(safe.contains) { return text }
        return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
