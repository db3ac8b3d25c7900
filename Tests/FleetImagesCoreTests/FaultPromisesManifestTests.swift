import Foundation
import Testing
@testable import FleetImagesCore

/// Issue 11, the manifest side: what `validate` promises under hostile input, each fault made for
/// real (a FIFO from mkfifo, a symlinked folder, raw bytes) and each test named after its promise.
@Suite(.serialized) struct FaultPromisesManifestTests {
    func messages(_ outcome: FleetLoader.Outcome) -> String {
        outcome.diagnostics.map(\.description).joined(separator: "\n")
    }

    func mkfifo(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: path)
        try runTool("mkfifo", [path])
    }

    /// Runs `body` on its own thread and fails the test (instead of hanging it) when it has not
    /// returned within `seconds`; then opens each FIFO for writing, so a blocked reader gets EOF.
    func withinDeadline<T: Sendable>(_ seconds: Double = 20, releasing fifos: [String], _ body: @escaping @Sendable () -> T) -> T? {
        let done = DispatchSemaphore(value: 0)
        let box = Box<T>()
        Thread { box.value = body(); done.signal() }.start()
        if done.wait(timeout: .now() + seconds) == .timedOut {
            Issue.record("still blocked after \(seconds) s: a read waited on a FIFO")
            for fifo in fifos {
                let fd = open(fifo, O_WRONLY | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
            _ = done.wait(timeout: .now() + 10)
            return nil
        }
        return box.value
    }

    // MARK: - Item 5: non-regular files are refused, and nothing blocks on them

    @Test func validateRefusesAFIFOAsAFileSourceWithoutBlocking() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        let fifo = fleet.directory + "/variants/common/config.yaml"
        try mkfifo(fifo)
        let outcome = withinDeadline(releasing: [fifo]) { fleet.load() }
        let text = outcome.map(messages) ?? ""
        #expect(outcome?.hasErrors == true)
        #expect(text.contains("error: defaults.files[0].source: file variants/common/config.yaml is a FIFO (named pipe), not a regular file"), "\(text)")
    }

    /// Every place the manifest names a file takes only a regular file; a FIFO in any of them is an
    /// error at that place, found without opening it.
    @Test(arguments: [
        ("certs/alpha/claim.pem.crt", "sites[0].claim.certificate"),
        ("certs/alpha/claim.private.pem.key", "sites[0].claim.private_key"),
        ("certs/beta/wifi.psk", "sites[1].wifi.psk_file"),
        ("certs/common/fleet.passwd", "defaults.user.password_hash_file"),
        ("keys/ops/id.pub", "defaults.ssh.authorized_keys[0]"),
        ("keys/signing.pub.pem", "signing.public_key"),
        ("base/base.img", "base_image.source"),
    ])
    func aFIFOInAnyInputPlaceIsRefusedAtItsPath(_ relative: String, _ location: String) throws {
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        let fifo = fleet.directory + "/" + relative
        try mkfifo(fifo)
        let outcome = withinDeadline(releasing: [fifo]) { fleet.load() }
        let text = outcome.map(messages) ?? ""
        #expect(text.contains("error: \(location): ") && text.contains("\(relative) is a FIFO (named pipe), not a regular file"), "\(text)")
    }

    @Test func aSocketAsAFileSourceIsRefused() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        let socket = fleet.directory + "/variants/common/config.yaml"
        try FileManager.default.removeItem(atPath: socket)
        try runTool("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", socket])
        let text = messages(fleet.load())
        #expect(text.contains("error: defaults.files[0].source: file variants/common/config.yaml is a socket"), "\(text)")
    }

    @Test func aFIFOInAnOverlayTreeIsRefusedWithItsPath() throws {
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        let fifo = fleet.directory + "/variants/alpha/etc/fleet.conf"
        try mkfifo(fifo)
        let outcome = withinDeadline(releasing: [fifo]) { fleet.load() }
        let text = outcome.map(messages) ?? ""
        #expect(text.contains("error: variants/alpha/etc/fleet.conf: only regular files can be overlaid (this is a FIFO (named pipe))"), "\(text)")
    }

    @Test func aFIFOAsTheManifestIsRefusedWithoutBlocking() throws {
        let directory = try makeTemporaryDirectory()
        let fifo = directory + "/fleet.json"
        try mkfifo(fifo)
        let result = withinDeadline(releasing: [fifo]) { ManifestReader.read(path: fifo) }
        #expect(result?.manifest == nil)
        #expect(result?.diagnostics.map(\.description) == ["error: \(fifo): cannot read the manifest: it is a FIFO (named pipe), not a regular file; name a regular file; pass --manifest PATH or run from the folder holding fleet.json"], "\(String(describing: result?.diagnostics))")
    }

    /// Even past `validate` (a file swapped for a FIFO between the check and the build), the
    /// readers the build uses open without blocking and refuse what is not a regular file.
    @Test func buildReadersRefuseAFIFOWithoutBlocking() throws {
        let directory = try makeTemporaryDirectory()
        let fifo = directory + "/claim.pem.crt"
        try mkfifo(fifo)
        let certificate = withinDeadline(releasing: [fifo]) { () -> String in
            do { _ = try CertificateInfo.load(contentsOf: fifo); return "loaded" } catch { return "\(error)" }
        }
        #expect(certificate?.contains("expected a regular file, found a FIFO (named pipe)") == true, "\(certificate ?? "")")
        let digest = withinDeadline(releasing: [fifo]) { () -> String in
            do { return try Digest.sha256Hex(fileAt: fifo) } catch { return "\(error)" }
        }
        #expect(digest?.contains("FIFO") == true, "\(digest ?? "")")
        let copy = withinDeadline(releasing: [fifo]) { () -> String in
            do { try SparseCopy.copy(from: fifo, to: directory + "/copy.img"); return "copied" } catch { return "\(error)" }
        }
        #expect(copy?.contains("not a regular file") == true, "\(copy ?? "")")
        let secret = withinDeadline(releasing: [fifo]) { () -> String in
            switch InputFile.read(fifo, shown: "claim.pem.crt", what: "secret file") {
            case .success: "read"
            case .failure(let problem): problem.description
            }
        }
        #expect(secret == "secret file claim.pem.crt is a FIFO (named pipe), not a regular file; name a regular file")
    }

    // MARK: - Item 10: one destination check for validate and build

    /// Destinations that the ext4/FAT editors would refuse at build time, or that the device would
    /// never show, are refused by `validate`, at their JSON path.
    @Test(arguments: [
        ("/etc//motd", "contains //"),
        ("/etc/" + String(repeating: "n", count: 256), "a name of 256 bytes"),
        (String(repeating: "/abcdefghijklmnopqrstuvwxyz", count: 160), "bytes long"),
        ("/proc/fleet", "under /proc"),
        ("/sys/class/x", "under /sys"),
        ("/dev/fleet", "under /dev"),
        ("/run/fleet/state", "under /run"),
        ("/boot/firmware/a:b.txt", "FAT boot partition"),
        ("/boot/firmware", "where the boot partition is mounted"),
        ("/etc/mo\ttd", "control character"),
    ])
    func destinationsTheBuildCannotWriteAreRefusedByValidate(_ destination: String, _ expected: String) throws {
        let fleet = try TestFleet()
        try fleet.writeManifest { manifest in
            var defaults = manifest["defaults"] as! [String: Any]
            defaults["files"] = [["source": "variants/common/config.yaml", "destination": destination]]
            manifest["defaults"] = defaults
        }
        let outcome = fleet.load()
        let errors = outcome.diagnostics.filter { $0.severity == .error }
        #expect(errors.map(\.location) == ["defaults.files[0].destination"], "\(messages(outcome))")
        #expect(errors.first?.message.contains(expected) == true, "\(messages(outcome))")
        #expect((errors.first?.message.count ?? 0) < 400, "the message repeats a huge path")
    }

    /// The editors' own limits are the shared check's: whatever `validate` lets through, the ext4
    /// and FAT editors take.
    @Test func whatValidateAcceptsTheEditorsAccept() throws {
        let longest = "/" + Array(repeating: String(repeating: "d", count: 255), count: 12).joined(separator: "/")
        let accepted = ["/etc/motd", "/home/pi/.config/x y", "/usr/local/lib/fleet-images/provision.sh",
                        String(longest.prefix(ImagePath.maximumLength)), "/boot/firmware/config.txt"]
        for path in accepted {
            #expect(ImagePath.destinationProblem(path, bootMount: "/boot/firmware") == nil, "\(path.prefix(40))")
            #expect(throws: Never.self) { _ = try Ext4Path.components(of: path) }
        }
        #expect(throws: Never.self) { _ = try FATEditor.components(of: "/config.txt") }
        let tooLong = String(longest.prefix(ImagePath.maximumLength + 1))
        #expect(ImagePath.destinationProblem(tooLong, bootMount: nil) != nil)
        #expect(throws: DiskImageError.self) { _ = try Ext4Path.components(of: tooLong) }
    }

    @Test func aSymlinkedOverlayFolderIsAnErrorNotIgnored() throws {
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        try fleet.write("elsewhere/etc/issue", "from elsewhere\n")
        try FileManager.default.createDirectory(atPath: fleet.directory + "/variants", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: fleet.directory + "/variants/alpha", withDestinationPath: "../elsewhere")
        let outcome = fleet.load()
        #expect(outcome.hasErrors)
        #expect(outcome.diagnostics.map(\.location) == ["variants/alpha"], "\(messages(outcome))")
        #expect(messages(outcome).contains("the overlay folder of site alpha is a symbolic link"))
    }

    @Test func overlayFileNamesTheBuildCannotWriteAreRefused() throws {
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        try fleet.write("variants/alpha/boot/firmware/a:b.txt", "x\n")
        try fleet.write("variants/alpha/run/x", "x\n")
        try fleet.write("variants/alpha/etc/ok", "x\n")
        try FileManager.default.createSymbolicLink(atPath: fleet.directory + "/variants/alpha/etc/link", withDestinationPath: "ok")
        let outcome = fleet.load()
        let text = messages(outcome)
        #expect(outcome.diagnostics.map(\.location) == ["variants/alpha/boot/firmware/a:b.txt", "variants/alpha/etc/link", "variants/alpha/run/x"], "\(text)")
        #expect(text.contains("this is a symbolic link"), "\(text)")
    }
}

