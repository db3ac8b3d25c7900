import Foundation
import Testing
@testable import FleetImagesCore

@Suite("Provenance recovery of interrupted runs", .serialized)
struct ProvenanceRecoveryTests {
    /// The pid of a process that has run and been reaped: certainly gone.
    private func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    @Test func marksRunsOfDeadProcessesInterrupted() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        let host = ProcessInfo.processInfo.hostName
        let dead = try deadPID()
        #expect(!ProvenanceStore.processExists(dead))

        // A run killed with -9 in the middle: one build finished, one still running.
        var start = ProvenanceFixture.runStart(at: ProvenanceFixture.t0, pid: dead)
        start.host = host
        let deadRun = try store.beginRun(start)
        let finished = try store.beginBuild(
            runID: deadRun, BuildStart(variantID: "a", site: "a", builder: "inject", inputsDigest: "1"), inputs: [])
        try store.finishBuild(id: finished, .failed("boom", exitCode: 2))
        let inFlight = try store.beginBuild(
            runID: deadRun, BuildStart(variantID: "b", site: "b", builder: "inject", inputsDigest: "2"), inputs: [])

        // A run of a live process (a real child), one on another host, and this process's own run.
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        try sleeper.run()
        defer {
            // SIGKILL: the test runner may block SIGTERM, and children inherit the mask.
            kill(sleeper.processIdentifier, SIGKILL)
            sleeper.waitUntilExit()
        }
        start.pid = sleeper.processIdentifier
        let liveRun = try store.beginRun(start)
        let liveBuild = try store.beginBuild(
            runID: liveRun, BuildStart(variantID: "c", site: "c", builder: "inject", inputsDigest: "3"), inputs: [])
        var remote = start
        remote.host = "some-other-host"
        remote.pid = dead
        let remoteRun = try store.beginRun(remote)
        var own = start
        own.pid = ProcessInfo.processInfo.processIdentifier
        let ownRun = try store.beginRun(own)

        #expect(try store.recoverInterrupted() == 1)

        #expect(try store.run(id: deadRun)?.status == .interrupted)
        #expect(try store.run(id: deadRun)?.finishedAt != nil)
        #expect(try store.build(id: inFlight)?.status == .interrupted)
        #expect(try store.build(id: inFlight)?.errorMessage?.contains("process \(dead)") == true)
        #expect(try store.build(id: finished)?.status == .failed)
        #expect(try store.run(id: liveRun)?.status == .running)
        #expect(try store.build(id: liveBuild)?.status == .running)
        #expect(try store.run(id: remoteRun)?.status == .running)
        #expect(try store.run(id: ownRun)?.status == .running)
        // `ls` no longer shows the dead build as running.
        #expect(try store.latestBuild(variantID: "b")?.status == .interrupted)
        // Nothing left to recover the second time.
        #expect(try store.recoverInterrupted() == 0)
    }

    @Test func takesTheLivenessCheckFromTheCaller() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        var start = ProvenanceFixture.runStart(at: ProvenanceFixture.t0, pid: 12345)
        start.host = "builder-1"
        let run = try store.beginRun(start)
        #expect(try store.recoverInterrupted(currentHost: "builder-1", isProcessAlive: { _ in true }) == 0)
        #expect(try store.run(id: run)?.status == .running)
        #expect(try store.recoverInterrupted(currentHost: "builder-1", isProcessAlive: { $0 != 12345 }) == 1)
        #expect(try store.run(id: run)?.status == .interrupted)
    }

    @Test("A dead run's succeeded build whose image is missing becomes interrupted; one whose image is there stays")
    func settlesSucceededBuildsWithoutImages() throws {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        var start = ProvenanceFixture.runStart(at: ProvenanceFixture.t0, pid: 12345)
        start.host = "builder-1"
        let run = try store.beginRun(start)
        let image = folder.file("present.img")
        #expect(FileManager.default.createFile(atPath: image, contents: Data([1])))
        let placed = try store.beginBuild(runID: run, BuildStart(variantID: "a", site: "a", builder: "inject", inputsDigest: "1"), inputs: [])
        try store.finishBuild(id: placed, .succeeded(BuildArtifact(path: image, size: 1, sha256: "aa"), provenancePath: nil))
        let ghost = try store.beginBuild(runID: run, BuildStart(variantID: "b", site: "b", builder: "inject", inputsDigest: "2"), inputs: [])
        try store.finishBuild(id: ghost, .succeeded(BuildArtifact(path: folder.file("never-placed.img"), size: 1, sha256: "bb"), provenancePath: nil))

        #expect(try store.recoverInterrupted(currentHost: "builder-1", isProcessAlive: { _ in false }) == 1)
        #expect(try store.build(id: placed)?.status == .succeeded)
        #expect(try store.build(id: placed)?.artifactPath == image)
        let settled = try store.build(id: ghost)
        #expect(settled?.status == .interrupted)
        #expect(settled?.artifactPath == nil && settled?.artifactSHA256 == nil)
        #expect(settled?.errorMessage?.contains("ended before this image was placed") == true)
        #expect(try store.latestSuccessfulBuild(variantID: "b", inputsDigest: "2") == nil)
    }

    @Test("A read-only store reads what was recorded and refuses every write")
    func readOnlyStoreNeverWrites() throws {
        let folder = try ProvenanceTempDirectory()
        #expect(try ProvenanceStore.openReadOnly(at: folder.file("missing.sqlite")) == nil)
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        var start = ProvenanceFixture.runStart(at: ProvenanceFixture.t0, pid: 12345)
        start.host = "builder-1"
        let run = try store.beginRun(start)
        try store.close()

        let reader = try #require(try ProvenanceStore.openReadOnly(at: path))
        #expect(try reader.run(id: run)?.status == .running)
        #expect(throws: (any Error).self) {
            try reader.recoverInterrupted(currentHost: "builder-1", isProcessAlive: { _ in false })
        }
        #expect(try reader.run(id: run)?.status == .running)
    }
}
