import Foundation
import Testing
@testable import FleetImagesCore

/// A private temporary folder, removed when the value is deinitialised.
final class ProvenanceTempDirectory: @unchecked Sendable {  // immutable after init
    let path: String

    init() throws {
        var template = Array(((NSTemporaryDirectory() as NSString).appendingPathComponent("provenance-test-XXXXXX")).utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ProvenanceError.io(path: NSTemporaryDirectory(), operation: "mkdtemp", errno: errno)
        }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs a real tool (sqlite3, openssl) and returns its status and output.
enum ProvenanceTool {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdin: [UInt8]? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/" + executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin)) }
        try input.fileHandleForWriting.close()
        // Read stderr on another thread while this one reads stdout, so a chatty tool cannot
        // block on a full pipe.
        let errBox = Box()
        let errDone = DispatchSemaphore(value: 0)
        let errHandle = err.fileHandleForReading
        DispatchQueue.global().async {
            errBox.value = errHandle.readDataToEndOfFile()
            errDone.signal()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errBox.value, as: UTF8.self))
    }

    final class Box: @unchecked Sendable {  // written by the reading thread before it signals, read after the wait
        var value = Data()
    }

    /// `sqlite3 -batch PATH SQL` output lines.
    static func sqlite(_ path: String, _ sql: String) throws -> [String] {
        let result = try run("sqlite3", ["-batch", path, sql])
        #expect(result.status == 0, "sqlite3 failed: \(result.stderr)")
        return result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }
}

/// Golden files under Tests/FleetImagesCoreTests/Golden/provenance/. Set
/// `FLEET_IMAGES_UPDATE_GOLDEN=1` to rewrite them from the current output.
enum ProvenanceGolden {
    static let directory: String = {
        let support = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return support.deletingLastPathComponent().appendingPathComponent("Golden/provenance").path
    }()

    static func check(_ actual: String, against name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = (directory as NSString).appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["FLEET_IMAGES_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try actual.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOfFile: path, encoding: .utf8) else {
            Issue.record("missing golden file \(path); run with FLEET_IMAGES_UPDATE_GOLDEN=1 to create it", sourceLocation: sourceLocation)
            return
        }
        if expected != actual {
            let temporary = try ProvenanceTempDirectory()
            let actualPath = temporary.file(name)
            try actual.write(toFile: actualPath, atomically: true, encoding: .utf8)
            let diff = try ProvenanceTool.run("diff", ["-u", path, actualPath]).stdout
            Issue.record("\(name) differs from its golden file (FLEET_IMAGES_UPDATE_GOLDEN=1 rewrites it):\n\(diff)", sourceLocation: sourceLocation)
        }
    }
}

/// A fixed data set: two runs over four manifest variants, dates fixed in June 2025.
enum ProvenanceFixture {
    static let t0 = Date(timeIntervalSince1970: 1_748_743_200)  // 2025-06-01 02:00:00 UTC
    static let manifestVariantIDs = ["zrh-lab-arm64", "zrh-lab-armhf", "ber-office-arm64", "mad-depot-arm64"]
    static let sha = (
        image1: "3f5a0c1e9b7d2a4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809",
        image2: "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d",
        manifest: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        inputs1: "1111111111111111111111111111111111111111111111111111111111111111",
        inputs2: "2222222222222222222222222222222222222222222222222222222222222222",
        inputs3: "3333333333333333333333333333333333333333333333333333333333333333",
        key: "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff"
    )

    static func runStart(at date: Date, pid: Int32 = 4242) -> RunStart {
        RunStart(
            startedAt: date, commandLine: "fleet-images build --parallel 2", manifestPath: "fleet.json",
            manifestSHA256: sha.manifest, toolVersion: "0.1.0", host: "builder-1", pid: pid,
            parallelism: 2, plannedCount: 3)
    }

    static func inputs(site: String) -> [BuildInput] {
        [
            BuildInput(
                role: .claimCertificate, name: "certs/\(site)/claim.pem.crt",
                digest: "4444444444444444444444444444444444444444444444444444444444444444",
                certificate: CertificateSummary(
                    fingerprint: "5555555555555555555555555555555555555555555555555555555555555555",
                    subject: "CN=\(site)-claim,O=Example Fleet", notAfter: Date(timeIntervalSince1970: 1_782_864_000))),
            BuildInput(
                role: .claimPrivateKey, name: "certs/\(site)/claim.private.pem.key",
                digest: "6666666666666666666666666666666666666666666666666666666666666666", digestKind: .hmacSHA256),
            BuildInput(
                role: .wifiPSK, name: "env:WIFI_PSK_\(site.uppercased().replacingOccurrences(of: "-", with: "_"))",
                digest: "7777777777777777777777777777777777777777777777777777777777777777", digestKind: .hmacSHA256),
            BuildInput(
                role: .baseImage, name: "2024-11-19-raspios-bookworm-arm64-lite.img.xz",
                digest: "8888888888888888888888888888888888888888888888888888888888888888",
                url: "https://downloads.raspberrypi.com/raspios_lite_arm64/images/2024-11-19-raspios-bookworm-arm64-lite.img.xz"),
            BuildInput(
                role: .template, name: "variants/raspios-lite.json",
                digest: "9999999999999999999999999999999999999999999999999999999999999999"),
        ]
    }

