import Foundation
import Testing

/// A temporary folder removed when the value goes away; tests make their keys and images in it.
final class SigningScratch {
    let path: String

    init() throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-signing-XXXXXX").path
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw SigningToolFailure(command: "mkdtemp", status: errno, output: "") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    func read(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: file(name))))
    }
}

struct SigningToolFailure: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let output: String
    var description: String { "`\(command)` exited \(status): \(output)" }
}

final class SigningDataBox: @unchecked Sendable {
    var data = Data()  // written by one thread, read after DispatchGroup.wait()
}

struct SigningToolResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a command line tool (`openssl`, `sha256sum`, `truncate`, …) with stdin from /dev/null,
/// optionally in a working directory.
@discardableResult
func signingTool(_ arguments: [String], in directory: String? = nil, allowFailure: Bool = false) throws -> SigningToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.standardInput = FileHandle.nullDevice
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Drain stderr on another thread while reading stdout, so neither pipe can fill up and block the tool.
    let errorBox = SigningDataBox()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errorBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outputData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errorData = errorBox.data
    process.waitUntilExit()
    let result = SigningToolResult(
        status: process.terminationStatus,
        stdout: String(decoding: outputData, as: UTF8.self),
        stderr: String(decoding: errorData, as: UTF8.self)
    )
    if result.status != 0 && !allowFailure {
        throw SigningToolFailure(command: arguments.joined(separator: " "), status: result.status, output: result.stderr)
    }
    return result
}

/// `openssl …` in `directory`; throws on a non-zero exit.
@discardableResult
func signingOpenSSL(_ arguments: String..., in directory: String? = nil) throws -> String {
    try signingTool(["openssl"] + arguments, in: directory).stdout
}

/// The lowercase hex at the end of `openssl dgst` output (`SHA2-256(file)= abc…` or `(stdin)= abc…`).
func signingHexWord(_ output: String) -> String {
    String(output.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "=" }).last ?? "")
}

/// Key files made with the openssl command line, named after what they are.
enum SigningTestKeys {
    /// openssl genpkey arguments for each kind used in the tests.
    static func generate(_ kind: String, in scratch: SigningScratch, name: String? = nil) throws -> (privateKey: String, publicKey: String) {
        let base = name ?? kind
        let privateKey = scratch.file("\(base).key.pem"), publicKey = scratch.file("\(base).pub.pem")
        switch kind {
        case "rsa2048": try signingOpenSSL("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privateKey)
        case "rsa3072": try signingOpenSSL("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072", "-out", privateKey)
        case "rsa1024": try signingOpenSSL("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", privateKey)
        case "p256": try signingOpenSSL("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", privateKey)
        case "p384": try signingOpenSSL("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", privateKey)
        case "p521": try signingOpenSSL("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521", "-out", privateKey)
        case "ed25519": try signingOpenSSL("genpkey", "-algorithm", "ED25519", "-out", privateKey)
        default: fatalError("unknown test key kind \(kind)")
        }
        try signingOpenSSL("pkey", "-in", privateKey, "-pubout", "-out", publicKey)
        return (privateKey, publicKey)
    }
}
