internal import COpenSSL

/// SHA-256, HMAC-SHA-256 and random bytes from the system libcrypto.
///
/// Everything fleet-images digests (inputs, images, certificates) goes through here so that one
/// implementation, and one hex spelling (lowercase), is used throughout.
public enum Digest {
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        hex(sha256(bytes))
    }

    /// The SHA-256 of a file of any size, read in chunks (constant memory).
    public static func sha256Hex(fileAt path: String) throws(SigningError) -> String {
        let context = SHA256Context()
        _ = try ChunkedFileReader.read(path) { chunk in context.update(chunk) }
        return hex(context.finish())
    }

    public static func hmacSHA256Hex(key: [UInt8], message: [UInt8]) -> String {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // Zero-length inputs still need a valid pointer; the lengths passed stay the real ones.
        let keyBytes = key.isEmpty ? [0] : key
        let messageBytes = message.isEmpty ? [0] : message
        let result = HMAC(EVP_sha256(), keyBytes, Int32(key.count), messageBytes, message.count, &output, &length)
        precondition(result != nil, "HMAC-SHA-256 failed: \(OpenSSLErrorQueue.drain())")
        return hex(Array(output[0..<Int(length)]))
    }

    /// The WPA2 pre-shared key (IEEE 802.11i): PBKDF2-HMAC-SHA1 of the passphrase with the SSID as
    /// salt, 4096 rounds, 32 bytes, as 64 hex digits. What `wpa_passphrase` prints as `psk=`; a
    /// network-config can carry it instead of the passphrase.
    public static func wpaPSKHex(passphrase: [UInt8], ssid: [UInt8]) -> String {
        var output = [UInt8](repeating: 0, count: 32)
        let password = passphrase.isEmpty ? [0] : passphrase
        let salt = ssid.isEmpty ? [0] : ssid
        let result = password.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { chars in
                PKCS5_PBKDF2_HMAC_SHA1(chars, Int32(passphrase.count), salt, Int32(ssid.count), 4096, 32, &output)
            }
        }
        precondition(result == 1, "PBKDF2-HMAC-SHA1 failed: \(OpenSSLErrorQueue.drain())")
        return hex(output)
    }

    /// `n` bytes from OpenSSL's CSPRNG (seeded from the kernel).
    public static func randomBytes(_ n: Int) -> [UInt8] {
        precondition(n >= 0, "randomBytes: negative count")
        var bytes = [UInt8](repeating: 0, count: n)
        guard n > 0 else { return bytes }
        let result = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        // RAND_bytes fails only when the kernel cannot seed it; continuing without randomness is never right.
        precondition(result == 1, "RAND_bytes failed: \(OpenSSLErrorQueue.drain())")
        return bytes
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        let context = SHA256Context()
        bytes.withUnsafeBytes { context.update($0) }
        return context.finish()
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lowercase hex.
    static func hex(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[2 * index] = hexDigits[Int(byte >> 4)]
                buffer[2 * index + 1] = hexDigits[Int(byte & 0x0f)]
            }
            return bytes.count * 2
        }
    }

    /// Bytes from lowercase or uppercase hex; nil if `text` is not an even run of hex digits.
    static func bytes(fromHex text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var result: [UInt8] = []
        result.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            result.append(high << 4 | low)
            index += 2
        }
        return result
    }
}

/// A SHA-256 computation in progress; one per task (an EVP_MD_CTX is not thread-safe).
final class SHA256Context {
    private let context: OpaquePointer

    init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.context = context
        // EVP_DigestInit_ex with the built-in SHA-256 fails only on allocation failure.
        precondition(EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1, "SHA-256 init failed: \(OpenSSLErrorQueue.drain())")
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ chunk: UnsafeRawBufferPointer) {
        guard let base = chunk.baseAddress, chunk.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, base, chunk.count) == 1, "SHA-256 update failed")
    }

    /// The 32-byte digest; the context cannot be updated afterwards.
    func finish() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1 && length == 32, "SHA-256 final failed")
        return digest
    }
}
