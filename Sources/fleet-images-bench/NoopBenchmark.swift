import FleetImagesCore
import Foundation

/// Issue 7.2: the nightly no-op. 500 variants are built once (sleep-0 builder, not timed as the
/// benchmark); then a second `BuildRunner.run` finds every one up to date and exits. Its time
/// (goal < 1 s) is printed against the anchor of `FleetLoader.load` on the same manifest, the
/// part every command pays before it can decide anything.
struct NoopBenchmark {
    var variants = 500
    var rounds = 3
    /// A release `fleet-images` binary: when it exists, the no-op is also timed as the CLI runs it.
    var binary: String?
    var keep = false

    func run() async throws {
        Report.header("noop: \(variants) up-to-date variants, build decides and exits (issue 7.2)")
        let folder = try TemporaryFolder.make("noop")
        defer { if !keep { TemporaryFolder.remove(folder) } else { print("  kept \(folder)") } }
        // The demo base, a real disk image: the CLI run below reads its OS as the runs in-process do.
        let base = FileManager.default.currentDirectoryPath + "/base/demo-raspios-bookworm-arm64.img.xz"
        guard Files.exists(base) else { throw BenchError("run from the repository root: no \(base)") }
        let fleet = try BenchFleet.make(sites: variants, in: folder, base: .file(path: base, sha256: try Digest.sha256Hex(fileAt: base)))

        func runner(_ builder: SleepBuilder) -> BuildRunner {
            let options = BuildOptions(manifestPath: fleet.manifestPath, parallel: 4, commandLine: "fleet-images-bench noop", environment: [:])
            return BuildRunner(options: options, makeBuilder: { _, _ in builder })
        }
        var first: BuildSummary?
        let firstTime = try await Stopwatch.time { first = try await runner(SleepBuilder(seconds: 0)).run() }
        guard let first, first.status == .succeeded, first.count(.built) == variants else {
            throw BenchError("the first run did not build all \(variants) variants")
        }
        Report.measurement("first run: build \(variants) (sleep-0 builder; set-up, not the benchmark)", seconds: firstTime)

        var noopTimes: [Double] = []
        var loadTimes: [Double] = []
        for _ in 0..<rounds {
            var summary: BuildSummary?
            noopTimes.append(try await Stopwatch.time { summary = try await runner(SleepBuilder(seconds: 3600)).run() })
            guard let summary, summary.status == .succeeded, summary.count(.upToDate) == variants else {
                throw BenchError("a no-op run did not find all \(variants) variants up to date (\(summary?.count(.upToDate) ?? 0))")
            }
            loadTimes.append(Stopwatch.time {
                let outcome = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:])
                precondition(!outcome.hasErrors && outcome.variants.count == variants)
            })
        }
        let best = noopTimes.min()!, worst = noopTimes.max()!, anchor = loadTimes.min()!
        Report.measurement("anchor: FleetLoader.load on the same manifest", seconds: anchor, detail: "best of \(rounds): \(Report.list(loadTimes))")
        Report.measurement("no-op BuildRunner.run (all \(variants) up to date)", seconds: best, detail: "best of \(rounds): \(Report.list(noopTimes))")
        Report.goal("no-op time (worst of \(rounds))", value: Report.format(worst) + " s", goal: "< 1 s", met: worst < 1)
        Report.line("ratio no-op / anchor: \(Report.ratio(best / anchor)) (the decision's cost beyond loading the manifest)")
        try await breakdown(fleet, noopTotal: best)

        if let binary, FileManager.default.isExecutableFile(atPath: binary) {
            // The CLI must find the same state: it was made beside the manifest by the runs above.
            var cliTimes: [Double] = []
            for _ in 0..<rounds {
                cliTimes.append(try Stopwatch.time {
                    try Shell.run(binary, ["build", "--parallel", "4", "--quiet", "-m", fleet.manifestPath])
                })
            }
            Report.measurement("no-op `fleet-images build --parallel 4 --quiet` (process)", seconds: cliTimes.min()!,
                               detail: "best of \(rounds): \(Report.list(cliTimes))")
            Report.goal("no-op CLI time (worst of \(rounds))", value: Report.format(cliTimes.max()!) + " s", goal: "< 1 s", met: cliTimes.max()! < 1)
        }
    }

    /// The no-op's parts, each timed alone with the public API the runner uses: load, plan (every
    /// input file digested), the per-variant up-to-date query; the rest (lock, run row, one
    /// up-to-date row per variant, finishing the run) is the remainder.
    func breakdown(_ fleet: BenchFleet, noopTotal: Double) async throws {
        let state = StateLocation(manifestDirectory: fleet.directory, override: nil)
        var outcome: FleetLoader.Outcome?
        let load = Stopwatch.time { outcome = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:]) }
        guard let outcome, let manifest = outcome.manifest else { throw BenchError("the manifest does not load") }
        let store = try ProvenanceStore.open(at: state.databasePath)
        let key = try StateSecretKey.loadOrCreate(inDirectory: state.directory)
        let os = try await BuildRunner.defaultOSDetection(manifest, state: state, variants: outcome.variants, log: { _ in })
        var plan: Plan?
        let planning = try Stopwatch.time { plan = try Planner(manifest: manifest, environment: [:], secretKey: key).plan(outcome.variants, os: os) }
        var found = 0
        let queries = try Stopwatch.time {
            let builds = try store.latestSuccessfulBuilds(plan!.variants.map { ($0.variant.id, $0.inputsDigest) })
            for planned in plan!.variants {
                if let path = builds[planned.variant.id]?.artifactPath, Files.exists(path) { found += 1 }
            }
        }
        guard found == variants else { throw BenchError("only \(found) of \(variants) variants have a recorded build") }
        Report.line("breakdown (wall seconds, each part alone):")
        Report.measurement("  FleetLoader.load", seconds: load)
        Report.measurement("  Planner.plan (digests of every input)", seconds: planning)
        Report.measurement("  latestSuccessfulBuilds of \(variants) + stat", seconds: queries)
        Report.measurement("  remainder (lock, run row, \(variants) up-to-date rows, finish)", seconds: max(0, noopTotal - load - planning - queries))
    }
}
