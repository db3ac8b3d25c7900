import Foundation
import Testing

// Support for the boot tests (DeviceBootTests.swift): the test bed of scripts/testbed builds
// Raspberry Pi OS-like arm64 base images from Debian's packages and boots images under
// qemu-system-aarch64 with no network device; a probe in the base prints what the booted device
// looks like from inside. Everything asserted comes from that report, never from the builder.

enum TestBed {
    /// `FLEET_IMAGES_BOOT_TESTS=1` (scripts/test.sh sets it once the bases are built).
    static var enabled: Bool { ProcessInfo.processInfo.environment["FLEET_IMAGES_BOOT_TESTS"] == "1" }

    static let scripts = CLILocation.repository + "/scripts/testbed"

    /// The cached test base of `suite` (bookworm, trixie): its raw image and that image's SHA-256.
    /// Built on the first call on a machine (tens of minutes), printed from the cache afterwards.
    static func base(_ suite: String) throws -> (image: String, sha256: String) {
        let outcome = try run(scripts + "/make-test-base.sh", [suite], timeout: 3600)
        let image = outcome.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard outcome.exited, outcome.status == 0, FileManager.default.fileExists(atPath: image) else {
            throw CLITestFailure("make-test-base.sh \(suite): \(outcome)")
        }
        let line = try String(contentsOfFile: image + ".sha256", encoding: .utf8)
        guard let digest = line.split(separator: " ").first.map(String.init), digest.count == 64 else {
            throw CLITestFailure("\(image).sha256 holds \(line.debugDescription)")
        }
        return (image, digest)
    }

    /// Boots `image` (changed in place: pass a copy) with the device serial `serial` and returns the
    /// probe's report. `label` names the console log, kept in `$TMPDIR/fleet-images-boot-consoles`
    /// after the test's folder is gone.
    static func boot(_ image: String, serial: String, label: String) throws -> ProbeReport {
        // Kept after the test's folder is removed, so a failing boot can be read afterwards.
        let consoles = NSTemporaryDirectory() + "fleet-images-boot-consoles"
        try FileManager.default.createDirectory(atPath: consoles, withIntermediateDirectories: true)
        let consoleLog = consoles + "/\(label)-\(ProcessInfo.processInfo.processIdentifier).log"
        let started = Date()
        let outcome = try run(scripts + "/boot.sh", [image, "--serial", serial, "--timeout", "1200", "--console-log", consoleLog],
                              timeout: 1320)
        guard outcome.exited, outcome.status == 0 else {
            throw CLITestFailure("boot \(label) (serial \(serial)) gave no report:\n\(outcome.stderr.suffix(6000))")
        }
        let report = ProbeReport(outcome.stdout)
        guard report.value("probe.done") != nil else {
            throw CLITestFailure("boot \(label): the report is incomplete (no probe.done):\n\(outcome.stdout)\n\(outcome.stderr.suffix(3000))")
        }
        print("boot \(label): console \(consoleLog); \(Int(Date().timeIntervalSince(started))) s (\(outcome.stderr.split(separator: "\n").last ?? ""))")
        return report
    }

    /// A sparse copy of `source` at `destination`.
    static func copy(_ source: String, to destination: String) throws {
        try tool("cp", ["--sparse=always", source, destination])
    }
}

/// The probe's report: `key=value` lines and `[begin NAME]` … `[end NAME rc=N]` sections.
/// It holds no secret (the probe prints digests of the PSK and the password hash), so a failing
/// expectation may show it whole.
struct ProbeReport: CustomStringConvertible {
    let text: String
    private(set) var values: [(key: String, value: String)] = []
    private(set) var sections: [String: (lines: [String], status: Int?)] = [:]

    init(_ text: String) {
        self.text = text
        var open: (name: String, lines: [String])?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if var current = open {
                if line.hasPrefix("[end \(current.name) rc=") {
                    let status = Int(line.dropFirst("[end \(current.name) rc=".count).dropLast())
                    sections[current.name] = (current.lines, status)
                    open = nil
                } else {
                    current.lines.append(line)
                    open = current
                }
            } else if line.hasPrefix("[begin "), line.hasSuffix("]") {
                open = (String(line.dropFirst("[begin ".count).dropLast()), [])
            } else if let equals = line.firstIndex(of: "=") {
                values.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
            }
        }
    }

    /// The first value of `key`.
    func value(_ key: String) -> String? { values.first { $0.key == key }?.value }

    /// Every value of a repeated key (`user`, `wifi.connection`).
    func all(_ key: String) -> [String] { values.filter { $0.key == key }.map(\.value) }

    /// Values whose key starts with `prefix`, keyed by the rest.
    func values(prefixed prefix: String) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in values where key.hasPrefix(prefix) { result[String(key.dropFirst(prefix.count))] = value }
        return result
    }

    func section(_ name: String) -> [String]? { sections[name]?.lines }

    var description: String { text }
}

/// SHA-256 (lower-case hex) of `text`'s UTF-8 bytes, with the openssl CLI.
func sha256Hex(_ text: String) throws -> String {
    let path = NSTemporaryDirectory() + "fleet-images-sha-\(UUID().uuidString)"
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let out = try tool("openssl", ["dgst", "-sha256", "-r", path])
    return out.split(separator: " ").first.map(String.init) ?? ""
}

/// The WPA-PSK of `passphrase` on `ssid` (PBKDF2-HMAC-SHA1, 4096 rounds, 32 bytes) as 64 hex digits, with openssl.
func wpaPSK(passphrase: String, ssid: String) throws -> String {
    let out = try tool("openssl", ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA1", "-kdfopt", "pass:\(passphrase)",
                                   "-kdfopt", "salt:\(ssid)", "-kdfopt", "iter:4096", "PBKDF2"])
    return out.replacingOccurrences(of: ":", with: "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
}
