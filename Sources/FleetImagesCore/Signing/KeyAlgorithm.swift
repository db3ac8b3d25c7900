/// The kinds of key fleet-images signs and verifies with.
public enum KeyAlgorithm: Sendable, Equatable, CustomStringConvertible {
    case rsa(bits: Int)
    case ecdsaP256
    case ecdsaP384

    public var description: String {
        switch self {
        case .rsa(let bits): return "RSA-\(bits)"
        case .ecdsaP256: return "ECDSA P-256"
        case .ecdsaP384: return "ECDSA P-384"
        }
    }

    public var isRSA: Bool {
        if case .rsa = self { return true }
        return false
    }
}

/// The RSA signature scheme; ignored for ECDSA keys.
///
/// `pss` uses a salt as long as the digest (32 bytes) and MGF1 with SHA-256, which is what
/// `openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest` produces
/// and expects.
public enum RSAPadding: String, Sendable, CaseIterable {
    /// RSASSA-PKCS1-v1_5, deterministic; the default of `openssl dgst -sign`.
    case pkcs1
    /// RSASSA-PSS.
    case pss
}
