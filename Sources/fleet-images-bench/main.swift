import FleetImagesCore
import Foundation

// fleet-images-bench: the performance benchmarks of issues 2, 5, 7 and 13. Each prints its
// measurements and its ratio against an anchor measured in the same run, with the goal beside it.
// Build in release (`swift build -c release --product fleet-images-bench`); Benchmarks/*.sh wrap it.

let usage = """
usage: fleet-images-bench COMMAND [OPTIONS]

commands:
  manifest    FleetLoader.load on a generated fleet vs JSON decode + certificate parsing (issue 2)
              --sites N (10000)  --rounds N (3)
              --fleet DIR --load-only: FleetLoader.load once on a kept fleet (for perf/callgrind)
  scheduler   sleep-only builder through BuildRunner vs the ideal N × sleep / parallel (issue 7.1)
              --variants N (200)  --parallel N (4)  --sleep S (0.2)
  noop        second run over up-to-date variants vs FleetLoader.load (issue 7.2)
              --variants N (500)  --rounds N (3)  --binary PATH (also time the CLI, when it exists)
  inject      inject builder vs sparse copy + SHA-256 vs xz -d on a Raspberry Pi OS-sized image (issue 5)
              --sites N (4)  --parallel N (2)
  merge       3 shard states merged into one database vs the bare row copy (issue 13)
              --builds N (1000 per shard)  --rounds N (3)  --binary PATH (also time the CLI)
  disk        disk used per variant of the demo base on the file system at --on DIR, vs its changed
              bytes and a full copy; then a second night and prune --keep 1 (issue 13.5)
              --on DIR (required)  --sites N (1000)  --parallel N (2)  --sample N (5)  --base demo|pi (demo)
  e2e         demo fleet: release binary --parallel N vs the sum of single-variant runs (issue 7.3)
              --binary PATH (.build/release/fleet-images)  --demo DIR (.)  --parallel N (2)
  compress    one read that signs, maps and compresses an image vs xz -T2 / zstd -T2 of it (issue 14.1)
              --image demo|pi (demo)  --threads N (2)
  make-fleet  writes a generated fleet on the demo base for scripts (Benchmarks/shard.sh SITES)
              --sites N (60)  --out DIR (must not exist)
  all         every benchmark above but disk, in this order

common options:
  --keep      keep the temporary fleet folders (their paths are printed)

Slow set-up is cached in $FLEET_IMAGES_BENCH_CACHE or ~/.cache/fleet-images-bench: 10,000 claim
certificates (made once, about a minute), the Raspberry Pi OS-sized image and its xz archive (a few minutes).
"""

struct Arguments {
    var command: String
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    init(_ raw: [String]) throws {
        guard let first = raw.first, !first.hasPrefix("-") else { throw BenchError(usage) }
        command = first
        var rest = raw.dropFirst()
        while let word = rest.popFirst() {
            guard word.hasPrefix("--") else { throw BenchError("unexpected argument \(word)\n\n\(usage)") }
            let name = String(word.dropFirst(2))
            if ["keep", "help", "load-only"].contains(name) {
                flags.insert(name)
            } else if let value = rest.popFirst() {
                values[name] = value
            } else {
                throw BenchError("\(word) needs a value\n\n\(usage)")
            }
        }
        if flags.contains("help") { throw BenchError(usage) }
    }

    func int(_ name: String, _ fallback: Int) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), value > 0 else { throw BenchError("--\(name) \(text): expected a positive whole number") }
        return value
    }

    func double(_ name: String, _ fallback: Double) throws -> Double {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text), value >= 0 else { throw BenchError("--\(name) \(text): expected a number ≥ 0") }
        return value
    }

    func string(_ name: String) -> String? { values[name] }
    var keep: Bool { flags.contains("keep") }
    var loadOnly: Bool { flags.contains("load-only") }
}

func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

func runBenchmarks(_ arguments: Arguments) async throws {
    let binary = absolute(arguments.string("binary") ?? ".build/release/fleet-images")
    #if DEBUG
    print("warning: this is a debug build of fleet-images-bench; the numbers mean little. Use -c release.")
    #endif
    let all = arguments.command == "all"
    var ran = false
    if all || arguments.command == "manifest" {
        try ManifestBenchmark(sites: arguments.int("sites", 10_000), rounds: arguments.int("rounds", 3), keep: arguments.keep,
                              fleetFolder: arguments.string("fleet").map(absolute), loadOnly: arguments.loadOnly).run()
        ran = true
    }
    if all || arguments.command == "scheduler" {
        try await SchedulerBenchmark(variants: arguments.int("variants", 200), parallel: arguments.int("parallel", 4),
                                     sleep: arguments.double("sleep", 0.2), keep: arguments.keep).run()
        ran = true
    }
    if all || arguments.command == "noop" {
        try await NoopBenchmark(variants: arguments.int("variants", 500), rounds: arguments.int("rounds", 3),
                                binary: binary, keep: arguments.keep).run()
        ran = true
    }
    if all || arguments.command == "inject" {
        try await InjectBenchmark(sites: arguments.int("sites", 4), parallel: arguments.int("parallel", 2), keep: arguments.keep).run()
        ran = true
    }
    if all || arguments.command == "merge" {
        try await MergeBenchmark(perShard: arguments.int("builds", 1000), rounds: arguments.int("rounds", 3),
                                 binary: binary, keep: arguments.keep).run()
        ran = true
    }
    if all || arguments.command == "compress" {
        try CompressBenchmark(image: arguments.string("image") ?? "demo", threads: arguments.int("threads", 2), keep: arguments.keep).run()
        ran = true
    }
    if arguments.command == "make-fleet" {
        guard let out = arguments.string("out") else { throw BenchError("make-fleet needs --out DIR") }
        let base = FileManager.default.currentDirectoryPath + "/base/demo-raspios-bookworm-arm64.img.xz"
        guard Files.exists(base) else { throw BenchError("run from the repository root: no \(base)") }
        try FileManager.default.createDirectory(atPath: absolute(out), withIntermediateDirectories: false)
        let fleet = try BenchFleet.make(sites: arguments.int("sites", 60), in: absolute(out),
                                        base: .file(path: base, sha256: try Digest.sha256Hex(fileAt: base)))
        print(fleet.manifestPath)
        ran = true
    }
    if arguments.command == "disk" {
        guard let on = arguments.string("on") else { throw BenchError("disk needs --on DIR: a folder on the file system to measure") }
        try await DiskBenchmark(sites: arguments.int("sites", 1000), parallel: arguments.int("parallel", 2), on: absolute(on),
                                sample: arguments.int("sample", 5), base: arguments.string("base") ?? "demo", keep: arguments.keep).run()
        ran = true
    }
    if all || arguments.command == "e2e" {
        try EndToEndBenchmark(binary: binary, demo: absolute(arguments.string("demo") ?? "."),
                              parallel: arguments.int("parallel", 2), keep: arguments.keep).run()
        ran = true
    }
    if !ran { throw BenchError("unknown command \(arguments.command)\n\n\(usage)") }
}

do {
    try await runBenchmarks(Arguments(Array(CommandLine.arguments.dropFirst())))
} catch {
    FileHandle.standardError.write(Data("fleet-images-bench: \(error)\n".utf8))
    exit(1)
}