extension FaultPromisesManifestTests {
    // MARK: - Item 12: a key given twice is refused, with both places

    @Test func aDuplicateKeyIsRefusedWithBothPlaces() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        // Put a second "ssid" into alpha's wifi, after the first, as a hand edit would.
        var text = try String(contentsOfFile: fleet.manifestPath, encoding: .utf8)
        let first = try #require(text.range(of: "\"ssid\" : \"alpha-net\""))
        text.replaceSubrange(first, with: "\"ssid\" : \"alpha-net\",\n        \"ssid\" : \"evil-net\"")
        try Data(text.utf8).write(to: URL(fileURLWithPath: fleet.manifestPath))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let firstLine = try #require(lines.firstIndex { $0.contains("alpha-net") }) + 1
        let secondLine = try #require(lines.firstIndex { $0.contains("evil-net") }) + 1
        let outcome = fleet.load()
        #expect(outcome.manifest == nil)
        let duplicate = try #require(outcome.diagnostics.first { $0.location == "sites[0].wifi.ssid" }, "\(messages(outcome))")
        #expect(duplicate.severity == .error)
        #expect(duplicate.message.contains("given twice in one object (line \(firstLine), column 9 and line \(secondLine), column 9)"), "\(duplicate.message)")
        // Python, like jq, takes the last value: the one a reviewer's tools would show.
        let python = try runTool("python3", ["-c", "import json,sys; print(json.load(open(sys.argv[1]))['sites'][0]['wifi']['ssid'])", fleet.manifestPath])
        #expect(python.trimmingCharacters(in: .whitespacesAndNewlines) == "evil-net")
    }

    @Test func everyDuplicateIsReportedAtItsOwnPath() {
        let json = #"{"format": 1, "format": 1, "fleet": "f", "sites": [{"id": "a", "files": [{"source": "x", "source": "y"}]}], "matrix": {"b": ["x"], "b": ["y"]}}"#
        let (manifest, diagnostics) = ManifestReader.read(data: Data(json.utf8), filePath: "/fleet/fleet.json")
        #expect(manifest == nil)
        let duplicates = diagnostics.filter { $0.message.contains("given twice") }.map(\.location)
        #expect(duplicates == ["format", "sites[0].files[0].source", "matrix.b"], "\(diagnostics.map(\.description))")
    }

    @Test func theParserReadsEveryJSONFormAndRefusesMalformedOnes() throws {
        let text = #"{"a": [1, -2, 3.5, 1e3, -0, 0.25E-2, 9223372036854775807, 9223372036854775808], "s": "\u00e9\ud83d\ude00\n\t\"\\\/x", "t": true, "f": false, "n": null, "o": {}, "e": [], "ü": "ß"}"#
        let ours = try JSONValue.parse(Data(text.utf8))
        guard case .object(let fields) = ours else { Issue.record("not an object"); return }
        #expect(fields["a"] == .array([.integer(1), .integer(-2), .number(3.5), .number(1000), .integer(0), .number(0.0025), .integer(.max), .number(9223372036854775808)]))
        #expect(fields["s"] == .string("é😀\n\t\"\\/x"))
        #expect(fields["t"] == .bool(true) && fields["f"] == .bool(false) && fields["n"] == .null)
        #expect(fields["o"] == .object([:]) && fields["e"] == .array([]) && fields["ü"] == .string("ß"))
        for bad in [#"{"a": 01}"#, #"{"a": "x\q"}"#, "{\"a\": \"tab\there\"}", #"{"a": [1,]}"#, #"{"a" 1}"#, #"{a: 1}"#, #"{"a": 1} x"#, #"{"a": "\ud800"}"#, #"{"a": tru}"#, String(repeating: "[", count: 300) + String(repeating: "]", count: 300)] {
            #expect(throws: (any Error).self, "\(bad.prefix(30))") { try JSONValue.parse(Data(bad.utf8)) }
        }
    }

    @Test func aSyntaxErrorNamesLineAndColumn() {
        let (_, diagnostics) = ManifestReader.read(data: Data("{\n  \"format\": 1,\n  \"fleet\": \"f\"\n  \"sites\": []\n}".utf8), filePath: "/fleet/fleet.json")
        #expect(diagnostics.map(\.description) == ["error: /fleet/fleet.json: not valid JSON: line 4, column 3: expected ',' or '}' after the value of \"fleet\", found '\"'"])
    }

    // MARK: - Item 13: what the messages say

    @Test func anEmptyManifestSaysItIsEmpty() throws {
        let directory = try makeTemporaryDirectory()
        for (content, expected) in [("", "the manifest is empty (0 bytes)"), ("  \n\t\n", "the manifest holds only white space")] {
            try Data(content.utf8).write(to: URL(fileURLWithPath: directory + "/fleet.json"))
            let (manifest, diagnostics) = ManifestReader.read(path: directory + "/fleet.json")
            #expect(manifest == nil)
            #expect(diagnostics.count == 1 && diagnostics[0].message.hasPrefix(expected), "\(diagnostics)")
            #expect(!diagnostics[0].message.contains("expected an object"))
        }
    }

    @Test func aNonUTF8ManifestSaysSoAndWhere() throws {
        let directory = try makeTemporaryDirectory()
        // "Zürich" in Latin-1: 0xFC where UTF-8 needs two bytes.
        var bytes = Array("{\n  \"fleet\": \"Z".utf8)
        bytes += [0xFC]
        bytes += Array("rich\"\n}\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/fleet.json"))
        let (_, diagnostics) = ManifestReader.read(path: directory + "/fleet.json")
        #expect(diagnostics.map(\.message) == ["the manifest is not UTF-8 text: byte 0xFC at line 2, column 14 (byte offset 15) is not valid UTF-8; save the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)"], "\(diagnostics)")
        let utf16 = try #require("{\"format\": 1}".data(using: .utf16))
        try utf16.write(to: URL(fileURLWithPath: directory + "/fleet.json"))
        #expect(ManifestReader.read(path: directory + "/fleet.json").diagnostics.first?.message.contains("UTF-16") == true)
    }

    @Test func anEncryptedClaimKeyGetsAClaimKeyHintNotASigningOne() throws {
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        let key = fleet.directory + "/certs/alpha/claim.private.pem.key"
        try runTool("openssl", ["pkey", "-in", key, "-aes256", "-passout", "pass:claim-secret", "-out", key + ".enc"])
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.moveItem(atPath: key + ".enc", toPath: key)
        chmod(key, 0o600)
        let outcome = fleet.load()
        let message = try #require(outcome.diagnostics.first { $0.location == "sites[0].claim.private_key" }, "\(messages(outcome))")
        #expect(message.severity == .error)
        #expect(message.message.contains("claim private key certs/alpha/claim.private.pem.key is encrypted") && message.message.contains("openssl pkey -in certs/alpha/claim.private.pem.key"), "\(message)")
        #expect(!message.message.contains("signing"), "\(message)")
        #expect(!messages(outcome).contains("claim-secret"))
    }

    @Test func aCertificateExpiringInTenDaysIsSaidToExpireInTenDays() throws {
        let fleet = try DeviceSettingsCheckerTests.loginFleet()
        try fleet.makeClaim(site: "beta", days: 10)
        let text = messages(fleet.load())
        let end = try runTool("openssl", ["x509", "-in", fleet.directory + "/certs/beta/claim.pem.crt", "-noout", "-enddate", "-dateopt", "iso_8601"])
        // notAfter=2026-12-12 14:03:05Z
        let date = String(end.split(separator: "=")[1].prefix(10))
        #expect(text.contains("warning: sites[1].claim.certificate: claim certificate certs/beta/claim.pem.crt expires on \(date) (in 10 days)"), "\(text)")
        // The count is of calendar days to the date shown, whatever the time of day.
        let midnight = try #require(ISO8601DateFormatter().date(from: "2026-12-12T00:00:00Z"))
        #expect(ManifestChecker.calendarDays(from: midnight.addingTimeInterval(-1), to: midnight) == 1)
        #expect(ManifestChecker.calendarDays(from: midnight, to: midnight.addingTimeInterval(86_399)) == 0)
        #expect(ManifestChecker.calendarDays(from: midnight.addingTimeInterval(-10 * 86_400 + 60), to: midnight.addingTimeInterval(60)) == 10)
    }
}

/// A value written by one thread and read by another after a semaphore.
private final class Box<T>: @unchecked Sendable {
    // @unchecked: written once before `signal`, read only after `wait`.
    var value: T?
}
