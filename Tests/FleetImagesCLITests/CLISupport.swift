import Foundation
import Testing

// End-to-end support: run the BUILT `fleet-images` executable on a copy of the demo fleet, as
// swift-argument-parser's AssertExecuteCommand does, and read what it produced with independent
// tools (openssl, sha256sum, sqlite3, debugfs, e2fsck, mtype). Nothing here imports the product.

/// Where things are: the repository (from this file's path) and the built executable.
enum CLILocation {
    /// The package root: this file is `<root>/Tests/FleetImagesCLITests/CLISupport.swift`.
    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `fleet-images` next to the test bundle (`swift build --build-tests` puts both in the same folder).
    static func executable() throws -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let folder = (me as NSString).deletingLastPathComponent
        let candidate = folder + "/fleet-images"
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw CLITestFailure("the built executable is missing: no \(candidate) (the test bundle is \(me)); run `swift build --build-tests` before `swift test --skip-build`")
        }
        return candidate
    }
}

struct CLITestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A finished process: how it ended and everything it printed.
struct ProcessOutcome: CustomStringConvertible, Sendable {
    var status: Int32
    /// True when it called exit(), false when a signal killed it.
    var exited: Bool
    var stdout: String
    var stderr: String

    var description: String { "exit \(exited ? "" : "by signal ")\(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }
}

/// PATH for tools in /usr/sbin (debugfs, e2fsck) even when the test runner's PATH lacks it.
let toolPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// A child process whose standard output and error are collected as they come, so a test can wait
/// for a given stderr line (with a deadline), signal the child, then collect its outcome.
final class RunningProcess: @unchecked Sendable {
    // @unchecked: the buffers are guarded by `lock`; `process` is only started and signalled.
    let process: Process
    let commandLine: String
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()
    private let readers = DispatchGroup()

    init(_ executable: String, _ arguments: [String], currentDirectory: String? = nil, environment: [String: String]? = nil) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
        process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
        commandLine = ([executable] + arguments).joined(separator: " ")
        var env = environment ?? ProcessInfo.processInfo.environment
        if environment == nil { env["PATH"] = toolPath }
        env["NO_COLOR"] = "1"
        process.environment = env
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        collect(outPipe.fileHandleForReading, isError: false)
        collect(errPipe.fileHandleForReading, isError: true)
    }

    private func collect(_ handle: FileHandle, isError: Bool) {
        readers.enter()
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.lock()
                if isError { err.append(chunk) } else { out.append(chunk) }
                lock.unlock()
            }
            readers.leave()
        }
    }

    var pid: Int32 { process.processIdentifier }

    var stderrSoFar: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: err, as: UTF8.self)
    }

    /// Waits until a complete stderr line satisfies `predicate` (returns it), or the child ends, or the deadline passes (nil).
    func waitForStderrLine(timeout: TimeInterval = 180, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = stderrSoFar
            let complete = text.hasSuffix("\n") ? text : String(text[..<(text.lastIndex(of: "\n") ?? text.startIndex)])
            if let line = complete.split(separator: "\n").map(String.init).first(where: predicate) { return line }
            if !process.isRunning { return nil }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the end (at most `timeout`, then SIGKILL and a test failure) and returns the outcome.
    func finish(timeout: TimeInterval = 240) throws -> ProcessOutcome {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            readers.wait()
            throw CLITestFailure("\(commandLine) did not end within \(Int(timeout)) s; killed. stderr:\n\(stderrSoFar)")
        }
        process.waitUntilExit()
        readers.wait()
        lock.lock()
        defer { lock.unlock() }
        return ProcessOutcome(status: process.terminationStatus, exited: process.terminationReason == .exit,
                              stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}

/// Runs a program to its end (bounded).
@discardableResult
func run(_ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String]? = nil,
         timeout: TimeInterval = 240) throws -> ProcessOutcome {
    try RunningProcess(executable, arguments, currentDirectory: directory, environment: environment).finish(timeout: timeout)
}

/// Runs a tool that must succeed; returns its standard output.
@discardableResult
func tool(_ executable: String, _ arguments: [String], in directory: String? = nil) throws -> String {
    let outcome = try run(executable, arguments, in: directory)
    guard outcome.exited, outcome.status == 0 else {
        throw CLITestFailure("\(([executable] + arguments).joined(separator: " ")) failed: \(outcome)")
    }
    return outcome.stdout
}

