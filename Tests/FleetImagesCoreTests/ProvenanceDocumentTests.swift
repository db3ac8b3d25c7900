import Foundation
import Testing
@testable import FleetImagesCore

/// The `<image>.intoto.json` file: checked with JSONSerialization against the in-toto Statement v1
/// and SLSA Provenance v1 field structure, and its DSSE signature verified by the openssl tool.
@Suite("Provenance documents", .serialized)
struct ProvenanceDocumentTests {
    /// An EC P-256 key made by the openssl tool, and a signing closure that runs `openssl dgst -sign`.
    struct OpenSSLKey {
        let folder: ProvenanceTempDirectory
        var privateKey: String { folder.file("signing.key.pem") }
        var publicKey: String { folder.file("signing.pub.pem") }

        init() throws {
            folder = try ProvenanceTempDirectory()
            let generate = try ProvenanceTool.run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", privateKey])
            #expect(generate.status == 0, "\(generate.stderr)")
            let export = try ProvenanceTool.run("openssl", ["ec", "-in", privateKey, "-pubout", "-out", publicKey])
            #expect(export.status == 0, "\(export.stderr)")
        }

        func sign(_ message: [UInt8]) throws -> [UInt8] {
            let input = folder.file("message.bin")
            let output = folder.file("message.sig")
            try Data(message).write(to: URL(fileURLWithPath: input))
            let result = try ProvenanceTool.run("openssl", ["dgst", "-sha256", "-sign", privateKey, "-out", output, input])
            #expect(result.status == 0, "\(result.stderr)")
            return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
        }

