import Foundation
import GRDB
import Testing
@testable import FleetImagesCore

/// An operator runs `ls` while the nightly build writes: two stores on one file stand for the
/// two processes (each has its own SQLite connections and locks).
@Suite("Provenance readers and writers", .serialized)
struct ProvenanceConcurrencyTests {
    final class Observations: @unchecked Sendable {  // written by one thread before a semaphore signal, read after the wait
        var readerWasLate = false
        var writerError: (any Error)?
        var builds = 0
        var reads = 0
        var incompleteBuilds: [Int64] = []
    }

    @Test func aReaderDoesNotWaitForAWriteTransactionAndDoesNotSeeItsHalfBuild() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let writer = try ProvenanceStore.open(at: path)
        let reader = try ProvenanceStore.open(at: path)
        let ids = try ProvenanceFixture.populate(writer)

        let inside = DispatchSemaphore(value: 0)
        let readerDone = DispatchSemaphore(value: 0)
        let writerDone = DispatchSemaphore(value: 0)
        let seen = Observations()
        DispatchQueue.global().async {
            do {
                try writer.pool.write { db in
                    var build = BuildRecord(
                        runID: ids.run2, variantID: "mad-depot-arm64", site: "mad-depot", matrix: [:], builder: "inject",
                        inputsDigest: "4", startedAt: Date(), status: .running)
                    try build.insert(db)
                    for index in 0..<5 {
                        var input = BuildInputRecord(
                            buildID: build.id!, role: .file, name: "files/\(index)", digest: "\(index)", digestKind: .sha256)
                        try input.insert(db)
                        if index == 1 {
                            // Half the build is written: hold the transaction open until the reader is done.
                            inside.signal()
                            if readerDone.wait(timeout: .now() + 20) == .timedOut { seen.readerWasLate = true }
                        }
                    }
                }
            } catch {
                seen.writerError = error
            }
            writerDone.signal()
        }
        inside.wait()
        let during = try reader.builds(filter: BuildFilter(scope: .allHistory))
        let latestDuring = try reader.latestBuild(variantID: "mad-depot-arm64")
        let inputRowsDuring = try reader.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM buildInput")! }
        readerDone.signal()
        writerDone.wait()

        #expect(!seen.readerWasLate, "the reader waited for the writer's transaction")
        #expect(seen.writerError == nil)
        #expect(during.count == 5)
        #expect(latestDuring == nil)
        #expect(inputRowsDuring == 20)  // the fixture's 4 builds × 5 inputs (its up-to-date row adds none)
        let after = try #require(try reader.latestBuild(variantID: "mad-depot-arm64"))
        #expect(try reader.inputs(buildID: after.id!).count == 5)
    }

    @Test func readersSeeEachBuildWithAllItsInputsOrNotAtAll() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let writer = try ProvenanceStore.open(at: path)
        let reader = try ProvenanceStore.open(at: path)
        let run = try writer.beginRun(ProvenanceFixture.runStart(at: Date()))
        let total = 100
        let seen = Observations()
        let writerDone = DispatchSemaphore(value: 0)
        let finished = ProvenanceTestFlag()
        DispatchQueue.global().async {
            do {
                for index in 0..<total {
                    let id = try writer.beginBuild(
                        runID: run,
                        BuildStart(variantID: "v\(index)", site: "s\(index % 7)", builder: "inject", inputsDigest: "\(index)"),
                        inputs: ProvenanceFixture.inputs(site: "s\(index % 7)"))
                    try writer.finishBuild(id: id, .failed("test", exitCode: 1))
                }
            } catch {
                seen.writerError = error
            }
            finished.set()
            writerDone.signal()
        }
        while !finished.isSet {
            let builds = try reader.builds(filter: BuildFilter(scope: .allHistory), limit: 5)
            for build in builds where try reader.inputs(buildID: build.id!).count != 5 {
                seen.incompleteBuilds.append(build.id!)
            }
            seen.reads += 1
        }
        writerDone.wait()
        #expect(seen.writerError == nil)
        #expect(seen.incompleteBuilds.isEmpty)
        #expect(seen.reads > 0)
        #expect(try reader.latestBuilds().count == total)
    }
}

/// A flag set by one thread and polled by another.
final class ProvenanceTestFlag: @unchecked Sendable {  // guarded by the lock
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