/// A copy of the repository's demo fleet in a temporary folder, its manifest editable as JSON.
/// Tests never write into the repository.
struct DemoFleet: Sendable {
    let directory: String
    let executable: String

    /// Copies fleet.json, base/, certs/, keys/, variants/ and lets `edit` change the manifest.
    init(_ label: String, edit: (inout [String: Any]) -> Void = { _ in }) throws {
        executable = try CLILocation.executable()
        directory = NSTemporaryDirectory() + "fleet-images-cli-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sources = ["fleet.json", "base", "certs", "keys", "variants"].map { CLILocation.repository + "/" + $0 }
        try tool("cp", ["-a"] + sources + [directory + "/"])
        var manifest = try readManifest()
        edit(&manifest)
        try writeManifest(manifest)
    }

    var manifestPath: String { directory + "/fleet.json" }
    var state: String { directory + "/.fleet-images" }
    var database: String { state + "/provenance.sqlite" }
    /// The output folder named by the manifest.
    var output: String {
        let manifest = (try? readManifest()) ?? [:]
        let relative = ((manifest["output"] as? [String: Any])?["directory"] as? String) ?? "build/images"
        return directory + "/" + relative
    }

    func readManifest() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CLITestFailure("\(manifestPath) is not a JSON object")
        }
        return object
    }

    func writeManifest(_ manifest: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: manifestPath))
    }

    /// Runs `fleet-images ARGS` in the fleet folder (so `fleet.json` is the default manifest).
    @discardableResult
    func cli(_ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval = 240) throws -> ProcessOutcome {
        try run(executable, arguments, in: directory, environment: environment, timeout: timeout)
    }

    func start(_ arguments: [String]) throws -> RunningProcess {
        try RunningProcess(executable, arguments, currentDirectory: directory)
    }

    /// Runs `fleet-images ARGS --json` that must succeed and parses its standard output.
    func json(_ arguments: [String]) throws -> [String: Any] {
        let outcome = try cli(arguments + ["--json"])
        guard outcome.exited, outcome.status == 0 else { throw CLITestFailure("fleet-images \(arguments.joined(separator: " ")) --json: \(outcome)") }
        return try parseJSON(outcome.stdout)
    }

    /// The variant ids in plan order.
    func variantIDs() throws -> [String] {
        try (json(["plan"])["variants"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func parseJSON(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw CLITestFailure("not a JSON object: \(text.prefix(300))")
    }
    return object
}

/// Sites trimmed to the first `count` of the demo's six.
func keepSites(_ count: Int) -> (inout [String: Any]) -> Void {
    { manifest in manifest["sites"] = Array((manifest["sites"] as? [Any] ?? []).prefix(count)) }
}

/// `build --json` summary: variant id → status.
func statuses(_ summary: [String: Any]) -> [String: String] {
    var result: [String: String] = [:]
    for entry in summary["variants"] as? [[String: Any]] ?? [] {
        if let id = entry["variant"] as? String, let status = entry["status"] as? String { result[id] = status }
    }
    return result
}

/// The ids whose status is `status`, sorted.
func ids(_ statuses: [String: String], _ status: String) -> [String] {
    statuses.filter { $0.value == status }.map(\.key).sorted()
}

// MARK: - Reading the output folder with independent tools

/// What one image folder in the output holds.
struct ImageFolder {
    var variant: String
    var path: String
    var image: String { path + "/" + variant + ".img" }
}

enum OutputCheck {
    static let sidecars = [".img", ".img.bmap", ".img.sha256", ".img.sig", ".img.intoto.json"]

    /// Every entry of `<output>/<variant>/` except `latest`; hidden ones included.
    static func entries(_ output: String, _ variant: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: output + "/" + variant)) ?? []).filter { $0 != "latest" }.sorted()
    }

    /// Problems found in the output folder: hidden leftovers (`.incoming-*`), folders without the
    /// complete set, and (with `verify`) images whose signature or `.sha256` does not match, checked
    /// with openssl two at a time. Returns the complete image folders per variant.
    static func audit(_ output: String, publicKey: String, verify: Bool = true) throws -> (folders: [String: [ImageFolder]], problems: [String]) {
        var problems: [String] = []
        var folders: [String: [ImageFolder]] = [:]
        let variants = ((try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []).sorted()
        for variant in variants {
            if variant.hasPrefix(".") { problems.append("\(output)/\(variant): hidden leftover in the output folder"); continue }
            for name in entries(output, variant) {
                let path = output + "/" + variant + "/" + name
                if name.hasPrefix(".") { problems.append("\(path): hidden leftover (a partial placement)"); continue }
                let present = Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                let expected = Set(sidecars.map { variant + $0 })
                if present != expected {
                    problems.append("\(path) holds \(present.sorted()), expected \(expected.sorted())")
                    continue
                }
                folders[variant, default: []].append(ImageFolder(variant: variant, path: path))
            }
        }
        if verify {
            problems += concurrently(folders.values.joined().map { $0 }) { folder in
                do { return try OutputCheck.verify(folder, publicKey: publicKey) } catch { return "\(folder.image): \(error)" }
            }.compactMap { $0 }
        }
        return (folders, problems)
    }

    /// `openssl dgst -verify` on the image and its `.sig`, and the `.sha256` line against
    /// `openssl dgst -sha256` (as `sha256sum -c` would, five times faster); nil when both pass.
    static func verify(_ folder: ImageFolder, publicKey: String) throws -> String? {
        let signature = try run("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", folder.image + ".sig", folder.image])
        guard signature.status == 0, signature.stdout.contains("Verified OK") else {
            return "\(folder.image): openssl dgst -verify: \(signature)"
        }
        let digest = try tool("openssl", ["dgst", "-sha256", "-r", folder.image]).split(separator: " ").first.map(String.init) ?? "?"
        let recorded = (try? String(contentsOfFile: folder.image + ".sha256", encoding: .utf8)) ?? ""
        guard recorded == "\(digest)  \(folder.variant).img\n" else {
            return "\(folder.image).sha256 says \(recorded.debugDescription), the image's SHA-256 is \(digest)"
        }
        return nil
    }
}

