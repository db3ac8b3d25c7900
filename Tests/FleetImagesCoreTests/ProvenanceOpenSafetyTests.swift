import Foundation
import Testing
@testable import FleetImagesCore

/// Files the store must refuse, and leave exactly as they were.
@Suite("Provenance store refuses files it does not understand", .serialized)
struct ProvenanceOpenSafetyTests {
    private func bytes(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    private func siblings(_ path: String) -> [String] {
        ["-wal", "-shm", "-journal"].filter { FileManager.default.fileExists(atPath: path + $0) }
    }

    @Test func refusesANewerSchemaWithoutTouchingIt() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        try ProvenanceFixture.populate(store)
        try store.close()
        // A newer fleet-images added a migration this binary does not know.
        _ = try ProvenanceTool.sqlite(path, "INSERT INTO grdb_migrations VALUES ('v2-future-columns'); ALTER TABLE build ADD COLUMN future TEXT;")
        #expect(siblings(path).isEmpty)
        let before = try bytes(path)

        let error = #expect(throws: ProvenanceError.self) { try ProvenanceStore.open(at: path) }
        #expect(error == .newerSchema(path: path, unknownMigrations: ["v2-future-columns"]))
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("newer fleet-images") == true)
        #expect(try bytes(path) == before)
    }

    @Test func refusesAFileThatIsNotSQLite() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("fleet.json")
        let content = Data(String(repeating: "{\"format\": 1, \"fleet\": \"demo\"}\n", count: 200).utf8)
        try content.write(to: URL(fileURLWithPath: path))

        let error = #expect(throws: ProvenanceError.self) { try ProvenanceStore.open(at: path) }
        #expect(error == .notADatabase(path: path))
        #expect(error?.description.contains("not an SQLite database") == true)
        #expect(try bytes(path) == content)
        #expect(siblings(path).isEmpty)
    }

    @Test func refusesACorruptDatabaseWithoutTouchingIt() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        try ProvenanceFixture.populate(store)
        try store.close()
        #expect(siblings(path).isEmpty)
        // Keep the 100-byte header, overwrite the rest of page 1 (the schema) with garbage.
        var damaged = try bytes(path)
        for index in 100..<4096 { damaged[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
        try damaged.write(to: URL(fileURLWithPath: path))

        let error = #expect(throws: ProvenanceError.self) { try ProvenanceStore.open(at: path) }
        guard case .corrupt(let reported, _) = error else {
            Issue.record("expected .corrupt, got \(String(describing: error))")
            return
        }
        #expect(reported == path)
        #expect(try bytes(path) == damaged)
    }

    @Test func refusesAnotherProgramsDatabase() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("notes.sqlite")
        _ = try ProvenanceTool.sqlite(path, "CREATE TABLE note (body TEXT); INSERT INTO note VALUES ('keep me');")
        let before = try bytes(path)

        #expect(throws: ProvenanceError.foreignDatabase(path: path, tables: ["note"])) {
            try ProvenanceStore.open(at: path)
        }
        #expect(try bytes(path) == before)
    }

    @Test func explainsAMissingFolder() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("no/such/folder/state.sqlite")
        let error = #expect(throws: ProvenanceError.self) { try ProvenanceStore.open(at: path) }
        guard case .cannotOpen(let reported, _) = error else {
            Issue.record("expected .cannotOpen, got \(String(describing: error))")
            return
        }
        #expect(reported == path)
    }
}
