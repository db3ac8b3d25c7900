import Foundation

/// The host's `binfmt_misc` registration that runs the image's programs (qemu user mode).
///
/// packer-builder-arm's entrypoint (from v1.0.5) clears every qemu entry of the host and
/// registers its own at each container start unless `SETUP_QEMU=false`: two builds at once then
/// pull the handler from under each other. fleet-images runs its containers with
/// `SETUP_QEMU=false`, so the handler must be registered on the host, once, and with the `F`
/// (fix-binary) flag: the entrypoint also sets `DONT_SETUP_QEMU=1`, so no qemu binary is copied
/// into the image's chroot, and without `F` the kernel looks for the interpreter there.
/// ``check(arch:directory:)`` finds the entry by what it matches (the ELF header of the
/// architecture), not by its name, which differs between distributions.
public enum HostBinfmt {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var interpreter: String
        public var flags: String
    }

    public static let defaultDirectory = "/proc/sys/fs/binfmt_misc"

    /// The ELF class and `e_machine` (little-endian) of an architecture, as binfmt magic matches them.
    static func elfSignature(arch: String) -> (elfClass: UInt8, machine: UInt16, label: String)? {
        switch arch {
        case "arm64", "aarch64": (2, 0xB7, "qemu-aarch64")
        case "armhf", "armel", "arm", "armv6l", "armv7l": (1, 0x28, "qemu-arm")
        default: nil
        }
    }

    /// The enabled entry with the `F` flag that runs `arch` programs, or why there is none (with the fix).
    public static func check(arch: String, directory: String = defaultDirectory) -> Result<Entry, PackerDockerError> {
        guard let signature = elfSignature(arch: arch) else {
            return .failure(.hostEmulation("no qemu handler is known for base_image.arch \"\(arch)\""))
        }
        let register = "apt-get install qemu-user-static (Debian and Ubuntu register \(signature.label) with the F flag), or `update-binfmts --enable \(signature.label)` when it is installed"
        guard let status = try? String(contentsOfFile: directory + "/status", encoding: .utf8) else {
            return .failure(.hostEmulation("binfmt_misc is not mounted at \(directory); as root: mount -t binfmt_misc binfmt_misc \(directory), then \(register)"))
        }
        guard status.trimmingCharacters(in: .whitespacesAndNewlines) == "enabled" else {
            return .failure(.hostEmulation("binfmt_misc is disabled on this host (\(directory)/status); as root: echo 1 > \(directory)/status"))
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0 != "status" && $0 != "register" }.sorted()
        var candidates: [(entry: Entry, enabled: Bool)] = []
        for name in names {
            guard let text = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8),
                  let parsed = parse(text, name: name), matches(parsed.magic, offset: parsed.offset, signature: signature) else { continue }
            candidates.append((parsed.entry, parsed.enabled))
        }
        if let good = candidates.first(where: { $0.enabled && $0.entry.flags.contains("F") }) { return .success(good.entry) }
        let why = "fleet-images runs packer-builder-arm with SETUP_QEMU=false, so that builds running at once do not reset each other's registration; the host must run \(arch) programs itself"
        if let disabled = candidates.first(where: { !$0.enabled }) {
            return .failure(.hostEmulation("the binfmt_misc entry \(disabled.entry.name) for \(arch) programs is disabled; \(why): as root, echo 1 > \(directory)/\(disabled.entry.name) (or update-binfmts --enable \(disabled.entry.name))"))
        }
        if let unfixed = candidates.first {
            return .failure(.hostEmulation("the binfmt_misc entry \(unfixed.entry.name) (interpreter \(unfixed.entry.interpreter), flags \"\(unfixed.entry.flags)\") lacks the F (fix-binary) flag, so programs in the image's chroot fail with \"Exec format error\" (the kernel looks for \(unfixed.entry.interpreter) inside the chroot); \(why): re-register it with F, e.g. remove it (echo -1 > \(directory)/\(unfixed.entry.name)) and \(register)"))
        }
        return .failure(.hostEmulation("no binfmt_misc entry on this host runs \(arch) programs; \(why): as root, \(register)"))
    }

    struct Parsed {
        var entry: Entry
        var enabled: Bool
        var offset: Int
        var magic: [UInt8]
    }

    /// One entry file: `enabled|disabled`, `interpreter …`, `flags: …`, `offset N`, `magic HEX`.
    static func parse(_ text: String, name: String) -> Parsed? {
        var enabled = false, interpreter = "", flags = "", offset = 0
        var magic: [UInt8]?
        for line in text.split(separator: "\n").map(String.init) {
            if line == "enabled" { enabled = true }
            if line.hasPrefix("interpreter ") { interpreter = String(line.dropFirst("interpreter ".count)) }
            if line.hasPrefix("flags:") { flags = line.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("offset ") { offset = Int(line.dropFirst("offset ".count)) ?? 0 }
            if line.hasPrefix("magic ") { magic = hexBytes(String(line.dropFirst("magic ".count))) }
        }
        guard let magic else { return nil }  // an extension entry, not a magic one
        return Parsed(entry: Entry(name: name, interpreter: interpreter, flags: flags), enabled: enabled, offset: offset, magic: magic)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
            index += 2
        }
        return bytes
    }

    /// Whether the magic (at `offset` 0) matches an ELF executable of the signature's class and machine.
    static func matches(_ magic: [UInt8], offset: Int, signature: (elfClass: UInt8, machine: UInt16, label: String)) -> Bool {
        guard offset == 0, magic.count >= 20, magic[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else { return false }
        return magic[4] == signature.elfClass && magic[18] == UInt8(signature.machine & 0xFF) && magic[19] == UInt8(signature.machine >> 8)
    }
}
