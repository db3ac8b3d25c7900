import Foundation
import Testing

// Issue 11, item 2 (and the missing-image part of 13): what `verify` promises about the provenance
// file, each fault made for real (the file changed byte by byte, re-written under the old
// signature, swapped for another image's, replaced by garbage, removed) and each outcome checked
// with independent tools: openssl over the DSSE PAE bytes built here from the specification,
// exit codes and the output text.

/// Copies the shared demo build's `zrh-lab` image and its three sidecars into a fresh folder.
func copyOfBuiltImage(_ fleet: DemoFleet, variant: String = "zrh-lab", into folder: String) throws -> String {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    for suffix in OutputCheck.sidecars {
        try tool("cp", ["--sparse=always", fleet.output + "/\(variant)/latest/\(variant)" + suffix, folder + "/\(variant)" + suffix])
    }
    return folder + "/\(variant).img"
}

/// The DSSE envelope in a provenance file, as plain JSON.
func readEnvelope(_ path: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw CLITestFailure("\(path) is not a JSON object")
    }
    return object
}

/// DSSE v1 pre-authentication encoding, written out here from the DSSE specification (not the product's code).
func dssePAE(type: String, payload: Data) -> Data {
    Data("DSSEv1 \(type.utf8.count) \(type) \(payload.count) ".utf8) + payload
}

/// Whether `openssl dgst -sha256 -verify` accepts `signature` over `message` by `publicKey`.
func opensslAccepts(publicKey: String, message: Data, signature: Data, scratch: String) throws -> Bool {
    let messagePath = scratch + "/pae-\(UUID().uuidString.prefix(8))"
    let signaturePath = messagePath + ".sig"
    try message.write(to: URL(fileURLWithPath: messagePath))
    try signature.write(to: URL(fileURLWithPath: signaturePath))
    defer {
        try? FileManager.default.removeItem(atPath: messagePath)
        try? FileManager.default.removeItem(atPath: signaturePath)
    }
    let outcome = try run("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", signaturePath, messagePath])
    return outcome.exited && outcome.status == 0 && outcome.stdout.contains("Verified OK")
}

/// The envelope's payload type, payload bytes and first signature bytes.
func envelopeParts(_ envelope: [String: Any]) throws -> (type: String, payload: Data, signature: Data) {
    guard let type = envelope["payloadType"] as? String,
          let payload = (envelope["payload"] as? String).flatMap({ Data(base64Encoded: $0) }),
          let signature = ((envelope["signatures"] as? [[String: Any]])?.first?["sig"] as? String).flatMap({ Data(base64Encoded: $0) })
    else { throw CLITestFailure("not a DSSE envelope: \(envelope.keys.sorted())") }
    return (type, payload, signature)
}

/// Replaces the byte at `offset` of a file with `byte`.
func setByte(in path: String, at offset: Int, to byte: UInt8) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: Data([byte]))
}

/// One base64 character standing for another at the same place: the file stays a well-formed envelope.
func otherBase64Character(_ byte: UInt8) -> UInt8 {
    byte == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
}

extension CLITests {
    @Suite("Fault promises: verify") struct VerifyPromises {
        let shared: SharedDemoBuild
        let scratch: String
        var fleet: DemoFleet { shared.fleet }
        var publicKey: String { fleet.directory + "/keys/demo-signing.pub.pem" }