    static func artifact(_ variant: String, sha256: String, size: Int64) -> BuildArtifact {
        BuildArtifact(
            path: "build/images/\(variant).img", size: size, sha256: sha256,
            signaturePath: "build/images/\(variant).img.sig", signingKeyFingerprint: sha.key)
    }

    struct IDs {
        var run1: Int64, run2: Int64
        var zrhArm64First: Int64, zrhArmhf: Int64, berFailed: Int64, zrhArm64UpToDate: Int64, berSecond: Int64
    }

    /// Run 1 (succeeded partially): zrh-lab-arm64 built, zrh-lab-armhf built, ber-office-arm64 failed.
    /// Run 2 (failed): zrh-lab-arm64 up to date, ber-office-arm64 failed again; mad-depot-arm64 never built.
    @discardableResult
    static func populate(_ store: ProvenanceStore) throws -> IDs {
        func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }
        let run1 = try store.beginRun(runStart(at: at(0)))
        let zrh64 = try store.beginBuild(
            runID: run1,
            BuildStart(
                variantID: "zrh-lab-arm64", site: "zrh-lab", matrix: ["arch": "arm64"], builder: "inject",
                inputsDigest: sha.inputs1, startedAt: at(1), logPath: "build/logs/1/zrh-lab-arm64.log"),
            inputs: inputs(site: "zrh-lab"))
        let zrh32 = try store.beginBuild(
            runID: run1,
            BuildStart(
                variantID: "zrh-lab-armhf", site: "zrh-lab", matrix: ["arch": "armhf"], builder: "packer-docker",
                builderImageDigest: "mkaczanowski/packer-builder-arm@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                inputsDigest: sha.inputs2, startedAt: at(1.5), logPath: "build/logs/1/zrh-lab-armhf.log"),
            inputs: inputs(site: "zrh-lab"))
        try store.finishBuild(
            id: zrh64,
            .succeeded(artifact("zrh-lab-arm64", sha256: sha.image1, size: 2_786_918_400),
                       provenancePath: "build/images/zrh-lab-arm64.img.intoto.json", finishedAt: at(186.5)))
        let ber = try store.beginBuild(
            runID: run1,
            BuildStart(
                variantID: "ber-office-arm64", site: "ber-office", matrix: ["arch": "arm64"], builder: "inject",
                inputsDigest: sha.inputs3, startedAt: at(187), logPath: "build/logs/1/ber-office-arm64.log"),
            inputs: inputs(site: "ber-office"))
        try store.finishBuild(
            id: ber,
            .failed("debugfs: /etc/hostname: Could not allocate block in ext2 filesystem", exitCode: 1, finishedAt: at(200.25)))
        try store.finishBuild(
            id: zrh32,
            .succeeded(artifact("zrh-lab-armhf", sha256: sha.image2, size: 2_147_483_648),
                       provenancePath: "build/images/zrh-lab-armhf.img.intoto.json", finishedAt: at(3_901)))
        try store.finishRun(id: run1, status: .failed, counts: RunCounts(planned: 3, built: 2, failed: 1), finishedAt: at(3_902))

        let day = 86_400.0
        let run2 = try store.beginRun(runStart(at: at(day), pid: 4343))
        let upToDate = try store.recordUpToDate(runID: run2, reusing: zrh64, at: at(day + 2))
        let ber2 = try store.beginBuild(
            runID: run2,
            BuildStart(
                variantID: "ber-office-arm64", site: "ber-office", matrix: ["arch": "arm64"], builder: "inject",
                inputsDigest: sha.inputs3, startedAt: at(day + 3), logPath: "build/logs/2/ber-office-arm64.log"),
            inputs: inputs(site: "ber-office"))
        try store.finishBuild(id: ber2, .failed("exit status 1", exitCode: 1, finishedAt: at(day + 45)))
        try store.finishRun(
            id: run2, status: .failed, counts: RunCounts(planned: 3, upToDate: 1, failed: 1, skipped: 1),
            finishedAt: at(day + 46))
        return IDs(
            run1: run1, run2: run2, zrhArm64First: zrh64, zrhArmhf: zrh32, berFailed: ber,
            zrhArm64UpToDate: upToDate, berSecond: ber2)
    }
}
