import Foundation
import Subprocess
import Testing
@testable import FleetImagesCore

/// A builder for scheduler tests: writes a small image after an optional delay, fails or hangs
/// for chosen variants, and counts how many builds run at once.
final class ScriptedBuilder: ImageBuilder, @unchecked Sendable {
    // @unchecked: counters are touched under `lock` only.
    enum Behaviour: Sendable { case succeed, fail, hang }
    let kind = BuilderKind.inject
    let imageDigest: String? = nil
    let delay: Duration
    let behaviour: @Sendable (String) -> Behaviour
    private let lock = NSLock()
    private var current = 0
    private(set) var maximum = 0
    private(set) var started: [String] = []

    init(delay: Duration = .milliseconds(50), behaviour: @escaping @Sendable (String) -> Behaviour = { _ in .succeed }) {
        self.delay = delay
        self.behaviour = behaviour
    }

    func build(_ job: BuildJob) async throws -> String {
        lock.withLock {
            current += 1
            maximum = max(maximum, current)
            started.append(job.variantID)
        }
        defer { lock.withLock { current -= 1 } }
        switch behaviour(job.variantID) {
        case .fail:
            throw BuildFailure("scripted failure for \(job.variantID)")
        case .hang:
            try await Task.sleep(for: .seconds(3600))
        case .succeed:
            try await Task.sleep(for: delay)
        }
        let image = job.imagePath
        try Data("image of \(job.variantID)\n".utf8).write(to: URL(fileURLWithPath: image))
        return image
    }
}

@Suite(.serialized) struct BuildRunnerTests {
    static func fleet(sites count: Int) throws -> TestFleet {
        let sites = (1...count).map { String(format: "site-%02d", $0) }
        let fleet = try TestFleet(sites: sites)
        try fleet.writeManifest(sites: sites)
        return fleet
    }

    static func runner(_ fleet: TestFleet, parallel: Int, builder: ScriptedBuilder, configure: (inout BuildOptions) -> Void = { _ in }) -> BuildRunner {
        var options = BuildOptions(manifestPath: fleet.manifestPath, parallel: parallel, commandLine: "build (test)", environment: [:])
        configure(&options)
        return BuildRunner(options: options, makeBuilder: { _, _ in builder }, detectOS: { _, _, _, _ in .testBookworm })
    }