        init() throws {
            shared = try SharedDemoBuild.get()
            scratch = NSTemporaryDirectory() + "fleet-images-cli-verify-faults-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        }

        func copy(_ name: String, variant: String = "zrh-lab") throws -> String {
            try copyOfBuiltImage(fleet, variant: variant, into: scratch + "/" + name)
        }

        @Test("verify accepts the image build made, whose provenance openssl verifies over PAE(payloadType, payload)")
        func acceptsTheBuiltImage() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let image = try copy("untouched")
            let parts = try envelopeParts(try readEnvelope(image + ".intoto.json"))
            #expect(parts.type == "application/vnd.in-toto+json")
            #expect(try opensslAccepts(publicKey: publicKey, message: dssePAE(type: parts.type, payload: parts.payload),
                                       signature: parts.signature, scratch: scratch),
                    "openssl does not accept the provenance signature build wrote")
            let outcome = try fleet.cli(["verify", image])
            #expect(outcome.exited && outcome.status == 0, "\(outcome)")
            #expect(outcome.stdout.contains("OK") && outcome.stdout.contains("provenance zrh-lab.img.intoto.json signed by the same key"), "\(outcome.stdout)")
            let explicitKey = try fleet.cli(["verify", image, "--key", publicKey])
            #expect(explicitKey.exited && explicitKey.status == 0, "\(explicitKey)")
        }

        @Test("verify refuses a provenance statement rewritten under its old signature")
        func refusesARewrittenStatement() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let image = try copy("forged")
            let path = image + ".intoto.json"
            var envelope = try readEnvelope(path)
            let parts = try envelopeParts(envelope)
            // The forgery: another build host, every dependency digest zeroed; subject and signature kept.
            guard var statement = try JSONSerialization.jsonObject(with: parts.payload) as? [String: Any],
                  var predicate = statement["predicate"] as? [String: Any],
                  var definition = predicate["buildDefinition"] as? [String: Any],
                  var parameters = definition["internalParameters"] as? [String: Any],
                  let dependencies = definition["resolvedDependencies"] as? [[String: Any]], !dependencies.isEmpty
            else { throw CLITestFailure("the statement lacks the fields the forgery rewrites") }
            #expect(parameters["host"] is String)
            parameters["host"] = "attacker.example"
            definition["internalParameters"] = parameters
            definition["resolvedDependencies"] = dependencies.map { dependency in
                var changed = dependency
                changed["digest"] = ["sha256": String(repeating: "0", count: 64)]
                return changed
            }
            predicate["buildDefinition"] = definition
            statement["predicate"] = predicate
            let forged = try JSONSerialization.data(withJSONObject: statement, options: [.sortedKeys, .withoutEscapingSlashes])
            #expect(forged != parts.payload)
            envelope["payload"] = forged.base64EncodedString()
            try JSONSerialization.data(withJSONObject: envelope, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                .write(to: URL(fileURLWithPath: path))

            // openssl agrees: the old signature covers the old statement, not the forged one.
            #expect(try opensslAccepts(publicKey: publicKey, message: dssePAE(type: parts.type, payload: parts.payload), signature: parts.signature, scratch: scratch))
            #expect(!(try opensslAccepts(publicKey: publicKey, message: dssePAE(type: parts.type, payload: forged), signature: parts.signature, scratch: scratch)))

            let outcome = try fleet.cli(["verify", image])
            #expect(outcome.exited && outcome.status == 1, "a forged statement is accepted: \(outcome)")
            #expect(outcome.stderr.contains("FAILED") && outcome.stderr.contains("provenance signature: no DSSE signature in \(path) verifies with key SHA256:"),
                    "the failed check is not named: \(outcome.stderr)")
            #expect(!outcome.stdout.contains("OK"), "\(outcome.stdout)")
            // The image and its own signature are intact: only the provenance check fails.
            #expect(!outcome.stderr.contains("does not match") && !outcome.stderr.contains(".img.sig is not valid"), "\(outcome.stderr)")
            let noProvenance = try fleet.cli(["verify", image, "--no-provenance"])
            #expect(noProvenance.status == 1, "--no-provenance waves a forged provenance file through: \(noProvenance)")
        }

        @Test("verify refuses a validly signed provenance file that describes another image")
        func refusesAnotherImagesProvenance() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let image = try copy("swapped")
            let other = try copy("other", variant: "gva-plant")
            try FileManager.default.removeItem(atPath: image + ".intoto.json")
            try FileManager.default.copyItem(atPath: other + ".intoto.json", toPath: image + ".intoto.json")
            let parts = try envelopeParts(try readEnvelope(image + ".intoto.json"))
            #expect(try opensslAccepts(publicKey: publicKey, message: dssePAE(type: parts.type, payload: parts.payload), signature: parts.signature, scratch: scratch),
                    "the swapped-in provenance is not validly signed, so this would not test the subject check")
            let outcome = try fleet.cli(["verify", image])
            #expect(outcome.exited && outcome.status == 1, "another image's provenance is accepted: \(outcome)")
            #expect(outcome.stderr.contains("provenance subject:") && outcome.stderr.contains("gva-plant.img") && outcome.stderr.contains("not zrh-lab.img"),
                    "\(outcome.stderr)")
        }

        @Test("verify refuses a provenance file changed byte by byte, naming the check that fails")
        func refusesAByteChangedFile() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let original = try Data(contentsOf: URL(fileURLWithPath: try copy("reference") + ".intoto.json"))
            let text = String(decoding: original, as: UTF8.self)
            let envelope = try readEnvelope(scratch + "/reference/zrh-lab.img.intoto.json")
            let payload = envelope["payload"] as? String ?? ""
            let signature = (envelope["signatures"] as? [[String: Any]])?.first?["sig"] as? String ?? ""
            guard let payloadRange = text.range(of: payload), let signatureRange = text.range(of: signature), payload.count > 100, signature.count > 40 else {
                throw CLITestFailure("payload or signature not found in the file as written")
            }
            let payloadStart = text.utf8.distance(from: text.startIndex, to: payloadRange.lowerBound)
            let signatureStart = text.utf8.distance(from: text.startIndex, to: signatureRange.lowerBound)
            // (label, byte offset, replacement, the check verify must name)
            var cases: [(String, Int, UInt8, String)] = []
            for (label, index) in [("first", 0), ("middle", payload.count / 2), ("late", payload.count - 8)] {
                let offset = payloadStart + index
                cases.append(("payload \(label) character", offset, otherBase64Character(original[offset]), "provenance signature:"))
            }
            let signatureOffset = signatureStart + signature.count / 2
            cases.append(("signature middle character", signatureOffset, otherBase64Character(original[signatureOffset]), "provenance signature:"))
            cases.append(("payload byte inverted", payloadStart + payload.count / 3, ~original[payloadStart + payload.count / 3], "provenance not a DSSE envelope:"))
            cases.append(("opening brace inverted", 0, ~original[0], "provenance not a DSSE envelope:"))
            if let typeRange = text.range(of: "vnd.in-toto") {
                let offset = text.utf8.distance(from: text.startIndex, to: typeRange.lowerBound)
                cases.append(("payload type", offset, UInt8(ascii: "x"), "provenance payload type:"))
            }
            #expect(cases.count == 7)
            for (label, offset, byte, check) in cases {
                let image = try copy("byte-\(offset)")
                try setByte(in: image + ".intoto.json", at: offset, to: byte)
                let changed = try Data(contentsOf: URL(fileURLWithPath: image + ".intoto.json"))
                #expect(changed != original && changed.count == original.count, "\(label): the file did not change")
                let outcome = try fleet.cli(["verify", image])
                #expect(outcome.exited && outcome.status == 1, "\(label) at byte \(offset): \(outcome)")
                #expect(outcome.stderr.contains(check), "\(label) at byte \(offset): expected \(check.debugDescription): \(outcome.stderr)")
                if check == "provenance signature:" {
                    // Independently: the stored signature no longer verifies over what the file now says.
                    if let parts = try? envelopeParts(try readEnvelope(image + ".intoto.json")) {
                        #expect(!(try opensslAccepts(publicKey: publicKey, message: dssePAE(type: parts.type, payload: parts.payload), signature: parts.signature, scratch: scratch)),
                                "\(label): openssl still accepts the changed file, so the change was no forgery")
                    }
                }
            }
        }

        @Test("verify refuses a garbage provenance file and a JSON file that is no DSSE envelope")
        func refusesGarbage() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let garbage = try copy("garbage")
            try tool("sh", ["-c", "head -c 4096 /dev/urandom > '\(garbage).intoto.json'"])
            let outcome = try fleet.cli(["verify", garbage])
            #expect(outcome.exited && outcome.status == 1, "\(outcome)")
            #expect(outcome.stderr.contains("provenance not a DSSE envelope: \(garbage).intoto.json is not a DSSE envelope: not JSON"), "\(outcome.stderr)")

            let notEnvelope = try copy("not-envelope")
            try write(#"{"_type": "https://in-toto.io/Statement/v1", "subject": []}"#, to: notEnvelope + ".intoto.json")
            let second = try fleet.cli(["verify", notEnvelope])
            #expect(second.exited && second.status == 1, "\(second)")
            #expect(second.stderr.contains("is not a DSSE envelope: no string \"payloadType\""), "\(second.stderr)")

            let empty = try copy("empty")
            try write("", to: empty + ".intoto.json")
            let third = try fleet.cli(["verify", empty])
            #expect(third.exited && third.status == 1 && third.stderr.contains("not a DSSE envelope: not JSON"), "\(third)")
        }

        @Test("verify refuses an envelope with a second payload key, whichever one a JSON reader keeps")
        func refusesARepeatedPayloadKey() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let image = try copy("repeated-key")
            let path = image + ".intoto.json"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let envelope = try readEnvelope(path)
            let signed = envelope["payload"] as? String ?? ""
            // A forged statement first, the signed one last: a reader keeping the first key sees the forgery.
            let forged = Data(#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#.utf8).base64EncodedString()
            guard let range = text.range(of: "\"\(signed)\"") else { throw CLITestFailure("no payload in \(path)") }
            try write(text.replacingCharacters(in: range, with: "\"\(forged)\",\n  \"payload\" : \"\(signed)\""), to: path)
            #expect(try tool("grep", ["-cE", "\"payload\" ?:", path]).trimmingCharacters(in: .whitespacesAndNewlines) == "2")
            #expect(try tool("jq", ["-r", ".payload", path]).trimmingCharacters(in: .whitespacesAndNewlines) == signed, "jq keeps the last key")
            let outcome = try fleet.cli(["verify", image])
            #expect(outcome.exited && outcome.status == 1, "an envelope with two payloads is accepted: \(outcome)")
            #expect(outcome.stderr.contains("provenance not a DSSE envelope:") && outcome.stderr.contains("key \"payload\" appears twice"), "\(outcome.stderr)")
        }

        @Test("verify refuses an image whose provenance file is missing, unless --no-provenance says so in the result")
        func refusesAMissingFile() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let image = try copy("missing")
            try FileManager.default.removeItem(atPath: image + ".intoto.json")
            let outcome = try fleet.cli(["verify", image])
            #expect(outcome.exited && outcome.status == 1, "an image without provenance is accepted: \(outcome)")
            #expect(outcome.stderr.contains("provenance missing: \(image).intoto.json does not exist") && outcome.stderr.contains("--no-provenance"),
                    "\(outcome.stderr)")
            let allowed = try fleet.cli(["verify", image, "--no-provenance"])
            #expect(allowed.exited && allowed.status == 0, "\(allowed)")
            #expect(allowed.stdout.contains("OK") && allowed.stdout.contains("no provenance file, accepted with --no-provenance"), "\(allowed.stdout)")
            // openssl agrees the image and its signature are fine: only the provenance was missing.
            #expect(try OutputCheck.verify(ImageFolder(variant: "zrh-lab", path: scratch + "/missing"), publicKey: publicKey) == nil)
        }

        @Test("verify reports a missing image as a missing image, exit 2")
        func reportsAMissingImage() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let image = scratch + "/nowhere/zrh-lab.img"
            let outcome = try fleet.cli(["verify", image])
            #expect(outcome.exited && outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.contains("\(image): no such image"), "\(outcome.stderr)")
            #expect(!outcome.stderr.contains("sidecar"), "a missing image is reported as a missing sidecar: \(outcome.stderr)")

            // The image there but its signature removed: that is a failed check (exit 1), named.
            let unsigned = try copy("unsigned")
            try FileManager.default.removeItem(atPath: unsigned + ".sig")
            let second = try fleet.cli(["verify", unsigned])
            #expect(second.exited && second.status == 1 && second.stderr.contains("\(unsigned).sig: signature sidecar missing"), "\(second)")
        }

        @Test("sign re-signs the provenance with the new key, refuses one describing another image, and leaves none where there was none")
        func signKeepsProvenanceHonest() throws {
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let prefix = scratch + "/rotated"
            #expect(try fleet.cli(["keygen", "--out", prefix]).status == 0)
            let image = try copy("rotated-image")
            let payloadBefore = try envelopeParts(try readEnvelope(image + ".intoto.json")).payload
            let sign = try fleet.cli(["sign", image, "--key", prefix + ".key.pem"])
            #expect(sign.exited && sign.status == 0 && sign.stdout.contains("provenance re-signed"), "\(sign)")
            let after = try envelopeParts(try readEnvelope(image + ".intoto.json"))
            #expect(after.payload == payloadBefore, "sign changed the statement, not only its signature")
            #expect(try opensslAccepts(publicKey: prefix + ".pub.pem", message: dssePAE(type: after.type, payload: after.payload), signature: after.signature, scratch: scratch))
            #expect(try fleet.cli(["verify", image, "--key", prefix + ".pub.pem"]).status == 0)
            let oldKey = try fleet.cli(["verify", image])
            #expect(oldKey.status == 1 && oldKey.stderr.contains("provenance signature:"), "\(oldKey)")

            // Another image's provenance beside this one: sign refuses, and writes nothing.
            let swapped = try copy("swapped-sign")
            let other = try copy("other-sign", variant: "gva-plant")
            try FileManager.default.removeItem(atPath: swapped + ".intoto.json")
            try FileManager.default.copyItem(atPath: other + ".intoto.json", toPath: swapped + ".intoto.json")
            let sigBefore = try Data(contentsOf: URL(fileURLWithPath: swapped + ".sig"))
            let provenanceBefore = try Data(contentsOf: URL(fileURLWithPath: swapped + ".intoto.json"))
            let refused = try fleet.cli(["sign", swapped, "--key", prefix + ".key.pem"])
            #expect(refused.exited && refused.status == 1 && refused.stderr.contains("provenance subject:"), "\(refused)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: swapped + ".sig")) == sigBefore)
            #expect(try Data(contentsOf: URL(fileURLWithPath: swapped + ".intoto.json")) == provenanceBefore)

            // An image built elsewhere (no provenance): signed, none invented; verify needs --no-provenance.
            let elsewhere = try copy("elsewhere")
            for suffix in [".sha256", ".sig", ".intoto.json"] { try FileManager.default.removeItem(atPath: elsewhere + suffix) }
            let signed = try fleet.cli(["sign", elsewhere, "--key", prefix + ".key.pem"])
            #expect(signed.status == 0 && signed.stdout.contains("no provenance file (verify it with --no-provenance)"), "\(signed)")
            #expect(!FileManager.default.fileExists(atPath: elsewhere + ".intoto.json"))
            #expect(try fleet.cli(["verify", elsewhere, "--key", prefix + ".pub.pem"]).status == 1)
            #expect(try fleet.cli(["verify", elsewhere, "--key", prefix + ".pub.pem", "--no-provenance"]).status == 0)
        }
    }
}