        func verify(_ message: [UInt8], signature: [UInt8]) throws -> Bool {
            let input = folder.file("verify.bin")
            let sig = folder.file("verify.sig")
            try Data(message).write(to: URL(fileURLWithPath: input))
            try Data(signature).write(to: URL(fileURLWithPath: sig))
            let result = try ProvenanceTool.run("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", sig, input])
            return result.status == 0 && result.stdout.contains("Verified OK")
        }
    }

    private func fixtureDocument() throws -> (ProvenanceDocument, RunRecord, BuildRecord, ProvenanceTempDirectory) {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        let ids = try ProvenanceFixture.populate(store)
        let build = try #require(try store.build(id: ids.zrhArmhf))
        let run = try #require(try store.run(id: build.runID))
        let artifact = ProvenanceFixture.artifact("zrh-lab-armhf", sha256: ProvenanceFixture.sha.image2, size: 2_147_483_648)
        let document = ProvenanceDocument(
            run: run, build: build, inputs: try store.inputs(buildID: ids.zrhArmhf), artifact: artifact,
            finishedOn: try #require(build.finishedAt))
        return (document, run, build, folder)
    }

    @Test func paeMatchesTheDSSESpecification() {
        // The example from the DSSE protocol description.
        let pae = ProvenanceDocument.pae(payloadType: "http://example.com/HelloWorld", payload: Array("hello world".utf8))
        #expect(String(decoding: pae, as: UTF8.self) == "DSSEv1 29 http://example.com/HelloWorld 11 hello world")
        // Lengths count bytes, not characters.
        let utf8 = ProvenanceDocument.pae(payloadType: "t", payload: Array("é".utf8))
        #expect(String(decoding: utf8, as: UTF8.self) == "DSSEv1 1 t 2 é")
    }

    @Test func theEnvelopeSignatureVerifiesWithOpenSSLOverThePAE() throws {
        let key = try OpenSSLKey()
        let (document, _, _, folder) = try fixtureDocument()
        let imagePath = folder.file("zrh-lab-armhf.img")
        let path = try document.write(to: ProvenanceDocument.path(forImage: imagePath), keyID: ProvenanceFixture.sha.key, sign: key.sign)
        #expect(path == imagePath + ".intoto.json")
        // Written atomically: no temporary file left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }.isEmpty)

        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("\\/"))
        let envelope = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(Set(envelope.keys) == ["payloadType", "payload", "signatures"])
        #expect(envelope["payloadType"] as? String == "application/vnd.in-toto+json")
        let signatures = try #require(envelope["signatures"] as? [[String: String]])
        #expect(signatures.count == 1)
        #expect(signatures[0]["keyid"] == ProvenanceFixture.sha.key)
        let payloadText = try #require(envelope["payload"] as? String)
        let signatureText = try #require(signatures[0]["sig"])
        let payload = try #require(Data(base64Encoded: payloadText))
        let signature = try #require(Data(base64Encoded: signatureText))

        // PAE built here by hand, independently of ProvenanceDocument.pae.
        let type = "application/vnd.in-toto+json"
        let pae = Array("DSSEv1 \(type.utf8.count) \(type) \(payload.count) ".utf8) + Array(payload)
        #expect(try key.verify(pae, signature: Array(signature)))
        // A changed payload does not verify.
        var tampered = pae
        tampered[tampered.count - 2] ^= 0x01
        #expect(try !key.verify(tampered, signature: Array(signature)))
        // The signature is over the PAE, not the bare payload.
        #expect(try !key.verify(Array(payload), signature: Array(signature)))
    }

    @Test func theStatementHasTheInTotoAndSLSAFields() throws {
        let (document, run, build, _) = try fixtureDocument()
        let payload = try document.payload()
        let statement = try #require(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])

        // in-toto Statement v1: _type, subject (name + digest), predicateType, predicate.
        #expect(statement["_type"] as? String == "https://in-toto.io/Statement/v1")
        #expect(statement["predicateType"] as? String == "https://slsa.dev/provenance/v1")
        let subjects = try #require(statement["subject"] as? [[String: Any]])
        #expect(subjects.count == 1)
        #expect(subjects[0]["name"] as? String == "zrh-lab-armhf.img")
        #expect((subjects[0]["digest"] as? [String: String]) == ["sha256": ProvenanceFixture.sha.image2])
        #expect((subjects[0]["annotations"] as? [String: Any])?["size"] as? Int64 == 2_147_483_648)
        for digest in (subjects[0]["digest"] as? [String: String] ?? [:]).values {
            #expect(digest.count == 64 && digest.allSatisfy(\.isHexDigit))
        }

        // SLSA Provenance v1: buildDefinition (buildType, externalParameters required) and runDetails (builder.id required).
        let predicate = try #require(statement["predicate"] as? [String: Any])
        let definition = try #require(predicate["buildDefinition"] as? [String: Any])
        #expect(definition["buildType"] as? String == "https://fleet-images.invalid/packer-docker/v1")
        let external = try #require(definition["externalParameters"] as? [String: Any])
        #expect(external["variant"] as? String == "zrh-lab-armhf")
        #expect(external["site"] as? String == "zrh-lab")
        #expect((external["matrix"] as? [String: String]) == ["arch": "armhf"])
        let manifest = try #require(external["manifest"] as? [String: Any])
        #expect(manifest["path"] as? String == "fleet.json")
        #expect((manifest["digest"] as? [String: String]) == ["sha256": ProvenanceFixture.sha.manifest])
        let internalParameters = try #require(definition["internalParameters"] as? [String: Any])
        #expect(internalParameters["toolVersion"] as? String == "0.1.0")
        #expect(internalParameters["builderImage"] as? String == build.builderImageDigest)
        let secrets = try #require(internalParameters["secretInputs"] as? [[String: String]])
        #expect(secrets.map { $0["role"] } == ["claim-private-key", "wifi-psk"])
        #expect(secrets.allSatisfy { $0["digest"] == nil })

        let dependencies = try #require(definition["resolvedDependencies"] as? [[String: Any]])
        #expect(dependencies.count == 4)  // certificate, base image, template, builder image; no secrets
        for dependency in dependencies {
            let digest = try #require(dependency["digest"] as? [String: String])
            #expect(digest.keys.sorted() == ["sha256"])
            #expect(dependency["name"] is String)
        }
        let base = try #require(dependencies.first { ($0["annotations"] as? [String: Any])?["role"] as? String == "base-image" })
        #expect((base["uri"] as? String)?.hasPrefix("https://downloads.raspberrypi.com/") == true)
        let certificate = try #require(dependencies.first { ($0["annotations"] as? [String: Any])?["role"] as? String == "claim-certificate" })
        #expect((certificate["annotations"] as? [String: Any])?["certificate_subject"] as? String == "CN=zrh-lab-claim,O=Example Fleet")

        let builderImage = try #require(dependencies.first { ($0["annotations"] as? [String: Any])?["role"] as? String == "builder-image" })
        #expect(builderImage["name"] as? String == build.builderImageDigest)
        #expect((builderImage["digest"] as? [String: String])?["sha256"] == String(repeating: "b", count: 64))

        let details = try #require(predicate["runDetails"] as? [String: Any])
        let builder = try #require(details["builder"] as? [String: Any])
        #expect(builder["id"] as? String == ProvenanceDocument.defaultBuilderID)
        #expect((builder["version"] as? [String: String]) == ["fleet-images": "0.1.0"])
        let metadata = try #require(details["metadata"] as? [String: String])
        #expect(metadata["invocationId"] == "urn:uuid:\(run.uuid)#build-\(build.id!)")
        #expect(metadata["startedOn"] == "2025-06-01T02:00:01.500Z")
        #expect(metadata["finishedOn"] == "2025-06-01T03:05:01.000Z")

        // Canonical: compact, sorted keys, slashes not escaped.
        let text = String(decoding: payload, as: UTF8.self)
        #expect(!text.contains("\\/") && !text.contains("\n"))
        #expect(text.hasPrefix("{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicate\":"))
        #expect(try document.payload() == payload)
    }

    @Test func replacesAnEarlierDocumentAtomically() throws {
        let (document, _, _, folder) = try fixtureDocument()
        let path = folder.file("image.img.intoto.json")
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        try document.write(to: path, keyID: "k") { _ in [0xAB] }
        let envelope = try JSONDecoder().decode(DSSEEnvelope.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(envelope.signatures == [DSSEEnvelope.Signature(keyID: "k", sig: "qw==")])
        #expect(envelope.payloadBytes == (try document.payload()))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o644)
        // A failing signer leaves the earlier file in place and no temporary file.
        struct SignerFailed: Error {}
        #expect(throws: SignerFailed.self) { try document.write(to: path, keyID: "k") { _ in throw SignerFailed() } }
        #expect(try JSONDecoder().decode(DSSEEnvelope.self, from: Data(contentsOf: URL(fileURLWithPath: path))) == envelope)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }.isEmpty)
    }
}