/// Runs `body` on every item, two at a time (the machine has two cores), results in item order.
/// Call #expect on the results afterwards: expectations need the test's own task.
func concurrently<T: Sendable, R: Sendable>(_ items: [T], _ body: @Sendable (T) -> R) -> [R] {
    let results = ResultBox<R>(count: items.count)
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: items.count) { index in
            results.set(index, body(items[index]))
        }
    }
    return results.values
}

/// The slots `concurrently` fills from several threads.
final class ResultBox<R>: @unchecked Sendable {
    // @unchecked: `slots` is only touched under `lock`.
    private let lock = NSLock()
    private var slots: [R?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: R) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }
    var values: [R] {
        lock.lock()
        defer { lock.unlock() }
        return slots.map { $0! }
    }
}

// MARK: - Reading inside an image

/// The byte offset of partition `number` (1–4) in an MBR image, read from the table itself.
func partitionOffset(_ image: String, number: Int) throws -> Int {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: image))
    defer { try? handle.close() }
    guard let sector = try handle.read(upToCount: 512), sector.count == 512, sector[510] == 0x55, sector[511] == 0xAA else {
        throw CLITestFailure("\(image): no MBR partition table")
    }
    let entry = 446 + (number - 1) * 16
    let lba = (0..<4).reduce(0) { $0 | Int(sector[entry + 8 + $1]) << (8 * $1) }
    return lba * 512
}

/// `debugfs -R COMMAND` on the image's root (ext4, partition 2) file system.
func debugfs(_ image: String, _ command: String) throws -> String {
    let offset = try partitionOffset(image, number: 2)
    return try tool("debugfs", ["-R", command, "\(image)?offset=\(offset)"])
}

/// Mode and owner of a file in the root file system, from `debugfs stat`.
func ext4Stat(_ image: String, _ path: String) throws -> (mode: String, uid: String, gid: String) {
    let text = try debugfs(image, "stat \(path)")
    func field(_ name: String) -> String {
        guard let range = text.range(of: name + ":") else { return "?" }
        return text[range.upperBound...].split(whereSeparator: { $0 == " " || $0 == "\n" }).first.map(String.init) ?? "?"
    }
    return (field("Mode"), field("User"), field("Group"))
}

// MARK: - Waiting for events in the child's stderr

/// `2026-…Z <variant>: built <path>`: the variant id, or nil for other lines.
func builtVariant(_ line: String) -> String? {
    let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
    guard parts.count >= 3, parts[1].hasSuffix(":"), parts[2] == "built" else { return nil }
    return String(parts[1].dropLast())
}

/// Writes `text` to `path` (creating folders).
func write(_ text: String, to path: String, mode: Int = 0o644) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, mode_t(mode))
}
