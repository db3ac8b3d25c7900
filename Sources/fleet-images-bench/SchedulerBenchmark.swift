import FleetImagesCore
import Foundation

/// Issue 7.1: 200 variants whose builder only sleeps 0.2 s, `--parallel 4`, through the real
/// `BuildRunner` (load, plan, database, signing, recording and placing every tiny image), against
/// the ideal 200 × 0.2 / 4 s. Goal ≤ 1.10.
struct SchedulerBenchmark {
    var variants = 200
    var parallel = 4
    var sleep = 0.2
    var keep = false

    func run() async throws {
        Report.header("scheduler: \(variants) variants, builder sleeps \(sleep) s, --parallel \(parallel) (issue 7.1)")
        let folder = try TemporaryFolder.make("scheduler")
        defer { if !keep { TemporaryFolder.remove(folder) } else { print("  kept \(folder)") } }
        let fleet = try BenchFleet.make(sites: variants, in: folder)

        let timeline = Timeline()
        let seconds = sleep
        var options = BuildOptions(manifestPath: fleet.manifestPath, parallel: parallel, commandLine: "fleet-images-bench scheduler", environment: [:])
        options.force = false
        let runner = BuildRunner(options: options, makeBuilder: { _, _ in SleepBuilder(seconds: seconds) }, detectOS: { _, _, _, _ in .benchBookworm }, events: { timeline.record($0) })
        var summary: BuildSummary?
        let cpuBefore = Stopwatch.processCPU()
        let start = ContinuousClock.now
        let wall = try await Stopwatch.time { summary = try await runner.run() }
        guard let summary, summary.status == .succeeded, summary.count(.built) == variants else {
            throw BenchError("the run did not build all \(variants) variants: \(summary.map { "\($0.status), \($0.count(.built)) built, first error: \($0.variants.first { $0.error != nil }?.error ?? "none")" } ?? "no summary")")
        }
        let cpuPerVariant = (Stopwatch.processCPU() - cpuBefore) / Double(variants)
        let ideal = Double(variants) * sleep / Double(parallel)
        let (firstStart, lastFinish) = timeline.window(since: start)
        Report.measurement("ideal \(variants) × \(sleep) / \(parallel)", seconds: ideal)
        Report.measurement("BuildRunner.run wall time", seconds: wall)
        Report.measurement("  before the first build started (load, plan, base, key)", seconds: firstStart)
        Report.measurement("  first build start → last build finished", seconds: lastFinish - firstStart)
        Report.measurement("  after the last build (finish run)", seconds: wall - lastFinish)
        let perBuildOverhead = (lastFinish - firstStart) * Double(parallel) / Double(variants) - sleep
        Report.line(String(format: "per-variant overhead beyond the sleep (sign, record, place), per slot: %.1f ms; CPU per variant %.1f ms", perBuildOverhead * 1000, cpuPerVariant * 1000))
        Report.goal("ratio wall / ideal", value: Report.ratio(wall / ideal), goal: "≤ 1.10×", met: wall / ideal <= 1.10)
    }
}

/// Collects build events with their times, from any task.
final class Timeline: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var starts: [ContinuousClock.Instant] = []
    private var finishes: [ContinuousClock.Instant] = []
    private(set) var notes: [String] = []

    func record(_ event: BuildEvent) {
        let now = ContinuousClock.now
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .started: starts.append(now)
        case .finished: finishes.append(now)
        case .note(let text): notes.append(text)
        default: break
        }
    }

    /// Seconds from `origin` to the first start and to the last finish.
    func window(since origin: ContinuousClock.Instant) -> (firstStart: Double, lastFinish: Double) {
        lock.lock()
        defer { lock.unlock() }
        let first = starts.min().map { Stopwatch.seconds($0 - origin) } ?? 0
        let last = finishes.max().map { Stopwatch.seconds($0 - origin) } ?? 0
        return (first, last)
    }
}
