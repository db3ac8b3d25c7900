import Foundation
import Testing
@testable import FleetImagesCore

@Suite("FATEditor and FileSystemCheck", .serialized)
struct DiskImageFATEditorTests {
    @Test("writes into existing and new directories, overwrites, and fsck.fat stays clean")
    func writesAndOverwrites() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let table = try PartitionTableReader.read(imageAt: image.path)
        let boot = try #require(table.partitions.first { $0.kind.isFAT })
        let editor = FATEditor(imagePath: image.path, partitionOffset: boot.startOffset)

        let original = try #require(try await editor.readFile("/cmdline.txt"))
        let edited = KernelCommandLine.settingParameter(String(decoding: original, as: UTF8.self),
                                                        key: "cfg80211.ieee80211_regdom", value: "CH")
        let cmdline = image.directory + "/cmdline.txt"
        try DiskImageTestDirectory.write(Array(edited.utf8), to: cmdline)
        try await editor.write(hostFile: cmdline, to: "/cmdline.txt")

        let binary = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let overlay = image.directory + "/overlay.dtbo"
        try DiskImageTestDirectory.write(binary, to: overlay)
        try await editor.write(hostFile: overlay, to: "/overlays/fleet things/my overlay.dtbo")

        let typed = try image.mtype("/cmdline.txt")
        #expect(typed.status == 0)
        #expect(typed.text == "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait cfg80211.ieee80211_regdom=CH\n")
        let listing = try DiskImageShell.run(["mdir", "-i", "\(image.path)@@\(boot.startOffset)", "::/overlays/fleet things"])
        #expect(listing.text.contains("my overlay.dtbo"))
        #expect(listing.text.contains("100 000"))
        #expect([UInt8](try image.mtype("/overlays/fleet things/my overlay.dtbo").output) == binary)
        let root = try DiskImageShell.run(["mdir", "-b", "-i", "\(image.path)@@\(boot.startOffset)", "::/"]).text
        #expect(root.components(separatedBy: "cmdline.txt").count == 2)

        // Independent check on a dd-extracted copy, and the same through FileSystemCheck.
        let extracted = image.directory + "/boot.img"
        try DiskImageShell.run(["dd", "if=\(image.path)", "of=\(extracted)", "bs=512", "skip=\(boot.startOffset / 512)",
                                "count=\(boot.size / 512)", "conv=sparse", "status=none"])
        let fsck = try DiskImageShell.run(["fsck.fat", "-n", extracted], allowFailure: true)
        #expect(fsck.status == 0, "\(fsck.text)")
        try await FileSystemCheck.fat(imageAt: image.path, partition: boot)

        #expect(try await editor.readFile("/overlays/fleet things/my overlay.dtbo") == binary)
        #expect(try await editor.readFile("/CMDLINE.TXT").map { String(decoding: $0, as: UTF8.self) } == edited)
    }

    @Test("readFile: nil when missing, an error for a directory or a path FAT cannot hold")
    func reads() async throws {
        let image = try DiskImageTestImage(.gpt)
        defer { image.remove() }
        let editor = FATEditor(imagePath: image.path, partitionOffset: image.bootOffset)
        #expect(try await editor.readFile("/nothing.txt") == nil)
        #expect(try await editor.readFile("/no/dir/nothing.txt") == nil)
        let file = image.directory + "/f"
        try DiskImageTestDirectory.write(Array("x".utf8), to: file)
        try await editor.write(hostFile: file, to: "/sub/f")
        await #expect(throws: DiskImageError.notARegularFile(image: editor.imageDescription, path: "/sub", kind: "directory")) {
            try await editor.readFile("/sub")
        }
        await #expect(throws: DiskImageError.self) { try await editor.write(hostFile: file, to: "/a*b") }
        let underFile = await #expect(throws: DiskImageError.self) { try await editor.write(hostFile: file, to: "/sub/f/g") }
        guard case .editFailed(_, "/sub/f/g", _) = underFile else { Issue.record("got \(String(describing: underFile))"); return }
    }

    @Test("FileSystemCheck reports damage found by e2fsck and fsck.fat")
    func checksFindDamage() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let table = try PartitionTableReader.read(imageAt: image.path)
        try await FileSystemCheck.ext4(imageAt: image.path, offset: image.rootOffset)
        try await FileSystemCheck.fat(imageAt: image.path, partition: table.partitions[0])

        // Clear the ext4 root inode's mode with debugfs, and break the FAT: write a media byte (0xE7) into the
        // first FAT's entry 0 that disagrees with the boot sector and the second FAT.
        try DiskImageShell.run(["debugfs", "-w", "-R", "sif <2> mode 0", "\(image.path)?offset=\(image.rootOffset)"])
        let ext4Error = await #expect(throws: DiskImageError.self) {
            try await FileSystemCheck.ext4(imageAt: image.path, offset: image.rootOffset)
        }
        guard case .fileSystemCheckFailed("e2fsck", _, let output) = ext4Error else { Issue.record("got \(String(describing: ext4Error))"); return }
        #expect(output.contains("Root inode is not a directory"))

        let reserved = UInt64(try DiskImageShell.run(["sh", "-c", "od -An -tu2 -j \(table.partitions[0].startOffset + 14) -N2 \(image.path)"]).text
            .trimmingCharacters(in: .whitespacesAndNewlines))!
        try DiskImageShell.run(["sh", "-c", "printf '\\347' | dd of=\(image.path) bs=1 seek=\(table.partitions[0].startOffset + reserved * 512) conv=notrunc status=none"])
        let fatError = await #expect(throws: DiskImageError.self) {
            try await FileSystemCheck.fat(imageAt: image.path, partition: table.partitions[0])
        }
        guard case .fileSystemCheckFailed("fsck.fat", _, _) = fatError else { Issue.record("got \(String(describing: fatError))"); return }
    }
}
