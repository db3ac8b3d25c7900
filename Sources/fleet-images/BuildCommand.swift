import ArgumentParser
import Dispatch
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build, sign and record every variant that is not up to date.",
            discussion: """
            A variant is up to date when a recorded successful build has the same inputs digest and its image is \
            still in place with its recorded size; --force rebuilds anyway. Images land in \
            <output>/<variant>/<time>-<sha>-b<build id>/<variant>.img with .sha256, .sig and .intoto.json beside them, and \
            <output>/<variant>/latest points at the newest. SIGINT/SIGTERM stop the run cleanly (exit 130/143); \
            a second SIGINT exits at once. Exit 0 all built or up to date, 1 a variant failed, 2 bad input, \
            69 a tool is missing, 75 another run holds the lock.
            """)

        @OptionGroup var options: ManifestOptions
        @Option(help: "Build at most this many variants at once (1–64).") var parallel: Int = BuildOptions.defaultParallelism
        @Option(help: "Only variants whose id matches this shell pattern, e.g. 'zrh-*'.") var only: String?
        @Option(help: "Only shard K of N, e.g. 2/8: a stable slice of the fleet by variant id (see `plan --shards`); an empty shard exits 0.") var shard: String?
        @Flag(help: "Rebuild variants that are up to date.") var force = false
        @Flag(help: "Stop launching builds after the first failure.") var failFast = false
        @Flag(help: "Decide what would be built, build nothing.") var dryRun = false
        @Option(help: "Per-variant timeout, e.g. 45m (overrides builder.timeout).") var timeout: String?
        @Option(help: "If another run holds the lock, wait this long for it (e.g. 30m) instead of exiting 75.") var waitLock: String?
        @Option(help: "State folder (database, HMAC key, lock, cache, logs). Default: .fleet-images beside the manifest.") var state: String?
        @Flag(help: "Keep each variant's work folder (for debugging; it may hold keys).") var keepWork = false
        @Flag(help: "Print a JSON summary on standard output.") var json = false
        @Flag(help: "Print only the summary and errors.") var quiet = false

        func validate() throws {
            guard (1...64).contains(parallel) else {
                throw ValidationError("--parallel must be 1 to 64 (got \(parallel)): each build holds a full image copy and a core")
            }
            if let timeout, Names.parseDuration(timeout) == nil { throw ValidationError("--timeout \(timeout): write a duration like 90s, 45m or 2h") }
            if let shard, case .failure(let problem) = Shard.parse(shard) { throw ValidationError("--shard \(problem)") }
            if let waitLock, Names.parseDuration(waitLock) == nil { throw ValidationError("--wait-lock \(waitLock): write a duration like 90s, 45m or 2h") }
        }

        func run() async throws {
            var buildOptions = BuildOptions(manifestPath: options.manifest, statePath: state, parallel: parallel,
                                            commandLine: CommandLine.arguments.dropFirst().joined(separator: " "))
            buildOptions.only = only
            buildOptions.shard = shard.flatMap { try? Shard.parse($0).get() }
            buildOptions.force = force
            buildOptions.failFast = failFast
            buildOptions.dryRun = dryRun
            buildOptions.keepWork = keepWork
            buildOptions.timeoutSeconds = timeout.flatMap(Names.parseDuration)
            buildOptions.waitLockSeconds = waitLock.flatMap(Names.parseDuration) ?? 0
            let progress = ProgressPrinter(quiet: quiet)
            let runner = BuildRunner(options: buildOptions, events: { progress.handle($0) })

            let signals = SignalTrap()
            let task = Task { try await runner.run() }
            signals.onFirst = { task.cancel() }
            let summary: BuildSummary
            do {
                summary = try await task.value
            } catch let error as BuildRunError {
                signals.release()
                progress.stop()
                switch error {
                case .badInput(let diagnostics, let message):
                    Output.diagnostics(diagnostics)
                    if let message { Output.error("error: \(message)") }
                default:
                    Output.error("error: \(error)")
                }
                switch error {
                case .badInput: throw Exit.badInput
                case .unavailable: throw Exit.unavailable
                case .locked: throw Exit.locked
                case .failed: throw Exit.failed
                }
            }
            signals.release()
            progress.stop()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                print(SummaryTable.render(summary))
            }
            switch summary.status {
            case .succeeded: return
            case .failed: throw Exit.failed
            case .interrupted: throw ExitCode(signals.received == SIGTERM ? 143 : 130)
            }
        }
    }
}

/// SIGINT/SIGTERM: the first cancels the run (which tears down builders and records the
/// interruption); a second SIGINT exits at once. Nothing partial is ever in the output folder,
/// because images are placed by rename only when complete.
final class SignalTrap: @unchecked Sendable {
    // @unchecked: all state is touched on `queue` only.
    private let queue = DispatchQueue(label: "fleet-images.signals")
    private var sources: [DispatchSourceSignal] = []
    private var count = 0
    private(set) var received: Int32 = 0
    var onFirst: (@Sendable () -> Void)?

    init() {
        for signo in [SIGINT, SIGTERM] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler { [unowned self] in self.handle(signo) }
            source.resume()
            sources.append(source)
        }
    }

    private func handle(_ signo: Int32) {
        count += 1
        if count == 1 {
            received = signo
            StandardError.write("\nfleet-images: \(signo == SIGINT ? "SIGINT" : "SIGTERM") received; stopping builds (press Ctrl-C again to exit at once)\n")
            onFirst?()
        } else if signo == SIGINT {
            _exit(130)
        }
    }

    func release() {
        queue.sync {
            for source in sources { source.cancel() }
            sources = []
        }
    }
}

