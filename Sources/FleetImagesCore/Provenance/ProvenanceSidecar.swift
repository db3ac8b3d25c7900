import Foundation

/// Checks an image's `.intoto.json` for `verify`, and re-signs it for `sign`.
///
/// Nothing in the file is believed before its signature is checked: the file must be a DSSE
/// envelope whose `payloadType` is in-toto's, one of whose signatures verifies with the given key
/// over `PAE(payloadType, payload)` (DSSE v1), and whose payload is an in-toto Statement v1 with a
/// SLSA Provenance v1 predicate. Only then are its subjects read; ``Statement/check(name:size:sha256:)``
/// compares them with the image actually hashed. Each way of failing is its own ``Failure``.
public enum ProvenanceSidecar {
    /// Why the provenance file does not vouch for the image: one case per check, in the order checked.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// No file beside the image.
        case missing(path: String)
        /// The file exists but cannot be read.
        case unreadable(path: String, reason: String)
        /// Not JSON, or JSON that is not a DSSE envelope (`reason` says what is wrong).
        case notEnvelope(path: String, reason: String)
        /// A DSSE envelope around something other than an in-toto statement.
        case wrongPayloadType(path: String, found: String)
        /// No signature in the envelope verifies with the key over PAE(payloadType, payload).
        case badSignature(path: String, keyFingerprint: String, keyIDs: [String])
        /// Signed, but the payload is not an in-toto Statement v1 with a SLSA v1 predicate.
        case notStatement(path: String, reason: String)
        /// Signed, but no subject of the statement is this image (name and SHA-256).
        case subjectMismatch(path: String, reason: String)

        public var path: String {
            switch self {
            case .missing(let path), .unreadable(let path, _), .notEnvelope(let path, _), .wrongPayloadType(let path, _),
                 .badSignature(let path, _, _), .notStatement(let path, _), .subjectMismatch(let path, _):
                return path
            }
        }

        /// The check that failed, as the README's table names it.
        public var check: String {
            switch self {
            case .missing: return "provenance missing"
            case .unreadable: return "provenance unreadable"
            case .notEnvelope: return "provenance not a DSSE envelope"
            case .wrongPayloadType: return "provenance payload type"
            case .badSignature: return "provenance signature"
            case .notStatement: return "provenance statement"
            case .subjectMismatch: return "provenance subject"
            }
        }

