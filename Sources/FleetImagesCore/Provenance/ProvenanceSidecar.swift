import Foundation

/// Reads what an image's `.intoto.json` says about the image itself, for `verify`: the subject's
/// size and SHA-256. The envelope's payload is read, not trusted blindly: `verify` compares it
/// with the image it hashes.
public enum ProvenanceSidecar {
    public struct Subject: Sendable, Equatable {
        public var size: UInt64?
        public var sha256: String?
    }

    public static func recordedSubject(forImage imagePath: String) -> Subject? {
        guard let data = FileManager.default.contents(atPath: imagePath + ProvenanceDocument.fileSuffix),
              let envelope = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let payloadText = envelope["payload"] as? String, let payload = Data(base64Encoded: payloadText),
              let statement = try? JSONSerialization.jsonObject(with: payload) as? [String: Any],
              let subjects = statement["subject"] as? [[String: Any]], let subject = subjects.first else { return nil }
        let digest = (subject["digest"] as? [String: Any])?["sha256"] as? String
        let size = ((subject["annotations"] as? [String: Any])?["size"] as? NSNumber)?.uint64Value
        return Subject(size: size, sha256: digest)
    }
}
