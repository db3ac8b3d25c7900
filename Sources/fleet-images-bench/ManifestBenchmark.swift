import FleetImagesCore
import Foundation

/// Issue 2: `FleetLoader.load` (read, expand, check everything including certificate parsing and
/// the key match) on a 10,000-site manifest, against the anchor of reading and decoding the same
/// JSON with `JSONSerialization` plus parsing every claim certificate with `CertificateInfo.load`.
/// Goals: under 1 s, and at most 3× the anchor.
///
/// Both sides are single-threaded, so besides wall time each is given in CPU time (user + system
/// of this process): on a machine shared with other work that is what the wall time would be on
/// a quiet one. The ratio is printed for both.
struct ManifestBenchmark {
    var sites = 10_000
    var rounds = 3
    var keep = false
    /// An existing fleet folder (from `--keep`) instead of a generated one.
    var fleetFolder: String?
    /// Only run `FleetLoader.load` once (for a profiler).
    var loadOnly = false

    func run() throws {
        let fleet: BenchFleet
        var madeFolder: String?
        if let fleetFolder {
            let count = (try? FileManager.default.contentsOfDirectory(atPath: fleetFolder + "/certs").count) ?? 0
            fleet = BenchFleet(directory: fleetFolder, siteIDs: (1...max(1, count)).map(BenchFleet.siteID))
        } else {
            let folder = try TemporaryFolder.make("manifest")
            madeFolder = folder
            fleet = try BenchFleet.make(sites: sites, in: folder)
        }
        defer {
            if let madeFolder {
                if keep { print("  kept \(madeFolder)") } else { TemporaryFolder.remove(madeFolder) }
            }
        }
        Report.header("manifest: validate + expand \(fleet.siteIDs.count) sites (issue 2)")
        if loadOnly {
            let time = try Stopwatch.measure { _ = try load(fleet) }
            Report.measurement("FleetLoader.load, once", seconds: time.wall, detail: "CPU \(Report.format(time.cpu)) s")
            return
        }
        let certificates = fleet.certificatePaths
        Report.line("\(fleet.siteIDs.count) sites, \(certificates.count) distinct claim certificates + keys (EC P-256), Wi-Fi passphrase file per site; fleet.json \(Report.bytes(Files.size(fleet.manifestPath)))")

        // Warm-up (page cache, lazy OpenSSL and Foundation set-up), then alternate; best of `rounds`.
        try anchor(fleet.manifestPath, certificates)
        _ = try load(fleet)
        var anchorTimes: [(wall: Double, cpu: Double)] = []
        var loadTimes: [(wall: Double, cpu: Double)] = []
        for _ in 0..<rounds {
            anchorTimes.append(try Stopwatch.measure { try anchor(fleet.manifestPath, certificates) })
            loadTimes.append(try Stopwatch.measure { _ = try load(fleet) })
        }
        let anchorWall = anchorTimes.map(\.wall).min()!, anchorCPU = anchorTimes.map(\.cpu).min()!
        let loadWall = loadTimes.map(\.wall).min()!, loadCPU = loadTimes.map(\.cpu).min()!
        Report.measurement("anchor: JSONSerialization read+decode + \(certificates.count) × CertificateInfo.load", seconds: anchorWall,
                           detail: "CPU \(Report.format(anchorCPU)) s; walls \(Report.list(anchorTimes.map(\.wall)))")
        Report.measurement("FleetLoader.load (read + expand + full check)", seconds: loadWall,
                           detail: "CPU \(Report.format(loadCPU)) s; walls \(Report.list(loadTimes.map(\.wall)))")
        try breakdown(fleet, certificates)
        Report.goal("validate+expand time (wall)", value: Report.format(loadWall) + " s", goal: "< 1 s", met: loadWall < 1)
        Report.goal("validate+expand time (CPU)", value: Report.format(loadCPU) + " s", goal: "< 1 s", met: loadCPU < 1)
        Report.goal("ratio FleetLoader.load / anchor (wall)", value: Report.ratio(loadWall / anchorWall), goal: "≤ 3.00×", met: loadWall / anchorWall <= 3)
        Report.goal("ratio FleetLoader.load / anchor (CPU)", value: Report.ratio(loadCPU / anchorCPU), goal: "≤ 3.00×", met: loadCPU / anchorCPU <= 3)
    }

    /// The bare floor: bytes to a Foundation JSON tree, plus every certificate parsed.
    func anchor(_ manifestPath: String, _ certificates: [String]) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        let tree = try JSONSerialization.jsonObject(with: data)
        guard let top = tree as? [String: Any], let sites = top["sites"] as? [Any], sites.count == certificates.count else {
            throw BenchError("the anchor did not decode \(certificates.count) sites")
        }
        for path in certificates { _ = try CertificateInfo.load(contentsOf: path) }
    }

    /// The measured path, checked: no errors, every site expanded.
    func load(_ fleet: BenchFleet) throws -> FleetLoader.Outcome {
        let outcome = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:])
        guard !outcome.hasErrors, outcome.variants.count == fleet.siteIDs.count else {
            let shown = outcome.diagnostics.prefix(10).map(\.description).joined(separator: "\n    ")
            throw BenchError("FleetLoader.load gave \(outcome.variants.count) variants and \(outcome.diagnostics.count) diagnostics, e.g.\n    \(shown)")
        }
        return outcome
    }

    /// Where FleetLoader.load's time goes, stage by stage (CPU seconds, one pass each), next to the anchor's parts.
    func breakdown(_ fleet: BenchFleet, _ certificates: [String]) throws {
        var parts: [(String, Double)] = []
        let data = try Data(contentsOf: URL(fileURLWithPath: fleet.manifestPath))
        parts.append(("anchor part: JSONSerialization.jsonObject", Stopwatch.measure { _ = try? JSONSerialization.jsonObject(with: data) }.cpu))
        parts.append(("anchor part: \(certificates.count) × CertificateInfo.load", try Stopwatch.measure {
            for path in certificates { _ = try CertificateInfo.load(contentsOf: path) }
        }.cpu))
        parts.append(("JSONValue.parse (the reader's JSON tree)", Stopwatch.measure { _ = try? JSONValue.parse(data) }.cpu))
        var manifest: Manifest?
        parts.append(("ManifestReader.read (JSON + shape checks)", Stopwatch.measure { manifest = ManifestReader.read(path: fleet.manifestPath).manifest }.cpu))
        guard let manifest else { throw BenchError("the manifest does not read") }
        var overlays: [String: [FileEntry]] = [:]
        parts.append(("Overlay.scan", Stopwatch.measure { overlays = Overlay.scan(manifest: manifest).overlays }.cpu))
        var variants: [Variant] = []
        parts.append(("Expansion.expand", Stopwatch.measure { variants = Expansion.expand(manifest, overlays: overlays).variants }.cpu))
        parts.append(("ManifestChecker.check (files, secrets, certificates, keys)", Stopwatch.measure {
            _ = ManifestChecker(manifest: manifest, environment: [:]).check(variants)
        }.cpu))
        let keyPaths = certificates.map { ($0 as NSString).deletingLastPathComponent + "/claim.private.pem.key" }
        let infos = try certificates.map { try CertificateInfo.load(contentsOf: $0) }
        parts.append(("  of which \(certificates.count) × CertificateInfo.matches(privateKeyAt:)", try Stopwatch.measure {
            for (info, key) in zip(infos, keyPaths) { _ = try info.matches(privateKeyAt: key, passphrase: nil) }
        }.cpu))
        Report.line("breakdown (CPU seconds, one pass each):")
        for (name, seconds) in parts { Report.measurement("  " + name, seconds: seconds) }
    }
}
