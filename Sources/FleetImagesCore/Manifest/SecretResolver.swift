import Foundation

/// Reads secrets from where the manifest says they are: an environment variable or a file.
/// The values stay in memory only; messages name the source, never the value.
public struct SecretResolver: Sendable {
    public var manifest: Manifest
    public var environment: [String: String]

    public init(manifest: Manifest, environment: [String: String]) {
        self.manifest = manifest
        self.environment = environment
    }

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public func passphrase(_ source: PSKSource) -> Result<Secret, Problem> {
        switch source {
        case .inline(let secret):
            return .success(secret)
        case .environment(let name):
            guard let value = environment[name] else {
                return .failure(Problem(description: "environment variable \(name) is not set; export it before running (e.g. in the cron job's environment file)"))
            }
            return .success(Secret(value))
        case .file(let relative):
            return readSecretFile(relative)
        }
    }

    public func signingPassphrase(_ source: SigningSpec.Passphrase) -> Result<Secret, Problem> {
        switch source {
        case .environment(let name): passphrase(.environment(name))
        case .file(let relative): readSecretFile(relative)
        }
    }

    /// A Packer template variable's value (`builder.variables`); a plain one as written.
    public func packerVariable(_ variable: PackerVariable) -> Result<Secret, Problem> {
        switch variable.value {
        case .plain(let text): .success(Secret(text))
        case .environment(let name): passphrase(.environment(name))
        case .file(let relative): readSecretFile(relative)
        }
    }

    /// The crypt(3) hash a `user` logs in with. Like a passphrase it is never printed; it is
    /// checked for shape (``PasswordHashRules``), so a plain password in its place is refused.
    public func passwordHash(_ source: PasswordHashSource) -> Result<Secret, Problem> {
        let secret: Result<Secret, Problem> = switch source {
        case .environment(let name): passphrase(.environment(name))
        case .file(let relative): readSecretFile(relative)
        }
        return secret.flatMap { hash in
            if let problem = PasswordHashRules.check(hash) { return .failure(Problem(description: problem)) }
            return .success(hash)
        }
    }

    /// A secret file's content without its trailing line break (editors add one). Never blocks:
    /// a FIFO or device in the secret's place is refused, not read.
    func readSecretFile(_ relative: String) -> Result<Secret, Problem> {
        let path = manifest.directory + "/" + relative
        switch InputFile.read(path, shown: relative, what: "secret file", limit: 64 << 10) {
        case .failure(let problem):
            return .failure(Problem(description: problem.description))
        case .success(var bytes):
            if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            return .success(Secret(bytes))
        }
    }
}

/// What a login password hash must look like: a crypt(3) string Raspberry Pi OS's `chpasswd -e`
/// and cloud-init's `passwd` take as it is, of a scheme that is still strong. Messages never
/// contain the value (it may be a password typed in the wrong place).
public enum PasswordHashRules {
    static let cryptAlphabet = Set("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    static let howTo = "make one with `mkpasswd -m yescrypt` (or `openssl passwd -6`)"

    public static func check(_ secret: Secret) -> String? {
        let bytes = secret.unsafeBytes
        if bytes.isEmpty { return "the password hash is empty; \(howTo)" }
        if bytes.contains(where: { $0 < 0x21 || $0 > 0x7e || $0 == UInt8(ascii: ":") }) {
            return "the password hash contains a space, a colon or a non-printable character, so it is not a crypt hash; \(howTo)"
        }
        let fields = bytes.split(separator: UInt8(ascii: "$"), omittingEmptySubsequences: false).map { Array($0) }
        guard bytes.first == UInt8(ascii: "$"), fields.count >= 3 else {
            return "the password hash is not a crypt hash (it does not start with $y$ or $6$): a plain password must never be put in an image; \(howTo)"
        }
        let scheme = String(decoding: fields[1], as: UTF8.self)
        func alphabetOnly(_ field: [UInt8]) -> Bool { !field.isEmpty && field.allSatisfy { cryptAlphabet.contains($0) } }
        switch scheme {
        case "y":
            // $y$<params>$<salt>$<43-character hash>
            guard fields.count == 5, alphabetOnly(fields[2]), alphabetOnly(fields[3]), fields[4].count == 43, alphabetOnly(fields[4]) else {
                return "the yescrypt hash is malformed (expected $y$<params>$<salt>$<43 characters>); \(howTo)"
            }
            return nil
        case "6":
            // $6$[rounds=N$]<salt, 1–16>$<86-character hash>
            var rest = Array(fields.dropFirst(2))
            if let first = rest.first, first.starts(with: Array("rounds=".utf8)) {
                guard let rounds = Int(String(decoding: first.dropFirst(7), as: UTF8.self)), (1000...999_999_999).contains(rounds) else {
                    return "the SHA-512 crypt hash has a malformed rounds= field; \(howTo)"
                }
                rest.removeFirst()
            }
            guard rest.count == 2, (1...16).contains(rest[0].count), rest[1].count == 86, alphabetOnly(rest[1]) else {
                return "the SHA-512 crypt hash is malformed (expected $6$<salt>$<86 characters>); \(howTo)"
            }
            return nil
        case "1", "2a", "2b", "2y", "5", "md5", "sha1", "gy", "7":
            return "the password hash uses crypt scheme $\(scheme)$; fleet-images takes yescrypt ($y$, Raspberry Pi OS's default) or SHA-512 crypt ($6$); \(howTo)"
        default:
            return "the password hash is not a yescrypt ($y$) or SHA-512 crypt ($6$) hash; \(howTo)"
        }
    }
}
