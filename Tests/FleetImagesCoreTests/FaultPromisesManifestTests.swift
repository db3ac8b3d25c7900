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

/// A value written by one thread and read by another after a semaphore.
private final class Box<T>: @unchecked Sendable {
    // @unchecked: written once before `signal`, read only after `wait`.
    var value: T?
}
