import Foundation
import Testing
@testable import FleetImagesCore

/// The inject builder's sequence on a base image: sparse copy, find partitions, edit both, check, and the
/// base stays byte-for-byte what it was.
@Suite("DiskImage workflow", .serialized)
struct DiskImageWorkflowTests {
    @Test("copy, edit boot and root, check: the base image is unchanged", arguments: [DiskImageTestImage.Layout.mbr, .gpt])
    func injectOnACopy(layout: DiskImageTestImage.Layout) async throws {
        let base = try DiskImageTestImage(layout)
        defer { base.remove() }
        let baseDigest = try DiskImageShell.sha256(base.path)
        let work = base.directory + "/work.img"
        try SparseCopy.copy(from: base.path, to: work)

        let table = try PartitionTableReader.read(imageAt: work)
        let boot = try #require(table.partitions.first { $0.kind.isFAT })
        let root = try #require(table.partitions.first { $0.kind == .linux })
        #expect(try FileSystemProbe.kind(imageAt: work, offset: root.startOffset) == .ext4)

        let hostname = base.directory + "/hostname"
        try DiskImageTestDirectory.write(Array("zrh-lab\n".utf8), to: hostname)
        let hosts = base.directory + "/hosts"
        try DiskImageTestDirectory.write(Array(HostsFile.settingHostname("127.0.0.1\tlocalhost\n", hostname: "zrh-lab").utf8), to: hosts)
        try await Ext4Editor(imagePath: work, partitionOffset: root.startOffset).apply([
            .write(hostFile: hostname, to: "/etc/hostname", mode: 0o644, uid: 0, gid: 0),
            .write(hostFile: hosts, to: "/etc/hosts", mode: 0o644, uid: 0, gid: 0),
        ])
        let fat = FATEditor(imagePath: work, partitionOffset: boot.startOffset)
        let cmdline = String(decoding: try #require(try await fat.readFile("/cmdline.txt")), as: UTF8.self)
        let edited = base.directory + "/cmdline.txt"
        try DiskImageTestDirectory.write(Array(KernelCommandLine.settingParameter(cmdline, key: "cfg80211.ieee80211_regdom", value: "CH").utf8), to: edited)
        try await fat.write(hostFile: edited, to: "/cmdline.txt")

        try await FileSystemCheck.ext4(imageAt: work, offset: root.startOffset)
        try await FileSystemCheck.fat(imageAt: work, partition: boot)
        let debugfs = try DiskImageShell.run(["debugfs", "-R", "cat /etc/hosts", "\(work)?offset=\(root.startOffset)"])
        #expect(debugfs.text == "127.0.0.1\tlocalhost\n127.0.1.1\tzrh-lab\n")
        let mtype = try DiskImageShell.run(["mtype", "-i", "\(work)@@\(boot.startOffset)", "::/cmdline.txt"])
        #expect(mtype.text.hasSuffix(" rootwait cfg80211.ieee80211_regdom=CH\n"))

        #expect(try DiskImageShell.sha256(base.path) == baseDigest)
        #expect(try DiskImageShell.sha256(work) != baseDigest)
        // The base is untouched: the work copy's edits are not visible there.
        #expect(try base.rootStat("/etc/hosts") == nil)
    }

    @Test("the tools the inject builder needs are found, a made-up one is not")
    func tools() throws {
        try ToolAvailability.require(ToolAvailability.injectTools)
        #expect(ToolAvailability.path(of: .debugfs)?.hasSuffix("/debugfs") == true)
        #expect(DiskImageError.toolMissing(tool: "debugfs", package: "e2fsprogs").description
            == "debugfs not found in PATH, /usr/sbin or /sbin; install the Debian package 'e2fsprogs'")
    }
}
