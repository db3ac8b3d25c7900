import Foundation
@testable import FleetImagesCore

/// Runs a command line tool to the end: its exit status, standard output and standard error.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: Data? = nil, currentDirectory: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    if let environment { process.environment = environment }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(input) }
    try inPipe.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// Runs a command line tool and returns its standard output; throws with its standard error when it fails.
@discardableResult
func runTool(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: Data? = nil, currentDirectory: String? = nil) throws -> String {
    let result = try runProcess(executable, arguments, environment: environment, input: input, currentDirectory: currentDirectory)
    guard result.status == 0 else {
        throw ToolFailure(command: ([executable] + arguments).joined(separator: " "), status: result.status, stderr: result.stderr)
    }
    return result.stdout
}

struct ToolFailure: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var stderr: String
    var description: String { "\(command) exited \(status): \(stderr)" }
}

func makeTemporaryDirectory(_ label: String = "fleet-images-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A throw-away fleet folder: claim certificates and keys made with the openssl command line,
/// a signing key pair, Wi-Fi passphrase files, a stand-in base image file, and a manifest
/// written from a dictionary so each test states exactly the JSON it needs.
struct TestFleet {
    let directory: String

    init(sites: [String] = ["alpha", "beta"], certificateDays: Int = 3650) throws {
        directory = try makeTemporaryDirectory()
        try write("base/base.img", "not really an image\n")
        for site in sites {
            try makeClaim(site: site, days: certificateDays)
            try write("certs/\(site)/wifi.psk", "psk-of-\(site)-secret\n", mode: 0o600)
        }
        try FileManager.default.createDirectory(atPath: directory + "/keys", withIntermediateDirectories: true)
        try runTool("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", directory + "/keys/signing.key.pem"])
        chmod(directory + "/keys/signing.key.pem", 0o600)
        try runTool("openssl", ["pkey", "-in", directory + "/keys/signing.key.pem", "-pubout", "-out", directory + "/keys/signing.pub.pem"])
        try write("variants/common/config.yaml", "greengrass: config\n")
        try write("variants/common/provision.sh", "#!/bin/sh\necho provision\n", mode: 0o755)
    }

    func makeClaim(site: String, days: Int) throws {
        let folder = directory + "/certs/\(site)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try runTool("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                "-keyout", folder + "/claim.private.pem.key", "-out", folder + "/claim.pem.crt",
                                "-days", String(days), "-subj", "/CN=\(site) test claim"])
        chmod(folder + "/claim.private.pem.key", 0o600)
    }

    func write(_ relative: String, _ text: String, mode: mode_t = 0o644) throws {
        let path = directory + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    var manifestPath: String { directory + "/fleet.json" }

    /// A complete, valid manifest for `sites`, which `edit` may change before it is written.
    func writeManifest(sites: [String] = ["alpha", "beta"], _ edit: (inout [String: Any]) -> Void = { _ in }) throws {
        var manifest: [String: Any] = [
            "format": 1,
            "fleet": "test",
            "base_image": ["source": "base/base.img", "sha256": (try? runTool("sha256sum", [directory + "/base/base.img"]))?.prefix(64).description ?? "", "arch": "arm64"],
            "builder": ["type": "inject"],
            "signing": ["private_key": "keys/signing.key.pem", "public_key": "keys/signing.pub.pem"],
            "defaults": [
                "iot": ["role_alias": "TestRoleAlias", "provisioning_template": "TestTemplate"],
                "wifi": ["country": "CH"],
                "files": [["source": "variants/common/config.yaml", "destination": "/home/pi/config.yaml", "owner": "1000:1000"]],
            ] as [String: Any],
            "sites": sites.map { site -> [String: Any] in
                [
                    "id": site, "region": "eu-central-1",
                    "iot": ["data_endpoint": "abc123-ats.iot.eu-central-1.amazonaws.com",
                            "credential_endpoint": "xyz789.credentials.iot.eu-central-1.amazonaws.com"],
                    "claim": ["certificate": "certs/\(site)/claim.pem.crt", "private_key": "certs/\(site)/claim.private.pem.key"],
                    "wifi": ["ssid": "\(site)-net", "psk_file": "certs/\(site)/wifi.psk"],
                ]
            },
        ]
        edit(&manifest)
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: manifestPath))
    }

    func load(environment: [String: String] = [:], only: String? = nil) -> FleetLoader.Outcome {
        FleetLoader.load(manifestPath: manifestPath, environment: environment, only: only)
    }
}

/// Compares `actual` with the golden file at `Golden/<name>`; with FLEET_IMAGES_UPDATE_GOLDEN=1 rewrites it.
func goldenMismatch(_ actual: String, name: String, filePath: String = #filePath) -> String? {
    let testsRoot = URL(fileURLWithPath: filePath).deletingLastPathComponent()
    var root = testsRoot
    while root.lastPathComponent != "FleetImagesCoreTests" && root.path != "/" { root.deleteLastPathComponent() }
    let golden = root.appendingPathComponent("Golden/" + name)
    if ProcessInfo.processInfo.environment["FLEET_IMAGES_UPDATE_GOLDEN"] == "1" {
        try? FileManager.default.createDirectory(at: golden.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? Data(actual.utf8).write(to: golden)
        return nil
    }
    guard let expected = try? String(contentsOf: golden, encoding: .utf8) else {
        return "golden file \(golden.path) is missing; run the tests with FLEET_IMAGES_UPDATE_GOLDEN=1 to create it"
    }
    if expected == actual { return nil }
    let actualFile = NSTemporaryDirectory() + "actual-" + golden.lastPathComponent
    try? Data(actual.utf8).write(to: URL(fileURLWithPath: actualFile))
    let diff = (try? runProcess("diff", ["-u", golden.path, actualFile]).stdout) ?? "(diff unavailable)"
    return "output differs from \(golden.path) (FLEET_IMAGES_UPDATE_GOLDEN=1 rewrites it):\n\(diff)"
}