/// Progress. On a terminal (unless NO_COLOR or --quiet): a live block with one line per running
/// variant (its phase and elapsed time) and an overall count, redrawn in place, with finished
/// variants printed above it. Otherwise (cron, a pipe): plain timestamped lines, one per event.
final class ProgressPrinter: @unchecked Sendable {
    // @unchecked: all state is touched under `lock`.
    private let lock = NSLock()
    let quiet: Bool
    let live: Bool
    private var running: [(variant: String, phase: String, started: Date)] = []
    private var finished = 0
    private var building = 0
    private var drawnLines = 0
    private var timer: DispatchSourceTimer?

    init(quiet: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.quiet = quiet
        live = !quiet && isatty(STDERR_FILENO) == 1 && environment["NO_COLOR"] == nil && environment["TERM"] != "dumb"
        if live {
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "fleet-images.progress"))
            timer.schedule(deadline: .now() + 1, repeating: 1)
            timer.setEventHandler { [weak self] in self?.redraw() }
            timer.resume()
            self.timer = timer
        }
    }

    deinit { timer?.cancel() }

    func stop() {
        timer?.cancel()
        lock.lock()
        clearBlock()
        lock.unlock()
    }

    func handle(_ event: BuildEvent) {
        if live { handleLive(event) } else { handlePlain(event) }
    }

    private func handlePlain(_ event: BuildEvent) {
        let line: String?
        switch event {
        case .planned(let total, let building): line = quiet ? nil : "\(total) variant\(total == 1 ? "" : "s"), \(building) to build, \(total - building) up to date"
        case .note(let text): line = quiet ? nil : text
        case .started(let variant): line = quiet ? nil : "\(variant): started"
        case .phase(let variant, let text): line = quiet ? nil : "\(variant): \(text)"
        case .finished(let result): line = Self.finishedLine(result, quiet: quiet)
        }
        guard let line else { return }
        let stamp = Date().formatted(.iso8601)
        lock.lock()
        StandardError.write("\(stamp) \(line)\n")
        lock.unlock()
    }

    static func finishedLine(_ result: VariantResult, quiet: Bool) -> String? {
        switch result.status {
        case .failed: return "\(result.variant): FAILED: \(result.error ?? "")" + (result.log.map { " (log: \($0))" } ?? "")
        case .upToDate: return quiet ? nil : "\(result.variant): up to date"
        case .built: return quiet ? nil : "\(result.variant): built \(result.image ?? "")"
        default: return quiet ? nil : "\(result.variant): \(result.status.rawValue)"
        }
    }

    private func handleLive(_ event: BuildEvent) {
        lock.lock()
        defer { lock.unlock() }
        var permanent: String?
        switch event {
        case .planned(_, let count): building = count
        case .note(let text): permanent = text
        case .started(let variant): running.append((variant, "starting", Date()))
        case .phase(let variant, let text):
            if let index = running.firstIndex(where: { $0.variant == variant }) { running[index].phase = text }
        case .finished(let result):
            running.removeAll { $0.variant == result.variant }
            if result.status != .upToDate { finished += 1 }
            permanent = Self.finishedLine(result, quiet: false)
        }
        clearBlock()
        if let permanent { StandardError.write((permanent + "\n")) }
        drawBlock()
    }

    private func redraw() {
        lock.lock()
        clearBlock()
        drawBlock()
        lock.unlock()
    }

    /// Moves the cursor up over the block drawn last and clears to the end of the screen.
    private func clearBlock() {
        guard drawnLines > 0 else { return }
        StandardError.write("\u{1B}[\(drawnLines)F\u{1B}[J")
        drawnLines = 0
    }

    static func columns() -> Int {
        var size = winsize()
        return ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 ? Int(size.ws_col) : 100
    }

    private func drawBlock() {
        guard building > 0 || !running.isEmpty else { return }
        var lines = running.map { entry in
            // One screen row each, or moving the cursor back over the block would miscount.
            String("  \(entry.variant)  \(Int(Date().timeIntervalSince(entry.started)))s  \(entry.phase)".prefix(Self.columns() - 1))
        }
        lines.append("[\(finished)/\(building)] built or failed, \(running.count) running")
        StandardError.write((lines.joined(separator: "\n") + "\n"))
        drawnLines = lines.count
    }
}

enum SummaryTable {
    static func render(_ summary: BuildSummary) -> String {
        let rows = summary.variants.map { v -> [String] in
            [v.variant, v.status.rawValue, v.durationSeconds.map { String(format: "%.1fs", $0) } ?? "-",
             v.sha256.map { String($0.prefix(12)) } ?? "-", v.status == .failed ? (v.error ?? "") : (v.image ?? "")]
        }
        let header = ["VARIANT", "STATUS", "TIME", "SHA256", "IMAGE / ERROR"]
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < 4 { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in i < 4 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) : cell }.joined(separator: "  ")
        }
        var lines = [line(header)] + rows.map(line)
        let counts = [VariantResult.Status.built, .upToDate, .failed, .interrupted, .skipped, .wouldBuild]
            .map { ($0, summary.count($0)) }.filter { $0.1 > 0 }.map { "\($0.1) \($0.0.rawValue)" }
        lines.append("")
        lines.append("run \(summary.runID.map(String.init) ?? "-"): \(summary.status.rawValue), \(counts.joined(separator: ", ")) in \(String(format: "%.1f", summary.durationSeconds)) s")
        return lines.joined(separator: "\n")
    }
}
