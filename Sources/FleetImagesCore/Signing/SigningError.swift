#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
internal import COpenSSL

/// Everything that can go wrong while loading keys and certificates, signing, or verifying.
///
/// Each message is one line that names the file, says what is wrong and, where there is one, what to do.
/// No message ever contains a passphrase or key material: only paths, algorithm names, sizes,
/// digests, fingerprints and OpenSSL's own error strings (which never quote input data).
public enum SigningError: Error, CustomStringConvertible, Sendable {
    /// The file does not exist.
    case fileNotFound(path: String)
    /// The file exists but cannot be opened or read.
    case fileUnreadable(path: String, errno: Int32)
    /// Creating, writing, syncing or renaming an output file failed.
    case writeFailed(path: String, errno: Int32)
    /// An output file already exists and is never overwritten.
    case fileExists(path: String)
    /// The private key is encrypted and no passphrase was given.
    case passphraseRequired(path: String)
    /// The private key is encrypted and the passphrase given does not decrypt it.
    case wrongPassphrase(path: String)
    /// The file holds something other than what was asked for (`found` says what it holds).
    case wrongContent(path: String, expected: String, found: String)
    /// The key is of a type this tool does not sign or verify with.
    case unsupportedKey(path: String, found: String)
    /// An RSA key shorter than 2048 bits.
    case rsaKeyTooSmall(path: String, bits: Int)
    /// A sidecar (`.sha256` or `.sig`) needed for verification is absent.
    case sidecarMissing(path: String)
    /// A sidecar exists but is not in the expected format.
    case sidecarMalformed(path: String, reason: String)
    /// The task reading the file was cancelled.
    case cancelled(path: String)
    /// An OpenSSL operation failed; `detail` is OpenSSL's drained error queue.
    case openSSL(operation: String, path: String?, detail: String)
    /// liblzma or libzstd refused to compress (memory, options) while writing `path`.
    case compressionFailed(path: String, reason: String)

    public static let supportedKeys = "supported: RSA ≥ 2048 bits, ECDSA P-256, ECDSA P-384"

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file"
        case .fileUnreadable(let path, let code):
            return "\(path): cannot read: \(Self.errnoText(code))"
        case .writeFailed(let path, let code):
            return "\(path): cannot write: \(Self.errnoText(code))"
        case .fileExists(let path):
            return "\(path): already exists; refusing to overwrite it (move it away or choose another path)"
        case .passphraseRequired(let path):
            return "\(path): private key is encrypted and no passphrase was given (supply it, e.g. through signing.passphrase_env in fleet.json)"
        case .wrongPassphrase(let path):
            return "\(path): the passphrase given does not decrypt this private key"
        case .wrongContent(let path, let expected, let found):
            return "\(path): expected \(expected), found \(found)"
        case .unsupportedKey(let path, let found):
            return "\(path): unsupported key type \(found); \(Self.supportedKeys)"
        case .rsaKeyTooSmall(let path, let bits):
            return "\(path): RSA key has \(bits) bits; \(Self.supportedKeys)"
        case .sidecarMissing(let path):
            return "\(path): signature sidecar missing (create it with `fleet-images sign`)"
        case .sidecarMalformed(let path, let reason):
            return "\(path): malformed sidecar: \(reason)"
        case .cancelled(let path):
            return "\(path): reading cancelled"
        case .compressionFailed(let path, let reason):
            return "\(path): cannot compress: \(reason)"
        case .openSSL(let operation, let path, let detail):
            let what = detail.isEmpty ? "no OpenSSL error detail" : detail
            if let path { return "\(path): \(operation) failed: \(what)" }
            return "\(operation) failed: \(what)"
        }
    }

    /// True for `.cancelled`: the task was cancelled (SIGINT/SIGTERM), nothing is wrong with the file.
    public var isCancellation: Bool {
        if case .cancelled = self { return true }
        return false
    }

    static func errnoText(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}

/// OpenSSL keeps a per-thread queue of errors; these helpers turn it into text and keep it empty
/// so that an old failure never shows up in the message of a later one.
enum OpenSSLErrorQueue {
    /// Removes every queued error and returns them joined with "; " (oldest first), empty when none.
    static func drain() -> String {
        var messages: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(nulTerminated: buffer))
        }
        return messages.joined(separator: "; ")
    }

    /// Discards queued errors from an expected failure (a signature that does not verify).
    static func clear() {
        ERR_clear_error()
    }

    /// Throws `SigningError.openSSL` with the drained queue.
    static func failure(_ operation: String, path: String? = nil) -> SigningError {
        .openSSL(operation: operation, path: path, detail: drain())
    }
}

extension String {
    /// The text of a NUL-terminated C buffer filled in by OpenSSL.
    init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