    static func outputImages(_ fleet: TestFleet) -> [String] {
        let output = fleet.directory + "/build/images"
        guard let enumerator = FileManager.default.enumerator(atPath: output) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".img") }.sorted()
    }

    static func workLeftovers(_ fleet: TestFleet) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: fleet.directory + "/.fleet-images/work")) ?? []
    }

    @Test func neverMoreThanNAtOnceAndEverythingIsSignedAndRecorded() async throws {
        let fleet = try Self.fleet(sites: 9)
        let builder = ScriptedBuilder(delay: .milliseconds(150))
        let summary = try await Self.runner(fleet, parallel: 3, builder: builder).run()
        #expect(summary.status == .succeeded)
        #expect(summary.count(.built) == 9)
        #expect(builder.maximum <= 3 && builder.maximum >= 2)
        // Every image verifies with the openssl command line against the manifest's public key.
        for result in summary.variants {
            let image = try #require(result.image)
            let output = try runTool("openssl", ["dgst", "-sha256", "-verify", fleet.directory + "/keys/signing.pub.pem", "-signature", image + ".sig", image])
            #expect(output.contains("Verified OK"))
            #expect(FileManager.default.fileExists(atPath: image + ".intoto.json"))
            let latest = fleet.directory + "/build/images/\(result.variant)/latest/\(result.variant).img"
            #expect(FileManager.default.contentsEqual(atPath: latest, andPath: image))
        }
        let rows = try runTool("sqlite3", [fleet.directory + "/.fleet-images/provenance.sqlite", "SELECT status, count(*) FROM build GROUP BY status"])
        #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "succeeded|9")
        #expect(Self.workLeftovers(fleet).isEmpty)

        // A second run finds everything up to date and builds nothing.
        let again = ScriptedBuilder()
        let second = try await Self.runner(fleet, parallel: 3, builder: again).run()
        #expect(second.count(.upToDate) == 9 && again.started.isEmpty)
    }

    @Test func oneFailureDoesNotStopTheOthers() async throws {
        let fleet = try Self.fleet(sites: 5)
        let builder = ScriptedBuilder { $0 == "site-03" ? .fail : .succeed }
        let summary = try await Self.runner(fleet, parallel: 2, builder: builder).run()
        #expect(summary.status == .failed)
        #expect(summary.variants.first { $0.variant == "site-03" }?.status == .failed)
        #expect(summary.variants.first { $0.variant == "site-03" }?.error?.contains("scripted failure") == true)
        #expect(summary.count(.built) == 4)
        #expect(!Self.outputImages(fleet).contains { $0.hasPrefix("site-03/") })
        #expect(Self.workLeftovers(fleet).isEmpty)
        let log = try #require(summary.variants.first { $0.variant == "site-03" }?.log)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("failed: scripted failure"))
    }

    @Test func failFastStopsLaunching() async throws {
        let fleet = try Self.fleet(sites: 6)
        let builder = ScriptedBuilder(delay: .milliseconds(200)) { $0 == "site-01" ? .fail : .succeed }
        let summary = try await Self.runner(fleet, parallel: 1, builder: builder) { $0.failFast = true }.run()
        #expect(summary.status == .failed)
        #expect(builder.started == ["site-01"])
        #expect(summary.count(.skipped) == 5)
    }

    @Test func aHungBuildIsStoppedAtItsTimeout() async throws {
        let fleet = try Self.fleet(sites: 2)
        let builder = ScriptedBuilder { $0 == "site-02" ? .hang : .succeed }
        let summary = try await Self.runner(fleet, parallel: 2, builder: builder) { $0.timeoutSeconds = 3 }.run()
        let hung = try #require(summary.variants.first { $0.variant == "site-02" })
        #expect(hung.status == .failed)
        #expect(hung.error?.contains("timed out after 3 s") == true)
        #expect(summary.variants.first { $0.variant == "site-01" }?.status == .built)
    }

    @Test func cancellationRecordsTheRunAsInterruptedAndPlacesNothing() async throws {
        let fleet = try Self.fleet(sites: 4)
        let builder = ScriptedBuilder { _ in .hang }
        let runner = Self.runner(fleet, parallel: 2, builder: builder)
        let task = Task { try await runner.run() }
        let deadline = Date().addingTimeInterval(30)
        while builder.started.count < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try #require(builder.started.count == 2, "the builds never started")
        task.cancel()
        let summary = try await task.value
        #expect(summary.status == .interrupted)
        #expect(summary.variants.allSatisfy { $0.status == .interrupted })
        #expect(Self.outputImages(fleet).isEmpty)
        #expect(Self.workLeftovers(fleet).isEmpty)
        let runs = try runTool("sqlite3", [fleet.directory + "/.fleet-images/provenance.sqlite", "SELECT status FROM run"])
        #expect(runs.trimmingCharacters(in: .whitespacesAndNewlines) == "interrupted")
    }

    @Test func badManifestWritesNothing() async throws {
        let fleet = try Self.fleet(sites: 1)
        try fleet.writeManifest(sites: ["site-01"]) { $0["fleet"] = "Not A Name" }
        await #expect(throws: BuildRunError.self) {
            try await Self.runner(fleet, parallel: 1, builder: ScriptedBuilder()).run()
        }
        #expect(!FileManager.default.fileExists(atPath: fleet.directory + "/.fleet-images"))
        #expect(!FileManager.default.fileExists(atPath: fleet.directory + "/build"))
    }

    @Test func aSecondRunWhileTheLockIsHeldIsRefused() async throws {
        let fleet = try Self.fleet(sites: 1)
        try FileManager.default.createDirectory(atPath: fleet.directory + "/.fleet-images", withIntermediateDirectories: true)
        let holder = try await RunLock(path: fleet.directory + "/.fleet-images/lock")
        do {
            _ = try await Self.runner(fleet, parallel: 1, builder: ScriptedBuilder()).run()
            Issue.record("the run started although the lock was held")
        } catch BuildRunError.locked(let message) {
            #expect(message.contains("pid \(getpid())"))
        }
        withExtendedLifetime(holder) {}
    }

    /// Cancelling a build that runs a real child process, many times over: the child must be gone each time.
    @Test func cancellingAChildProcessRepeatedlyLeavesNoProcess() async throws {
        let marker = "fleet-images-cancel-\(UUID().uuidString.prefix(8))"
        for _ in 0..<25 {
            let task = Task {
                var options = PlatformOptions()
                options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .milliseconds(500))]
                return try await Subprocess.run(.name("sh"), arguments: ["-c", "exec sleep 30 # \(marker)"],
                                                platformOptions: options, output: .discarded, error: .discarded)
            }
            try await Task.sleep(for: .milliseconds(30))
            task.cancel()
            _ = try? await task.value
        }
        try await Task.sleep(for: .milliseconds(200))
        let survivors = try runProcess("pgrep", ["-f", marker])
        #expect(survivors.stdout.isEmpty, "processes survived cancellation: \(survivors.stdout)")
    }
}