        public var description: String {
            switch self {
            case .missing(let path):
                return "\(check): \(path) does not exist (build writes it beside every image; for an image signed "
                    + "with `fleet-images sign` that never had one, pass --no-provenance)"
            case .unreadable(let path, let reason):
                return "\(check): \(path): \(reason)"
            case .notEnvelope(let path, let reason):
                return "\(check): \(path) is not a DSSE envelope: \(reason)"
            case .wrongPayloadType(let path, let found):
                return "\(check): \(path) has payloadType \(found.debugDescription), expected \"\(ProvenanceDocument.payloadType)\""
            case .badSignature(let path, let fingerprint, let keyIDs):
                let ids = keyIDs.isEmpty ? "" : " (the envelope names key\(keyIDs.count == 1 ? "" : "s") \(keyIDs.joined(separator: ", ")))"
                return "\(check): no DSSE signature in \(path) verifies with key \(fingerprint)\(ids): "
                    + "the statement was changed after it was signed, or another key signed it"
            case .notStatement(let path, let reason):
                return "\(check): \(path) is signed but its payload is not an in-toto Statement v1 with a SLSA Provenance v1 predicate: \(reason)"
            case .subjectMismatch(let path, let reason):
                return "\(check): \(path) describes another image: \(reason)"
            }
        }
    }

    /// A DSSE envelope as read from disk: the decoded payload and the signatures, nothing checked yet.
    public struct Envelope: Sendable {
        public var path: String
        public var payloadType: String
        public var payload: [UInt8]
        public var signatures: [(keyID: String?, signature: [UInt8])]
    }

    /// A subject of a verified statement.
    public struct Subject: Sendable, Equatable {
        public var name: String?
        public var sha256: String?
        public var size: UInt64?
    }

    /// A statement whose envelope signature has been verified.
    public struct Statement: Sendable {
        public var path: String
        public var subjects: [Subject]

        /// The size of the subject named `name`, when the statement records one (checked against the image's size).
        public func recordedSize(name: String) -> UInt64? {
            subjects.first(where: { $0.name == name })?.size
        }

        /// Checks that a subject is the image called `names` (any of them: the given path's file
        /// name and the name it resolves to) with this SHA-256 and, when recorded, this size.
        public func check(names: [String], size: UInt64, sha256: String) throws(Failure) {
            if let subject = subjects.first(where: { $0.name.map(names.contains) ?? false }) {
                guard let recorded = subject.sha256 else {
                    throw .subjectMismatch(path: path, reason: "subject \(subject.name ?? "") has no sha256 digest")
                }
                guard recorded.lowercased() == sha256.lowercased() else {
                    throw .subjectMismatch(path: path, reason: "subject \(subject.name ?? "") has SHA-256 \(recorded), the image's SHA-256 is \(sha256)")
                }
                if let recordedSize = subject.size, recordedSize != size {
                    throw .subjectMismatch(path: path, reason: "subject \(subject.name ?? "") has size \(recordedSize) bytes, the image has \(size)")
                }
                return
            }
            let named = subjects.map { "\($0.name ?? "(no name)") sha256 \($0.sha256 ?? "(none)")" }.joined(separator: ", ")
            throw .subjectMismatch(path: path, reason: "its subject is \(named.isEmpty ? "empty" : named), not \(names.first ?? "") (SHA-256 \(sha256))")
        }
    }

    /// Reads and parses the envelope at `path` without checking its signature.
    public static func readEnvelope(at path: String) throws(Failure) -> Envelope {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw .missing(path: path) }
            throw .unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(path: path, reason: "not a regular file") }
        // Provenance documents are a few KiB; refuse anything that could not be one rather than read it all.
        guard info.st_size <= 16 << 20 else { throw .notEnvelope(path: path, reason: "\(info.st_size) bytes, far larger than any provenance document") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "cannot read it")
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw .notEnvelope(path: path, reason: "not JSON")
        }
        guard let envelope = object as? [String: Any] else { throw .notEnvelope(path: path, reason: "the JSON is not an object") }
        // The envelope is not signed: with two "payload" keys, readers that keep the first and readers
        // that keep the last would see different statements. Refuse any repeated key.
        if let key = duplicateKey(in: Array(data)) {
            throw .notEnvelope(path: path, reason: "key \(key.debugDescription) appears twice in one object (JSON readers disagree on which one counts)")
        }
        guard let payloadType = envelope["payloadType"] as? String else {
            throw .notEnvelope(path: path, reason: "no string \"payloadType\"")
        }
        guard let payloadText = envelope["payload"] as? String else { throw .notEnvelope(path: path, reason: "no string \"payload\"") }
        guard let payload = Data(base64Encoded: payloadText) else { throw .notEnvelope(path: path, reason: "\"payload\" is not base64") }
        guard let signatureList = envelope["signatures"] as? [Any], !signatureList.isEmpty else {
            throw .notEnvelope(path: path, reason: "no \"signatures\" list, or an empty one")
        }
        var signatures: [(keyID: String?, signature: [UInt8])] = []
        for (index, entry) in signatureList.enumerated() {
            guard let entry = entry as? [String: Any], let text = entry["sig"] as? String, let bytes = Data(base64Encoded: text), !bytes.isEmpty else {
                throw .notEnvelope(path: path, reason: "signatures[\(index)] has no base64 \"sig\"")
            }
            signatures.append((entry["keyid"] as? String, Array(bytes)))
        }
        return Envelope(path: path, payloadType: payloadType, payload: Array(payload), signatures: signatures)
    }

    /// Reads the envelope at `path`, checks its payload type and signature with `publicKey`, and
    /// parses the statement. Every failure names its check.
    public static func verify(at path: String, publicKey: VerifyingKey, padding: RSAPadding) throws(Failure) -> Statement {
        let envelope = try readEnvelope(at: path)
        guard envelope.payloadType == ProvenanceDocument.payloadType else {
            throw .wrongPayloadType(path: path, found: envelope.payloadType)
        }
        let signed = ProvenanceDocument.pae(payloadType: envelope.payloadType, payload: envelope.payload)
        guard envelope.signatures.contains(where: { publicKey.verify(signed, signature: $0.signature, padding: padding) }) else {
            throw .badSignature(path: path, keyFingerprint: publicKey.fingerprint, keyIDs: envelope.signatures.compactMap(\.keyID))
        }
        return try statement(envelope)
    }

    /// The statement in an envelope (its signature is the caller's business).
    public static func statement(_ envelope: Envelope) throws(Failure) -> Statement {
        let path = envelope.path
        guard let object = try? JSONSerialization.jsonObject(with: Data(envelope.payload)) as? [String: Any] else {
            throw .notStatement(path: path, reason: "the payload is not a JSON object")
        }
        if let key = duplicateKey(in: envelope.payload) {
            throw .notStatement(path: path, reason: "key \(key.debugDescription) appears twice in one object (JSON readers disagree on which one counts)")
        }
        guard let type = object["_type"] as? String, type == ProvenanceDocument.statementType else {
            throw .notStatement(path: path, reason: "\"_type\" is \(String(describing: object["_type"] ?? "absent")), expected \(ProvenanceDocument.statementType)")
        }
        guard let predicateType = object["predicateType"] as? String, predicateType == ProvenanceDocument.predicateType else {
            throw .notStatement(path: path, reason: "\"predicateType\" is \(String(describing: object["predicateType"] ?? "absent")), expected \(ProvenanceDocument.predicateType)")
        }
        guard let list = object["subject"] as? [[String: Any]], !list.isEmpty else {
            throw .notStatement(path: path, reason: "no \"subject\" list")
        }
        let subjects = list.map { entry in
            Subject(name: entry["name"] as? String,
                    sha256: (entry["digest"] as? [String: Any])?["sha256"] as? String,
                    size: ((entry["annotations"] as? [String: Any])?["size"] as? NSNumber)?.uint64Value)
        }
        return Statement(path: path, subjects: subjects)
    }

    /// The first key that occurs twice in one object of `bytes`, which must already have parsed as JSON.
    /// Keys are compared after their escapes are decoded (`"p\u0061yload"` is `"payload"`).
    static func duplicateKey(in bytes: [UInt8]) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        // One entry per open container: its keys so far (nil for an array) and whether a key comes next.
        var stack: [(keys: Set<String>?, expectingKey: Bool)] = []
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "{"): stack.append(([], true))
            case UInt8(ascii: "["): stack.append((nil, false))
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if !stack.isEmpty { stack.removeLast() }
            case UInt8(ascii: ","): if stack.last?.keys != nil { stack[stack.count - 1].expectingKey = true }
            case quote:
                let start = index
                index += 1
                while index < bytes.count, bytes[index] != quote { index += bytes[index] == backslash ? 2 : 1 }
                guard let top = stack.last, top.keys != nil, top.expectingKey else { break }
                let token = Data(bytes[start...min(index, bytes.count - 1)])
                guard let key = try? JSONSerialization.jsonObject(with: token, options: .fragmentsAllowed) as? String else { break }
                if stack[stack.count - 1].keys!.insert(key).inserted == false { return key }
                stack[stack.count - 1].expectingKey = false
            default: break
            }
            index += 1
        }
        return nil
    }

    /// For `sign` after a key rotation: the envelope at `path` with its signatures replaced by one
    /// of `key` over the same payload, once the statement is seen to describe this image. Written
    /// atomically; the payload bytes are kept exactly.
    public static func resign(
        at path: String, imageName: String, size: UInt64, sha256: String, key: SigningKey, padding: RSAPadding
    ) throws {
        let envelope = try readEnvelope(at: path)
        guard envelope.payloadType == ProvenanceDocument.payloadType else {
            throw Failure.wrongPayloadType(path: path, found: envelope.payloadType)
        }
        try statement(envelope).check(names: [imageName], size: size, sha256: sha256)
        let signature = try key.sign(ProvenanceDocument.pae(payloadType: envelope.payloadType, payload: envelope.payload), padding: padding)
        let rewritten = DSSEEnvelope(
            payloadType: envelope.payloadType, payload: Data(envelope.payload).base64EncodedString(),
            signatures: [DSSEEnvelope.Signature(keyID: key.publicKey.fingerprint, sig: Data(signature).base64EncodedString())])
        // Keep the file's mode and group (build makes it 0640, group output.group).
        var info = stat()
        let known = stat(path, &info) == 0
        try ProvenanceAtomicFile.replace(try rewritten.encoded(), to: path, mode: known ? info.st_mode & 0o777 : 0o640)
        if known { _ = chown(path, uid_t.max, info.st_gid) }
    }
}
