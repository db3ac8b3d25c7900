import FleetImagesCore
import Foundation

/// Issue 7.3: the repository's demo fleet built by the release `fleet-images` binary with
/// `--parallel N` in a fresh copy, against the sum of each variant built alone (`--only ID`,
/// one after the other in a second fresh copy). Both pay one base-image decompression (the
/// first single run pays it for the singles), so the ratio isolates what parallel building buys;
/// with N builds at once on enough cores the ideal is 1/N.
struct EndToEndBenchmark {
    var binary: String
    var demo: String
    var parallel = 2
    var keep = false

    static let demoEntries = ["fleet.json", "base", "certs", "keys", "variants", "schema"]

    func run() throws {
        Report.header("e2e: demo fleet, release fleet-images build --parallel \(parallel) vs each variant alone (issue 7.3)")
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("\(binary) is not an executable; build it with `swift build -c release --product fleet-images` or pass --binary")
        }
        guard Files.exists(demo + "/fleet.json") else { throw BenchError("\(demo)/fleet.json not found; run from the repository root or pass --demo DIR") }
        let folder = try TemporaryFolder.make("e2e")
        defer { if !keep { TemporaryFolder.remove(folder) } else { print("  kept \(folder)") } }
        let together = folder + "/together", alone = folder + "/alone"
        for copy in [together, alone] {
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            for entry in Self.demoEntries where Files.exists(demo + "/" + entry) {
                try FileManager.default.copyItem(atPath: demo + "/" + entry, toPath: copy + "/" + entry)
            }
        }
        let outcome = FleetLoader.load(manifestPath: alone + "/fleet.json", environment: ProcessInfo.processInfo.environment)
        guard !outcome.hasErrors, !outcome.variants.isEmpty else {
            throw BenchError("the demo manifest does not load: \(outcome.diagnostics.map(\.description).joined(separator: "; "))")
        }
        let ids = outcome.variants.map(\.id)
        _ = try? Shell.run(binary, ["--version"])  // binary in the page cache for both sides

        var singles: [(String, Double)] = []
        for id in ids {
            let seconds = try Stopwatch.time {
                try Shell.run(binary, ["build", "--parallel", "1", "--only", id, "--quiet", "-m", alone + "/fleet.json"])
            }
            singles.append((id, seconds))
        }
        let together_ = try Stopwatch.time {
            try Shell.run(binary, ["build", "--parallel", "\(parallel)", "--quiet", "-m", together + "/fleet.json"])
        }
        for directory in [together, alone] { try checkBuilt(directory, ids: ids) }

        let sum = singles.map(\.1).reduce(0, +)
        for (id, seconds) in singles {
            Report.measurement("alone: build --only \(id)", seconds: seconds, detail: id == ids.first ? "includes the base decompression" : "")
        }
        Report.measurement("sum of the \(ids.count) single-variant runs", seconds: sum)
        Report.measurement("build --parallel \(parallel) (all \(ids.count), one process)", seconds: together_)
        Report.line("ratio parallel / sum: \(Report.ratio(together_ / sum))   ideal \(Report.ratio(1 / Double(parallel))) with \(parallel) builds at once on \(ProcessInfo.processInfo.activeProcessorCount) cores; speed-up \(Report.ratio(sum / together_))")
    }

    /// Every variant has a signed image behind `latest` (the runs' exit codes were 0 as well).
    func checkBuilt(_ directory: String, ids: [String]) throws {
        for id in ids {
            let image = directory + "/build/images/\(id)/latest/\(id).img"
            guard Files.exists(image), Files.exists(image + ".sig") else { throw BenchError("\(image) or its signature is missing") }
        }
    }
}
