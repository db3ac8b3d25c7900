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

    /// The crypt(3) hash a `user` logs in with. Like a passphrase it is never printed.
    public func passwordHash(_ source: PasswordHashSource) -> Result<Secret, Problem> {
        switch source {
        case .environment(let name): passphrase(.environment(name))
        case .file(let relative): readSecretFile(relative)
        }
    }

    public func signingPassphrase(_ source: SigningSpec.Passphrase) -> Result<Secret, Problem> {
        switch source {
        case .environment(let name): passphrase(.environment(name))
        case .file(let relative): readSecretFile(relative)
        }
    }

    /// A secret file's content without its trailing line break (editors add one).
    func readSecretFile(_ relative: String) -> Result<Secret, Problem> {
        let path = manifest.directory + "/" + relative
        guard FileManager.default.fileExists(atPath: path) else {
            return .failure(Problem(description: "secret file \(relative) does not exist"))
        }
        guard var bytes = FileManager.default.contents(atPath: path).map(Array.init) else {
            return .failure(Problem(description: "secret file \(relative) is not readable by this user; fix its permissions"))
        }
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return .success(Secret(bytes))
    }
}
