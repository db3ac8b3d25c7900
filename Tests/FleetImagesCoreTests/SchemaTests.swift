import Foundation
import Testing
@testable import FleetImagesCore

/// The published JSON Schema and the decoder must agree: every manifest in the repository is
/// valid for both, and every bad manifest in schema/bad/ is rejected by both.
@Suite(.serialized) struct SchemaTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var goodManifests: [String] {
        let examples = (try? FileManager.default.contentsOfDirectory(atPath: repository.path + "/examples")) ?? []
        return ["fleet.json"] + examples.sorted().map { "examples/\($0)/fleet.json" }
            .filter { FileManager.default.fileExists(atPath: repository.path + "/" + $0) }
    }

    static var badManifests: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: repository.path + "/schema/bad")) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    }

    @Test func schemaAcceptsTheRepositoryManifestsAndRejectsTheBadOnes() throws {
        let result = try runProcess("python3", [Self.repository.path + "/scripts/check-schema.py"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("\(Self.goodManifests.count) manifests valid, \(Self.badManifests.count) bad manifests rejected"))
    }

    @Test(arguments: goodManifests) func repositoryManifestValidatesWithTheDecoder(_ relative: String) {
        let outcome = FleetLoader.load(manifestPath: Self.repository.path + "/" + relative, environment: [:])
        #expect(!outcome.hasErrors, "\(outcome.diagnostics.map(\.description).joined(separator: "\n"))")
        #expect(!outcome.variants.isEmpty)
    }

    /// Each example carries copies of the shared files (a manifest may not reach outside its folder).
    @Test func examplesCarryCurrentCopiesOfTheSharedFiles() throws {
        let result = try runProcess(Self.repository.path + "/scripts/sync-examples.sh", ["--check"])
        #expect(result.status == 0, "stale copies; run scripts/sync-examples.sh:\n\(result.stdout)\(result.stderr)")
    }

    @Test func thereAreEnoughBadManifests() {
        #expect(Self.badManifests.count >= 10)
    }

    /// Shape errors come from the reader; the few the schema encodes but the reader leaves to
    /// expansion (endpoints against the merged region, hostname patterns) come from `Expansion`.
    @Test(arguments: badManifests) func decoderRejectsWhatTheSchemaRejects(_ name: String) throws {
        let path = Self.repository.path + "/schema/bad/" + name
        let (manifest, readDiagnostics) = ManifestReader.read(data: try Data(contentsOf: URL(fileURLWithPath: path)), filePath: path)
        var diagnostics = readDiagnostics
        if let manifest { diagnostics += Expansion.expand(manifest).diagnostics }
        #expect(diagnostics.contains { $0.severity == .error }, "\(name) was accepted by the decoder")
    }
}
