import Foundation

/// A DSSE (Dead Simple Signing Envelope) as in-toto uses it: the payload in base64 and its
/// signatures over the PAE encoding (``ProvenanceDocument/pae(payloadType:payload:)``).
public struct DSSEEnvelope: Codable, Sendable, Equatable {
    public var payloadType: String
    /// Base64 (standard alphabet, padded) of the payload bytes.
    public var payload: String
    public var signatures: [Signature]

    public struct Signature: Codable, Sendable, Equatable {
        /// The signing key's fingerprint.
        public var keyID: String
        /// Base64 of the signature bytes.
        public var sig: String

        enum CodingKeys: String, CodingKey {
            case keyID = "keyid"
            case sig
        }
    }

    /// The decoded payload bytes, or nil when `payload` is not base64.
    public var payloadBytes: [UInt8]? {
        Data(base64Encoded: payload).map(Array.init)
    }

    /// The envelope as written to disk: pretty-printed, sorted keys, slashes unescaped, final newline.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }
}
