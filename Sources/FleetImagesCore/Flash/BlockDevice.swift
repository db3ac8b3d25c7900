import Foundation

/// A whole block device `flash` may write: found in sysfs by its device number, with its size,
/// its model, and whatever makes writing it a mistake (mounted, in use, the system's disk).
public struct BlockDevice: Sendable {
    public var path: String
    /// The kernel's name (`sdb`, `mmcblk0`, `loop3`).
    public var name: String
    public var size: UInt64
    /// `device/model` (and vendor), or the backing file of a loop device.
    public var model: String

    /// `BLKGETSIZE64` (`_IOR(0x12, 114, size_t)`): the device's size in bytes.
    static let getSize64: UInt = 0x8008_1272
    /// `BLKFLSBUF` (`_IO(0x12, 97)`): drop the device's buffered pages, so a read comes from the device.
    static let flushBuffers: UInt = 0x1261

    /// Finds the device and refuses one that is not a whole block device, is mounted (it or a
    /// partition), is held by another device (LVM, RAID, dm-crypt), is swap, or holds the root
    /// file system.
    public static func inspect(_ path: String) throws(FlashError) -> BlockDevice {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw FlashError("\(path): no such device (\(String(cString: strerror(errno)))); name the card's whole device, e.g. /dev/sdb or /dev/mmcblk0", input: true)
        }
        guard (info.st_mode & S_IFMT) == S_IFBLK else {
            throw FlashError("\(path) is \(InputFile.kind(info.st_mode)), not a block device; name the card's whole device, e.g. /dev/sdb or /dev/mmcblk0", input: true)
        }
        let number = deviceNumber(UInt64(info.st_rdev))
        guard let sysfs = realpath("/sys/dev/block/\(number)", nil) else {
            throw FlashError("\(path): device \(number) is not in /sys/dev/block", input: true)
        }
        let directory = String(cString: sysfs)
        free(sysfs)
        let name = (directory as NSString).lastPathComponent
        if FileManager.default.fileExists(atPath: directory + "/partition") {
            let disk = ((directory as NSString).deletingLastPathComponent as NSString).lastPathComponent
            throw FlashError("\(path) is a partition of /dev/\(disk); name the whole device (/dev/\(disk))", input: true)
        }
        // The device and its partitions, by device number and by name.
        var numbers = [number: name]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where
            FileManager.default.fileExists(atPath: directory + "/" + entry + "/partition") {
            if let dev = try? String(contentsOfFile: directory + "/" + entry + "/dev", encoding: .utf8) {
                numbers[dev.trimmingCharacters(in: .whitespacesAndNewlines)] = entry
            }
        }
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let source = fields.firstIndex(of: "-").flatMap { $0 + 2 < fields.count ? String(fields[$0 + 2]) : nil }
            let byNumber = numbers[String(fields[2])]
            let byName = numbers.values.first { source == "/dev/" + $0 }
            if let mounted = byNumber ?? byName {
                throw FlashError("/dev/\(mounted) is mounted on \(fields[4]); unmount it (umount /dev/\(mounted)) or name another device", input: true)
            }
        }
        let swaps = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8)) ?? ""
        for part in numbers.values where swaps.split(separator: "\n").contains(where: { $0.hasPrefix("/dev/\(part) ") }) {
            throw FlashError("/dev/\(part) is in use as swap; swapoff it or name another device", input: true)
        }
        for part in [name] + numbers.values.filter({ $0 != name }) {
            let base = part == name ? directory : directory + "/" + part
            if let holders = try? FileManager.default.contentsOfDirectory(atPath: base + "/holders"), let holder = holders.first {
                throw FlashError("/dev/\(part) is in use by /dev/\(holder) (LVM, RAID or dm-crypt); stop that first or name another device", input: true)
            }
        }
        if systemDisks().contains(name) {
            throw FlashError("\(path) holds this machine's root file system; name the card's device", input: true)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FlashError("\(path): cannot open: \(String(cString: strerror(errno)))", input: true) }
        defer { close(fd) }
        var size: UInt64 = 0
        guard ioctl(fd, getSize64, &size) == 0 else { throw FlashError("\(path): cannot read its size: \(String(cString: strerror(errno)))", input: true) }
        return BlockDevice(path: path, name: name, size: size, model: model(directory))
    }

    /// "major:minor" of a `dev_t` (glibc's encoding).
    static func deviceNumber(_ rdev: UInt64) -> String {
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~UInt64(0xfff))
        let minor = (rdev & 0xff) | ((rdev >> 12) & ~UInt64(0xff))
        return "\(major):\(minor)"
    }

    /// The whole disks under `/`: through its partition, and through device-mapper to what it sits on.
    public static func systemDisks() -> Set<String> {
        var root: String?
        for line in ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4, fields[4] == "/" { root = String(fields[2]) }
        }
        guard let root, let resolved = realpath("/sys/dev/block/\(root)", nil) else { return [] }
        var pending = [String(cString: resolved)]
        free(resolved)
        var disks = Set<String>()
        while let directory = pending.popLast() {
            let disk = FileManager.default.fileExists(atPath: directory + "/partition") ? (directory as NSString).deletingLastPathComponent : directory
            disks.insert((disk as NSString).lastPathComponent)
            for slave in (try? FileManager.default.contentsOfDirectory(atPath: disk + "/slaves")) ?? [] {
                if let path = realpath(disk + "/slaves/" + slave, nil) {
                    pending.append(String(cString: path))
                    free(path)
                }
            }
        }
        return disks
    }

    static func model(_ directory: String) -> String {
        func read(_ file: String) -> String? {
            (try? String(contentsOfFile: directory + "/" + file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines).nilIfEmpty
        }
        if let backing = read("loop/backing_file") { return "loop device backed by \(backing)" }
        let words = [read("device/vendor"), read("device/model")].compactMap { $0 }
        return words.isEmpty ? "unknown model" : words.joined(separator: " ")
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
