import Foundation
import Testing
@testable import FleetImagesCore

/// The host's binfmt_misc check the packer-docker builder makes before any container starts
/// (its containers run with SETUP_QEMU=false). Entries are files in the kernel's format, in a
/// folder of the test's own, so every case runs without root.
@Suite("host binfmt_misc check")
struct HostBinfmtTests {
    static let aarch64Magic = "7f454c460201010000000000000000000200b700"
    static let armMagic = "7f454c4601010100000000000000000002002800"

    /// A binfmt_misc folder with `status` and the given entries (name → (enabled, flags, magic)).
    static func folder(status: String? = "enabled", entries: [String: (enabled: Bool, flags: String, magic: String)]) throws -> String {
        let directory = try makeTemporaryDirectory("fleet-images-binfmt")
        if let status { try (status + "\n").write(toFile: directory + "/status", atomically: true, encoding: .utf8) }
        try "".write(toFile: directory + "/register", atomically: true, encoding: .utf8)
        for (name, entry) in entries {
            let text = """
            \(entry.enabled ? "enabled" : "disabled")
            interpreter /usr/libexec/qemu-binfmt/\(name)-binfmt-P
            flags: \(entry.flags)
            offset 0
            magic \(entry.magic)
            mask ffffffffffffff00fffffffffffffffffeffffff

            """
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        return directory
    }

    /// A folder with a good aarch64 entry, for builder tests whose stand-in runs no arm program.
    static func goodFolder() throws -> String {
        try folder(entries: ["qemu-aarch64": (true, "PF", aarch64Magic)])
    }

    func problem(_ result: Result<HostBinfmt.Entry, PackerDockerError>) -> String? {
        if case .failure(let error) = result { return error.description }
        return nil
    }

    @Test("an enabled entry with the F flag is found by what it matches, whatever its name")
    func found() throws {
        let directory = try Self.folder(entries: ["aarch64": (true, "POCF", Self.aarch64Magic), "qemu-arm": (true, "F", Self.armMagic)])
        let entry = try HostBinfmt.check(arch: "arm64", directory: directory).get()
        #expect(entry.name == "aarch64" && entry.flags == "POCF")
        #expect(try HostBinfmt.check(arch: "armhf", directory: directory).get().name == "qemu-arm")
    }

    @Test("an entry without F is refused, naming the flag, the entry and the fix")
    func withoutFixBinary() throws {
        let directory = try Self.folder(entries: ["qemu-aarch64": (true, "P", Self.aarch64Magic)])
        let message = try #require(problem(HostBinfmt.check(arch: "arm64", directory: directory)))
        #expect(message.contains("qemu-aarch64") && message.contains("lacks the F (fix-binary) flag"))
        #expect(message.contains("Exec format error") && message.contains("SETUP_QEMU=false"))
        #expect(message.contains("apt-get install qemu-user-static"))
    }

    @Test("a disabled entry, none for the architecture, binfmt_misc disabled or not mounted: each its own fix")
    func missing() throws {
        let disabled = try Self.folder(entries: ["qemu-aarch64": (false, "PF", Self.aarch64Magic)])
        #expect(problem(HostBinfmt.check(arch: "arm64", directory: disabled))?.contains("is disabled") == true)
        #expect(problem(HostBinfmt.check(arch: "arm64", directory: disabled))?.contains("echo 1 > \(disabled)/qemu-aarch64") == true)
        let armOnly = try Self.folder(entries: ["qemu-arm": (true, "F", Self.armMagic)])
        #expect(problem(HostBinfmt.check(arch: "arm64", directory: armOnly))?.hasPrefix("no binfmt_misc entry on this host runs arm64 programs") == true)
        let off = try Self.folder(status: "disabled", entries: ["qemu-aarch64": (true, "PF", Self.aarch64Magic)])
        #expect(problem(HostBinfmt.check(arch: "arm64", directory: off))?.contains("binfmt_misc is disabled") == true)
        let unmounted = try Self.folder(status: nil, entries: [:])
        #expect(problem(HostBinfmt.check(arch: "arm64", directory: unmounted))?.contains("mount -t binfmt_misc binfmt_misc") == true)
        #expect(problem(HostBinfmt.check(arch: "riscv64", directory: unmounted))?.contains("riscv64") == true)
    }

    @Test("a daemon on another machine is told apart from a local one")
    func daemonEndpoints() {
        for local in ["unix:///var/run/docker.sock", "unix:///run/user/1000/docker.sock", "fd://", "tcp://127.0.0.1:2375", "tcp://localhost:2376", "tcp://[::1]:2375"] {
            #expect(PackerDockerBuilder.isLocal(endpoint: local), "\(local)")
        }
        for remote in ["tcp://10.1.2.3:2375", "ssh://builder@buildhost", "tcp://buildhost.example.com:2376", "https://10.0.0.9:2376", "npipe:////./pipe/docker_engine"] {
            #expect(!PackerDockerBuilder.isLocal(endpoint: remote), "\(remote)")
        }
    }
}
