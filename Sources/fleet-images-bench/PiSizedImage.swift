import FleetImagesCore
import Foundation

/// A Raspberry Pi OS-sized image, made once and cached in `<cache>/pi-image-v1/`:
/// 2,797,600,768 bytes apparent (2668 MiB, like Raspberry Pi OS Lite's 2.7–2.8 GB), MBR with a
/// 512 MiB FAT32 boot partition at sector 8192 and an ext4 root from sector 1056768 to the end
/// (Raspberry Pi OS's own layout), the root holding about 1.5 GB of real files taken from this
/// machine's /usr (binaries, libraries, documentation: compressible about as a real root is),
/// the boot partition a `cmdline.txt`, a `config.txt` and 36 MiB of kernel-like blobs.
/// Kept both raw (sparse) and as `xz -T2 -1`.
struct PiSizedImage {
    static let totalBytes: UInt64 = 2668 << 20
    static let bootStartSector: UInt64 = 8192
    static let bootSectors: UInt64 = 1_048_576
    static let rootStartSector: UInt64 = bootStartSector + bootSectors
    static let rootFileBytes: UInt64 = 1_500_000_000

    let raw: String
    let archive: String
    let archiveSHA256: String

    static var folder: String { BenchCache.root + "/pi-image-v1" }

    static func ensure() throws -> PiSizedImage {
        let folder = Self.folder
        let raw = folder + "/raspios-sized.img"
        let archive = raw + ".xz"
        if Files.exists(folder + "/COMPLETE"), let sha = try? String(contentsOfFile: archive + ".sha256", encoding: .utf8) {
            return PiSizedImage(raw: raw, archive: archive, archiveSHA256: String(sha.prefix(64)))
        }
        let partial = folder + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: partial) }
        guard Files.freeSpace(partial) > 12 << 30 else {
            throw BenchError("making the Raspberry Pi OS-sized image needs about 12 GiB free under \(BenchCache.root) (set FLEET_IMAGES_BENCH_CACHE to move it)")
        }
        print("  making the Raspberry Pi OS-sized image in \(folder) (once; a few minutes) …")
        let partialRaw = partial + "/raspios-sized.img"
        let made = try Stopwatch.time { try makeRaw(partialRaw, scratch: partial) }
        print("  image made in \(Report.format(made)) s: \(Report.bytes(Files.size(partialRaw))) apparent, \(Report.bytes(Files.allocated(partialRaw))) allocated")
        let compressed = try Stopwatch.time {
            try Shell.run("xz", ["-T2", "-1", "-k", "-c", partialRaw], stdoutPath: partialRaw + ".xz")
        }
        let sha = try Digest.sha256Hex(fileAt: partialRaw + ".xz")
        try Files.write(partialRaw + ".xz.sha256", "\(sha)  raspios-sized.img.xz\n")
        print("  xz -T2 -1 in \(Report.format(compressed)) s: \(Report.bytes(Files.size(partialRaw + ".xz")))")
        try Files.write(partial + "/COMPLETE", "made by fleet-images-bench\n")
        try? FileManager.default.removeItem(atPath: folder)
        guard rename(partial, folder) == 0 else { throw BenchError("cannot rename \(partial) to \(folder): \(String(cString: strerror(errno)))") }
        return PiSizedImage(raw: raw, archive: archive, archiveSHA256: sha)
    }

    private static func makeRaw(_ image: String, scratch: String) throws {
        let stage = scratch + "/rootfs"
        let bootStage = scratch + "/bootfs"
        defer {
            try? FileManager.default.removeItem(atPath: stage)
            try? FileManager.default.removeItem(atPath: bootStage)
        }
        let copied = try stageRoot(stage)
        print("  root file system content: \(Report.bytes(copied.bytes)) in \(copied.files) files from /usr")
        try stageBoot(bootStage)

        guard FileManager.default.createFile(atPath: image, contents: nil), truncate(image, off_t(totalBytes)) == 0 else {
            throw BenchError("cannot create \(image)")
        }
        try Shell.run("sfdisk", ["--quiet", image], stdin: """
            label: dos
            label-id: 0x4e6f6f8d
            unit: sectors

            start=\(bootStartSector), size=\(bootSectors), type=c
            start=\(rootStartSector), type=83

            """)
        try Shell.run("mkfs.vfat", ["-F", "32", "-n", "bootfs", "--offset", "\(bootStartSector)", image, "\(bootSectors / 2)"])
        let bootFiles = try FileManager.default.contentsOfDirectory(atPath: bootStage).sorted().map { bootStage + "/" + $0 }
        try Shell.run("mcopy", ["-i", "\(image)@@\(bootStartSector * 512)"] + bootFiles + ["::/"])
        let rootBytes = totalBytes - rootStartSector * 512
        try Shell.run("mkfs.ext4", ["-F", "-q", "-L", "rootfs", "-b", "4096", "-E", "offset=\(rootStartSector * 512),nodiscard",
                                    "-d", stage, image, "\(rootBytes / 4096)"])
        guard Files.size(image) == totalBytes else {
            throw BenchError("mkfs changed the image size to \(Files.size(image)) bytes (expected \(totalBytes))")
        }
        try Shell.run("e2fsck", ["-fn", "\(image)?offset=\(rootStartSector * 512)"])
    }

    /// Hard links (no extra space) to regular files of /usr, walked in sorted order, until
    /// `rootFileBytes`; plus the few files a Raspberry Pi OS root has that the inject builder edits.
    private static func stageRoot(_ stage: String) throws -> (files: Int, bytes: UInt64) {
        let fm = FileManager.default
        var bytes: UInt64 = 0
        var files = 0
        func walk(_ relative: String) throws {
            guard bytes < rootFileBytes else { return }
            let source = "/usr" + relative
            guard let names = try? fm.contentsOfDirectory(atPath: source) else { return }
            try fm.createDirectory(atPath: stage + "/usr" + relative, withIntermediateDirectories: true)
            for name in names.sorted() {
                guard bytes < rootFileBytes else { return }
                let path = source + "/" + name
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    try walk(relative + "/" + name)
                case S_IFREG where info.st_size <= 64 << 20 && access(path, R_OK) == 0:
                    try Files.linkOrCopy(path, to: stage + "/usr" + relative + "/" + name)
                    bytes += UInt64(info.st_size)
                    files += 1
                default:
                    continue
                }
            }
        }
        // Binaries and libraries first, then documentation and data, as a root file system holds them.
        for top in ["/bin", "/sbin", "/lib", "/libexec", "/share"] { try walk(top) }
        try Files.write(stage + "/etc/hostname", "raspberrypi\n")
        try Files.write(stage + "/etc/hosts", "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n\n127.0.1.1\t\traspberrypi\n")
        try Files.write(stage + "/etc/fstab", "proc            /proc           proc    defaults          0       0\nPARTUUID=4e6f6f8d-01  /boot/firmware  vfat    defaults          0       2\nPARTUUID=4e6f6f8d-02  /               ext4    defaults,noatime  0       1\n")
        try fm.createDirectory(atPath: stage + "/etc/NetworkManager/system-connections", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: stage + "/boot/firmware", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: stage + "/home/pi", withIntermediateDirectories: true)
        chown(stage + "/home/pi", 1000, 1000)
        return (files, bytes)
    }

    private static func stageBoot(_ stage: String) throws {
        try Files.write(stage + "/cmdline.txt", "console=serial0,115200 console=tty1 root=PARTUUID=4e6f6f8d-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
        try Files.write(stage + "/config.txt", "# bench stand-in for Raspberry Pi OS config.txt\narm_64bit=1\ndtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\n")
        // Kernel-sized blobs: real machine code, compressible as a kernel image is.
        let sources = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/bin")) ?? []).sorted().map { "/usr/bin/" + $0 }
        var pool = sources.makeIterator()
        for (name, size) in [("kernel8.img", 24 << 20), ("initramfs8", 12 << 20)] {
            var data = Data()
            while data.count < size, let next = pool.next() {
                if let chunk = FileManager.default.contents(atPath: next) { data.append(chunk.prefix(size - data.count)) }
            }
            guard FileManager.default.createFile(atPath: stage + "/" + name, contents: data) else { throw BenchError("cannot write \(name)") }
        }
    }
}
