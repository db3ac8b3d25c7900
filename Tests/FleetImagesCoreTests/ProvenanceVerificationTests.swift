import Foundation
import Testing
@testable import FleetImagesCore

/// ProvenanceSidecar, the check behind `verify`, with every key kind and padding, against envelopes
/// signed by the openssl tool over a PAE built here by hand, and with each way of failing.
@Suite("Provenance verification", .serialized)
struct ProvenanceVerificationTests {
    static let imageName = "zrh-lab-armhf.img"
    static let size: UInt64 = 2_147_483_648

    /// The fixture build's statement (subject zrh-lab-armhf.img, SHA-256 image2, 2 GiB), unsigned.
    func document() throws -> ProvenanceDocument {
        let folder = try ProvenanceTempDirectory()
        let store = try ProvenanceStore.open(at: folder.file("state.sqlite"))
        let ids = try ProvenanceFixture.populate(store)
        let build = try #require(try store.build(id: ids.zrhArmhf))
        let run = try #require(try store.run(id: build.runID))
        let artifact = ProvenanceFixture.artifact("zrh-lab-armhf", sha256: ProvenanceFixture.sha.image2, size: Int64(Self.size))
        return ProvenanceDocument(run: run, build: build, inputs: try store.inputs(buildID: ids.zrhArmhf), artifact: artifact,
                                  finishedOn: try #require(build.finishedAt))
    }

    /// An envelope around `payload` whose signature the openssl tool made over PAE built here by hand.
    func opensslEnvelope(payloadType: String, payload: [UInt8], privateKey: String, pss: Bool, scratch: SigningScratch) throws -> [UInt8] {
        let pae = Array("DSSEv1 \(payloadType.utf8.count) \(payloadType) \(payload.count) ".utf8) + payload
        let message = try scratch.write("pae.bin", pae)
        try signingTool(["openssl", "dgst", "-sha256", "-sign", privateKey] + (pss ? SigningImageTests.pssOptions : []) + ["-out", message + ".sig", message])
        let signature = try scratch.read("pae.bin.sig")
        let envelope = DSSEEnvelope(payloadType: payloadType, payload: Data(payload).base64EncodedString(),
                                    signatures: [DSSEEnvelope.Signature(keyID: "openssl", sig: Data(signature).base64EncodedString())])
        return try envelope.encoded()
    }

    @Test("an envelope signed by openssl over PAE verifies, with the padding it was made with only",
          arguments: [("rsa2048", RSAPadding.pkcs1), ("rsa2048", .pss), ("p256", .pkcs1), ("p384", .pkcs1)])
    func opensslSignedEnvelopeVerifies(kind: String, padding: RSAPadding) throws {
        let scratch = try SigningScratch()
        let (privateKey, publicKeyPath) = try SigningTestKeys.generate(kind, in: scratch)
        let publicKey = try VerifyingKey.load(contentsOf: publicKeyPath)
        let payload = try document().payload()
        let path = try scratch.write(Self.imageName + ".intoto.json",
                                     try opensslEnvelope(payloadType: ProvenanceDocument.payloadType, payload: payload,
                                                         privateKey: privateKey, pss: padding == .pss, scratch: scratch))
        let statement = try ProvenanceSidecar.verify(at: path, publicKey: publicKey, padding: padding)
        try statement.check(names: [Self.imageName], size: Self.size, sha256: ProvenanceFixture.sha.image2)
        #expect(statement.recordedSize(name: Self.imageName) == Self.size)
        if kind.hasPrefix("rsa") {
            let other: RSAPadding = padding == .pkcs1 ? .pss : .pkcs1
            #expect(throws: ProvenanceSidecar.Failure.self) { try ProvenanceSidecar.verify(at: path, publicKey: publicKey, padding: other) }
        }
        // Another key of the same kind does not verify it.
        let (_, otherPublic) = try SigningTestKeys.generate(kind, in: scratch, name: "other")
        let otherKey = try VerifyingKey.load(contentsOf: otherPublic)
        do {
            _ = try ProvenanceSidecar.verify(at: path, publicKey: otherKey, padding: padding)
            Issue.record("another key verifies the envelope")
        } catch {
            guard case .badSignature = error else { Issue.record("expected badSignature, got \(error)"); return }
        }
    }

    @Test("what build writes verifies, and re-signing keeps the payload byte for byte")
    func writtenDocumentVerifiesAndResigns() throws {
        let scratch = try SigningScratch()
        let (privatePath, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let key = try SigningKey.load(contentsOf: privatePath, passphrase: nil)
        let document = try document()
        let path = try document.write(to: scratch.file(Self.imageName + ".intoto.json"), keyID: key.publicKey.fingerprint) { try key.sign($0, padding: .pkcs1) }
        try ProvenanceSidecar.verify(at: path, publicKey: try VerifyingKey.load(contentsOf: publicPath), padding: .pkcs1)
            .check(names: [Self.imageName], size: Self.size, sha256: ProvenanceFixture.sha.image2)

        let (newPrivate, newPublic) = try SigningTestKeys.generate("p384", in: scratch, name: "rotated")
        let newKey = try SigningKey.load(contentsOf: newPrivate, passphrase: nil)
        try ProvenanceSidecar.resign(at: path, imageName: Self.imageName, size: Self.size, sha256: ProvenanceFixture.sha.image2, key: newKey, padding: .pkcs1)
        let envelope = try ProvenanceSidecar.readEnvelope(at: path)
        #expect(envelope.payload == (try document.payload()))
        #expect(envelope.signatures.map(\.keyID) == [newKey.publicKey.fingerprint])
        _ = try ProvenanceSidecar.verify(at: path, publicKey: try VerifyingKey.load(contentsOf: newPublic), padding: .pkcs1)
        #expect(throws: ProvenanceSidecar.Failure.self) { try ProvenanceSidecar.verify(at: path, publicKey: try VerifyingKey.load(contentsOf: publicPath), padding: .pkcs1) }
        // The statement must be this image's before it is re-signed.
        #expect(throws: ProvenanceSidecar.Failure.self) {
            try ProvenanceSidecar.resign(at: path, imageName: "other.img", size: Self.size, sha256: ProvenanceFixture.sha.image2, key: newKey, padding: .pkcs1)
        }
    }

    @Test("a validly signed envelope still fails on payload type, statement shape and subject, each named")
    func signedButWrong() throws {
        let scratch = try SigningScratch()
        let (privateKey, publicPath) = try SigningTestKeys.generate("p256", in: scratch)
        let publicKey = try VerifyingKey.load(contentsOf: publicPath)
        func failure(payloadType: String = ProvenanceDocument.payloadType, payload: [UInt8]) throws -> ProvenanceSidecar.Failure? {
            let path = try scratch.write("case.intoto.json", try opensslEnvelope(payloadType: payloadType, payload: payload, privateKey: privateKey, pss: false, scratch: scratch))
            do {
                try ProvenanceSidecar.verify(at: path, publicKey: publicKey, padding: .pkcs1)
                    .check(names: [Self.imageName], size: Self.size, sha256: ProvenanceFixture.sha.image2)
                return nil
            } catch { return error }
        }
        let good = try document().payload()
        #expect(try failure(payload: good) == nil)
        guard case .wrongPayloadType(_, "application/json") = try failure(payloadType: "application/json", payload: good) else {
            Issue.record("another payload type is accepted"); return
        }
        guard case .notStatement = try failure(payload: Array(#"{"hello": "world"}"#.utf8)) else { Issue.record("a non-statement is accepted"); return }
        guard case .notStatement = try failure(payload: Array("not json".utf8)) else { Issue.record("a non-JSON payload is accepted"); return }
        var statement = try #require(try JSONSerialization.jsonObject(with: Data(good)) as? [String: Any])
        statement["predicateType"] = "https://slsa.dev/provenance/v0.2"
        guard case .notStatement = try failure(payload: Array(try JSONSerialization.data(withJSONObject: statement))) else {
            Issue.record("a SLSA v0.2 predicate is accepted"); return
        }
        let path = scratch.file("subject.intoto.json")
        try Data(try opensslEnvelope(payloadType: ProvenanceDocument.payloadType, payload: good, privateKey: privateKey, pss: false, scratch: scratch))
            .write(to: URL(fileURLWithPath: path))
        let verified = try ProvenanceSidecar.verify(at: path, publicKey: publicKey, padding: .pkcs1)
        for (names, size, sha, label) in [([Self.imageName], Self.size, String(repeating: "0", count: 64), "another digest"),
                                          ([Self.imageName], Self.size - 1, ProvenanceFixture.sha.image2, "another size"),
                                          (["zrh-lab-arm64.img"], Self.size, ProvenanceFixture.sha.image2, "another name")] {
            do {
                try verified.check(names: names, size: size, sha256: sha)
                Issue.record("\(label) is accepted")
            } catch {
                guard case .subjectMismatch = error else { Issue.record("\(label): \(error)"); continue }
                #expect(error.description.hasPrefix("provenance subject: "))
            }
        }
    }

    @Test("a key repeated in one object is found, after escapes are decoded; strings and nesting do not confuse it")
    func duplicateKeys() {
        func duplicate(_ text: String) -> String? { ProvenanceSidecar.duplicateKey(in: Array(text.utf8)) }
        #expect(duplicate(#"{"payload": "a", "payload": "b"}"#) == "payload")
        #expect(duplicate(#"{"payload": "a", "p\u0061yload": "b"}"#) == "payload")
        #expect(duplicate(#"{"a": {"b": 1, "b": 2}}"#) == "b")
        #expect(duplicate(#"{"a": [{"k": 1}, {"k": 2}], "b": "a"}"#) == nil, "the same key in two objects is no duplicate")
        #expect(duplicate(#"{"a": "{\"a\": 1, \"a\": 2}", "b": ["a", "a"]}"#) == nil, "keys inside strings and values are not keys")
        #expect(duplicate(#"{"a": {"x": 1}, "a": 2}"#) == "a")
        #expect(duplicate(#"{"s\\": 1, "s\\": 2}"#) == "s\\")
        #expect(duplicate(#"[1, "a", {"a": 1}]"#) == nil)
    }
}
