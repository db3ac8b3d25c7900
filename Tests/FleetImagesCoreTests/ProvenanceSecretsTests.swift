import Foundation
import Testing
@testable import FleetImagesCore

@Suite("Provenance secrets", .serialized)
struct ProvenanceSecretsTests {
    @Test func createsThePrivateKeyOnceWithMode0600() throws {
        let folder = try ProvenanceTempDirectory()
        let key = try StateSecretKey.loadOrCreate(inDirectory: folder.path)
        #expect(key.count == 32)
        #expect(Set(key).count > 8)  // not all zeros or a constant
        let path = folder.file("secret.key")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(key))
        #expect(try StateSecretKey.loadOrCreate(inDirectory: folder.path) == key)

        let other = try ProvenanceTempDirectory()
        #expect(try StateSecretKey.loadOrCreate(inDirectory: other.path) != key)
    }

    @Test func racingCreatorsAllGetTheSameKey() throws {
        let folder = try ProvenanceTempDirectory()
        final class Results: @unchecked Sendable {  // guarded by the lock
            let lock = NSLock()
            var keys: [[UInt8]] = []
            var errors: [String] = []
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do {
                let key = try StateSecretKey.loadOrCreate(inDirectory: folder.path)
                results.lock.withLock { results.keys.append(key) }
            } catch {
                results.lock.withLock { results.errors.append("\(error)") }
            }
        }
        #expect(results.errors.isEmpty)
        #expect(results.keys.count == 8)
        #expect(Set(results.keys).count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["secret.key"])
    }

    @Test func refusesAKeyOthersCanRead() throws {
        let folder = try ProvenanceTempDirectory()
        _ = try StateSecretKey.loadOrCreate(inDirectory: folder.path)
        let path = folder.file("secret.key")
        #expect(chmod(path, 0o640) == 0)
        let error = #expect(throws: ProvenanceError.self) { try StateSecretKey.loadOrCreate(inDirectory: folder.path) }
        #expect(error == .secretKeyExposed(path: path, mode: UInt32(S_IFREG | 0o640)))
        #expect(error?.description.contains("chmod 600 \(path)") == true)
    }

    @Test func refusesAKeyOfTheWrongSizeWithoutReplacingIt() throws {
        let folder = try ProvenanceTempDirectory()
        let path = folder.file("secret.key")
        let short = Data(repeating: 7, count: 16)
        #expect(FileManager.default.createFile(atPath: path, contents: short, attributes: [.posixPermissions: 0o600]))
        #expect(throws: ProvenanceError.secretKeyInvalid(path: path, detail: "16 bytes, expected 32")) {
            try StateSecretKey.loadOrCreate(inDirectory: folder.path)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == short)
    }

    /// The store, its write-ahead log and the provenance file hold HMACs of the secrets, never
    /// the secrets, their plain SHA-256, or the HMAC key.
    @Test func secretsAppearNowhereInTheDatabaseFiles() throws {
        let folder = try ProvenanceTempDirectory()
        let key = try StateSecretKey.loadOrCreate(inDirectory: folder.path)
        let keyHex = key.map { String(format: "%02x", $0) }.joined()
        let passphrase = "Horse-Battery-Staple-\(UInt32.random(in: 100_000...999_999))"
        let privateKey = "-----BEGIN PRIVATE KEY-----\n\(Data((0..<48).map { _ in UInt8.random(in: 0...255) }).base64EncodedString())\n-----END PRIVATE KEY-----\n"

        // HMACs computed by openssl, as the planner will compute them with the same key.
        func hmac(_ content: String) throws -> String {
            let result = try ProvenanceTool.run("openssl", ["dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:\(keyHex)"], stdin: Array(content.utf8))
            #expect(result.status == 0, "\(result.stderr)")
            return String(try #require(result.stdout.split(separator: " ").last)).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func sha256(_ content: String) throws -> String {
            let result = try ProvenanceTool.run("openssl", ["dgst", "-sha256"], stdin: Array(content.utf8))
            return String(try #require(result.stdout.split(separator: " ").last)).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let pskHMAC = try hmac(passphrase)
        let keyHMAC = try hmac(privateKey)
        #expect(pskHMAC.count == 64 && keyHMAC.count == 64 && pskHMAC != keyHMAC)

        let path = folder.file("state.sqlite")
        let store = try ProvenanceStore.open(at: path)
        let run = try store.beginRun(ProvenanceFixture.runStart(at: Date()))
        for site in ["zrh-lab", "ber-office", "mad-depot"] {
            let build = try store.beginBuild(
                runID: run, BuildStart(variantID: site, site: site, builder: "inject", inputsDigest: "0"),
                inputs: [
                    BuildInput(role: .wifiPSK, name: "env:WIFI_PSK", digest: pskHMAC, digestKind: .hmacSHA256),
                    BuildInput(role: .claimPrivateKey, name: "certs/\(site)/claim.private.pem.key", digest: keyHMAC, digestKind: .hmacSHA256),
                ])
            try store.finishBuild(
                id: build,
                .succeeded(ProvenanceFixture.artifact(site, sha256: ProvenanceFixture.sha.image1, size: 1), provenancePath: nil))
        }
        let record = try #require(try store.latestBuild(variantID: "zrh-lab"))
        let document = ProvenanceDocument(
            run: try #require(try store.run(id: run)), build: record, inputs: try store.inputs(buildID: record.id!),
            artifact: ProvenanceFixture.artifact("zrh-lab", sha256: ProvenanceFixture.sha.image1, size: 1), finishedOn: Date())
        let provenancePath = try document.write(to: folder.file("zrh-lab.img.intoto.json"), keyID: "test") { _ in [1, 2, 3] }

        // The store is still open: its write-ahead log holds the recent pages.
        let files = [path, path + "-wal", path + "-shm", provenancePath].filter { FileManager.default.fileExists(atPath: $0) }
        #expect(files.contains(path + "-wal"))
        let contents = try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let database = contents.dropLast().reduce(Data(), +)
        // Positive control: the search does find what is meant to be there.
        #expect(database.range(of: Data(pskHMAC.utf8)) != nil)
        #expect(database.range(of: Data("env:WIFI_PSK".utf8)) != nil)

        let forbidden: [(String, Data)] = [
            ("the passphrase", Data(passphrase.utf8)),
            ("the private key", Data(privateKey.utf8)),
            ("the private key's base64 body", Data(privateKey.split(separator: "\n")[1].utf8)),
            ("the passphrase's plain SHA-256", Data(try sha256(passphrase).utf8)),
            ("the HMAC key", Data(key)),
            ("the HMAC key in hex", Data(keyHex.utf8)),
        ]
        for (file, content) in zip(files, contents) {
            for (what, bytes) in forbidden {
                #expect(content.range(of: bytes) == nil, "\(what) found in \(file)")
            }
        }
        // Nor the secrets' digests in the portable provenance document.
        #expect(contents.last!.range(of: Data(pskHMAC.utf8)) == nil)
    }
}

extension ProvenanceSecretsTests {
    @Test func namesTheKeyPathWhenItsFolderIsMissing() throws {
        let folder = try ProvenanceTempDirectory()
        let missing = folder.file("absent")
        let error = #expect(throws: ProvenanceError.self) { try StateSecretKey.loadOrCreate(inDirectory: missing) }
        #expect(error == .io(path: missing + "/secret.key", operation: "create", errno: ENOENT))
        #expect(error?.description == "\(missing)/secret.key: create failed: No such file or directory")
    }
}
