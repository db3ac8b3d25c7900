import Foundation

/// A small sparse disk image shaped like Raspberry Pi OS (a FAT32 boot partition, then an ext4 root),
/// built with sfdisk, mkfs.vfat and mkfs.ext4 in a private temporary directory.
struct DiskImageTestImage {
    enum Layout {
        /// MBR: p1 type 0c at sector 8192 (64 MiB), p2 type 83 after it.
        case mbr
        /// GPT: p1 EFI System (64 MiB), p2 Linux filesystem, p3 Microsoft basic data (1 MiB, no file system).
        case gpt
        /// MBR with an extended partition: p1 type 0c, p2 extended holding logical p5 (83) and p6 (83).
        case mbrExtended
    }

    /// One row of `sfdisk --json`.
    struct SfdiskPartition {
        var number: Int
        var startSector: UInt64
        var sectors: UInt64
        var type: String
    }

    let directory: String
    let path: String
    let partitions: [SfdiskPartition]

    var bootOffset: UInt64 { partitions[0].startSector * 512 }
    var rootOffset: UInt64 { partitions.first { $0.number == (layout == .mbrExtended ? 5 : 2) }!.startSector * 512 }
    let layout: Layout

    /// Builds the image; `rootMiB` limits the ext4 file system (the partition keeps its size).
    init(_ layout: Layout, totalMiB: Int = 200, rootMiB: Int? = nil, formatted: Bool = true) throws {
        self.layout = layout
        directory = try DiskImageTestDirectory.make()
        path = directory + "/disk.img"
        try DiskImageShell.run(["truncate", "-s", "\(totalMiB)M", path])
        let script: String
        switch layout {
        case .mbr:
            script = "label: dos\nstart=8192, size=131072, type=c\nstart=139264, type=83\n"
        case .gpt:
            script = """
                label: gpt
                start=8192, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
                start=139264, size=\((totalMiB - 70) * 2048), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
                type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, size=2048

                """
        case .mbrExtended:
            script = "label: dos\nstart=8192, size=131072, type=c\nstart=139264, type=5\nstart=141312, size=81920, type=83\nstart=225280, type=83\n"
        }
        try DiskImageShell.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path], stdin: script)
        partitions = try Self.sfdiskPartitions(path)
        guard formatted else { return }

        let fat = directory + "/fat.img"
        try DiskImageShell.run(["truncate", "-s", "\(partitions[0].sectors * 512)", fat])
        try DiskImageShell.run(["mkfs.vfat", "-F", "32", "-s", "1", "-n", "BOOTFS", fat])
        try DiskImageShell.run(["mcopy", "-i", fat, "-", "::/cmdline.txt"],
                               stdin: "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n")
        try DiskImageShell.run(["dd", "if=\(fat)", "of=\(path)", "bs=512", "seek=\(partitions[0].startSector)",
                                "conv=notrunc,sparse", "status=none"])
        try FileManager.default.removeItem(atPath: fat)

        let root = partitions.first { $0.number == (layout == .mbrExtended ? 5 : 2) }!
        let rootKiB = rootMiB.map { $0 * 1024 } ?? Int(root.sectors / 2)
        try DiskImageShell.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum", "-L", "rootfs",
                                "-E", "offset=\(root.startSector * 512)", path, "\(rootKiB)k"])
        // What the inject builder reads to learn the OS: a Raspberry Pi OS Bookworm os-release.
        let osRelease = directory + "/os-release"
        try DiskImageTestDirectory.write(Array("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n".utf8), to: osRelease)
        try DiskImageShell.run(["/usr/sbin/debugfs", "-w", "-R", "mkdir /etc", "\(path)?offset=\(root.startSector * 512)"])
        try DiskImageShell.run(["/usr/sbin/debugfs", "-w", "-R", "write \(osRelease) /etc/os-release", "\(path)?offset=\(root.startSector * 512)"])
    }

    static func sfdiskPartitions(_ path: String) throws -> [SfdiskPartition] {
        let json = try DiskImageShell.run(["sfdisk", "--json", path]).output
        let object = try JSONSerialization.jsonObject(with: json) as! [String: Any]
        let table = object["partitiontable"] as! [String: Any]
        let rows = table["partitions"] as! [[String: Any]]
        return rows.map { row in
            let node = row["node"] as! String
            let number = Int(node.reversed().prefix { $0.isNumber }.reversed().map(String.init).joined())!
            return SfdiskPartition(number: number, startSector: (row["start"] as! NSNumber).uint64Value,
                                   sectors: (row["size"] as! NSNumber).uint64Value, type: row["type"] as! String)
        }
    }

    /// `debugfs -R 'request'` on the root file system, as an independent reader.
    func debugfs(_ request: String) throws -> DiskImageShell.Result {
        try DiskImageShell.run(["debugfs", "-R", request, "\(path)?offset=\(rootOffset)"])
    }

    /// Mode (permission bits), uid, gid, type word and size from `debugfs stat`, parsed here independently.
    func rootStat(_ path: String) throws -> (type: String, mode: UInt32, uid: UInt32, gid: UInt32, size: UInt64)? {
        let result = try debugfs("stat \"\(path.replacingOccurrences(of: "\"", with: "\"\""))\"")
        let text = result.text
        guard let typeMatch = text.firstMatch(of: /Type: (\w+)\s+Mode:\s+(\d+)/),
              let ownerMatch = text.firstMatch(of: /User:\s+(\d+)\s+Group:\s+(\d+)\s+Project:\s+\d+\s+Size: (\d+)/)
        else { return nil }
        return (String(typeMatch.1), UInt32(typeMatch.2, radix: 8)!, UInt32(ownerMatch.1)!, UInt32(ownerMatch.2)!,
                UInt64(ownerMatch.3)!)
    }

    /// File content through `debugfs -R 'cat PATH'`.
    func rootCat(_ path: String) throws -> [UInt8] {
        [UInt8](try debugfs("cat \"\(path.replacingOccurrences(of: "\"", with: "\"\""))\"").output)
    }

    /// Runs `e2fsck -fn` on the root file system and returns its exit status and output.
    func e2fsck() throws -> DiskImageShell.Result {
        try DiskImageShell.run(["e2fsck", "-fn", "\(path)?offset=\(rootOffset)"], allowFailure: true)
    }

    /// `mtype` of a file on the boot partition.
    func mtype(_ path: String) throws -> DiskImageShell.Result {
        try DiskImageShell.run(["mtype", "-i", "\(self.path)@@\(bootOffset)", "::" + path], allowFailure: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Private temporary directories for the disk-image tests.
enum DiskImageTestDirectory {
    static func make() throws -> String {
        let path = NSTemporaryDirectory() + "/fleet-images-diskimage-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        return path
    }

    static func write(_ bytes: [UInt8], to path: String, mode: Int = 0o644) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: mode]) else {
            throw CocoaError(.fileWriteUnknown)
        }
    }
}
