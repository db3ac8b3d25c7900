import Foundation

/// `<output>/index.html`: one static page of the fleet's state for people (no script, no external
/// asset): every variant's latest build with its status, time, image digest, signing key,
/// claim-certificate expiry (red under 30 days) and Wi-Fi SSID (never the passphrase), links to
/// its files relative to the page, and the last runs. Written after each build and by
/// `fleet-images report`; made from the database and the manifest only.
public enum RunReport {
    /// Claim certificates expiring sooner than this are shown in red.
    public static let expiryWarning: TimeInterval = 30 * 86_400
    public static let fileName = "index.html"

    public static func html(manifest: Manifest, store: ProvenanceStore?, now: Date = Date(), runLimit: Int = 10) throws -> String {
        let variants = Expansion.expand(manifest, overlays: Overlay.scan(manifest: manifest).overlays).variants
        let ids = variants.map(\.id)
        let latest = Dictionary((try store?.latestBuilds(variantIDs: ids) ?? []).map { ($0.variantID, $0) }, uniquingKeysWith: { a, _ in a })
        let images = try store?.latestBuildsWithImages(variantIDs: ids) ?? [:]
        let runs = try store?.runs(limit: runLimit) ?? []
        let expiries = try store?.claimCertificateExpiries(Array(images.values)) ?? [:]
        let output = URL(fileURLWithPath: manifest.directory + "/" + manifest.output.directory).standardizedFileURL.path

        var rows = ""
        var counts: [String: Int] = [:]
        for variant in variants {
            let build = latest[variant.id]
            let status = build?.status.rawValue ?? "never-built"
            counts[status, default: 0] += 1
            let image = images[variant.id]
            var expiry = "<td>-</td>"
            if let id = image?.id, let notAfter = expiries[id] {
                let left = notAfter.timeIntervalSince(now)
                let days = ManifestChecker.calendarDays(from: now, to: notAfter)  // as `validate` counts them
                let label = left < 0 ? "expired \(day(notAfter))" : "\(day(notAfter)) (\(days) day\(days == 1 ? "" : "s"))"
                expiry = "<td class=\"\(left < expiryWarning ? "expiring" : "valid")\" data-not-after=\"\(iso(notAfter))\">\(escape(label))</td>"
            }
            var links: [String] = []
            if let image {
                func link(_ path: String?, _ label: String) {
                    guard let path, FileManager.default.fileExists(atPath: path) else { return }
                    // Recorded paths are absolute and standard already; standardizing is the slow way round.
                    let absolute = path.hasPrefix(output + "/") ? path : URL(fileURLWithPath: path).standardizedFileURL.path
                    guard absolute.hasPrefix(output + "/") else { return }
                    links.append("<a href=\"\(escape(ImagerRepository.percentEncoded(String(absolute.dropFirst(output.count + 1)))))\">\(label)</a>")
                }
                link(image.artifactPath, "image")
                link(image.compressedPath, image.compression.map { "image (\($0.split(separator: " ").first ?? ""))" } ?? "compressed")
                link(image.signaturePath, ".sig")
                link(image.artifactPath.map { $0 + ".sha256" }, ".sha256")
                link(image.blockMapPath, ".bmap")
                link(image.provenancePath, "provenance")
            }
            let error = build?.status == .failed ? (build?.errorMessage).map { "<div class=\"error\">\(escape($0))</div>" } ?? "" : ""
            rows += """
                <tr class="variant" id="variant-\(escape(variant.id))" data-status="\(escape(status))">\
                <td class="name">\(escape(variant.id))</td>\
                <td>\(escape(variant.site))</td>\
                <td class="status status-\(escape(status))">\(escape(status))\(error)</td>\
                <td>\(escape(build.map { time($0.finishedAt ?? $0.startedAt) } ?? "-"))</td>\
                <td>\(escape(build?.duration.map { ProvenanceFormat.duration($0) } ?? "-"))</td>\
                <td class="digest" title="\(escape(image?.artifactSHA256 ?? ""))">\(escape(image?.artifactSHA256.map { String($0.prefix(16)) + "…" } ?? "-"))</td>\
                <td class="key" title="\(escape(image?.signingKeyFingerprint ?? ""))">\(escape(image?.signingKeyFingerprint.map { String($0.prefix(19)) + "…" } ?? "-"))</td>\
                \(expiry)\
                <td class="ssid">\(escape(variant.wifi?.ssid ?? "-"))</td>\
                <td class="files">\(links.joined(separator: " "))</td></tr>

                """
        }
        var runRows = ""
        for run in runs {
            let c = run.counts
            runRows += """
                <tr class="run" data-status="\(escape(run.status.rawValue))"><td>\(run.id.map(String.init) ?? "-")</td>\
                <td>\(escape(time(run.startedAt)))</td><td class="status status-\(escape(run.status.rawValue))">\(escape(run.status.rawValue))</td>\
                <td>\(c.planned) planned, \(c.built) built, \(c.upToDate) up to date, \(c.failed) failed, \(c.skipped) skipped</td>\
                <td>\(escape(run.host))</td><td>\(escape(run.shard ?? "-"))</td></tr>

                """
        }
        let summary = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: " · ")
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(manifest.fleet)): fleet images</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1a1a1a; }
            table { border-collapse: collapse; margin-bottom: 2em; }
            th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
            th { background: #f3f3f3; }
            .digest, .key { font-family: ui-monospace, monospace; font-size: 12px; }
            .status-succeeded, .status-up-to-date { color: #1b5e20; }
            .status-failed, .status-interrupted { color: #b71c1c; font-weight: bold; }
            .status-never-built, .status-pruned, .status-running { color: #6d4c41; }
            .expiring { color: #fff; background: #c62828; font-weight: bold; }
            .error { color: #b71c1c; font-weight: normal; font-size: 12px; }
            </style></head>
            <body>
            <h1>\(escape(manifest.fleet))</h1>
            <p id="summary">\(variants.count) variants: \(escape(summary)). Written \(escape(time(now))) by fleet-images \(escape(FleetImagesVersion.current)).</p>
            <table id="variants"><thead><tr><th>Variant</th><th>Site</th><th>Status</th><th>Finished (UTC)</th><th>Time</th>\
            <th>Image SHA-256</th><th>Signing key</th><th>Claim certificate expires</th><th>Wi-Fi SSID</th><th>Files</th></tr></thead>
            <tbody>
            \(rows)</tbody></table>
            <h2>Last runs</h2>
            <table id="runs"><thead><tr><th>Run</th><th>Started (UTC)</th><th>Outcome</th><th>Variants</th><th>Host</th><th>Shard</th></tr></thead>
            <tbody>
            \(runRows)</tbody></table>
            </body></html>

            """
    }

    /// Writes the page into the output folder (temporary file, rename; mode 0640 and the output group).
    @discardableResult
    public static func write(manifest: Manifest, store: ProvenanceStore?, to path: String? = nil, now: Date = Date()) throws -> String {
        let target = path ?? manifest.directory + "/" + manifest.output.directory + "/" + fileName
        let page = try html(manifest: manifest, store: store, now: now)
        let temporary = (target as NSString).deletingLastPathComponent + "/." + (target as NSString).lastPathComponent + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(page.utf8), attributes: [.posixPermissions: 0o640]) else {
            throw PublishProblem("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        if let group = manifest.output.group.flatMap({ getgrnam($0)?.pointee.gr_gid }) { _ = chown(temporary, getuid(), group) }
        guard rename(temporary, target) == 0 else {
            let problem = String(cString: strerror(errno))
            unlink(temporary)
            throw PublishProblem("cannot write \(target): \(problem)")
        }
        return target
    }

    static func escape(_ text: String) -> String {
        // Most text (ids, digests, dates) has nothing to escape.
        guard text.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else { return text }
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// `yyyy-MM-dd HH:mm:ss` in UTC (by hand: a DateFormatter per row cost a 5,000-variant page a quarter of its time).
    static func time(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    static func day(_ date: Date) -> String { String(time(date).prefix(10)) }

    static func iso(_ date: Date) -> String { ProvenanceFormat.iso8601(date) }
}
