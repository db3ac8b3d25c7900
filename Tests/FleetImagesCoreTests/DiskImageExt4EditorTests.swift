import Foundation
import Testing
@testable import FleetImagesCore

@Suite("Ext4Editor", .serialized)
struct DiskImageExt4EditorTests {
    private func hostFile(_ directory: String, _ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory + "/" + name
        try DiskImageTestDirectory.write(bytes, to: path)
        return path
    }

    @Test("files, directories and a symlink land with the right content, mode and owner; e2fsck stays clean")
    func writesWhatTheBuilderNeeds() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let claim = try hostFile(image.directory, "claim key.pem", Array("-----BEGIN PRIVATE KEY-----\nnot a real key\n".utf8))
        let binary = try hostFile(image.directory, "binary", (0..<4096).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let empty = try hostFile(image.directory, "empty", [])
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)

        try await editor.apply([
            .mkdirs(path: "/home/pi", mode: 0o755, uid: 1000, gid: 1000),
            .write(hostFile: claim, to: "/home/pi/claim.private.pem.key", mode: 0o600, uid: 1000, gid: 1000),
            .write(hostFile: binary, to: "/etc/NetworkManager/system-connections/My Wi-Fi \"5G\".nmconnection",
                   mode: 0o600, uid: 0, gid: 0),
            .write(hostFile: empty, to: "/empty", mode: 0o644, uid: 0, gid: 0),
            .write(hostFile: claim, to: "/dir with space/file; #x\\y ü", mode: 0o4755, uid: 7, gid: 8),
            .symlink(path: "/home/pi/link to key", target: "claim.private.pem.key", uid: 1000, gid: 1000),
        ])

        let key = try #require(try image.rootStat("/home/pi/claim.private.pem.key"))
        #expect(key.type == "regular" && key.mode == 0o600 && key.uid == 1000 && key.gid == 1000)
        #expect(try image.rootCat("/home/pi/claim.private.pem.key") == Array("-----BEGIN PRIVATE KEY-----\nnot a real key\n".utf8))
        let home = try #require(try image.rootStat("/home/pi"))
        #expect(home.type == "directory" && home.mode == 0o755 && home.uid == 1000 && home.gid == 1000)
        let createdParent = try #require(try image.rootStat("/home"))
        #expect(createdParent.mode == 0o755 && createdParent.uid == 0 && createdParent.gid == 0)

        let connection = "/etc/NetworkManager/system-connections/My Wi-Fi \"5G\".nmconnection"
        #expect(try image.rootCat(connection) == (0..<4096).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let connectionStat = try #require(try image.rootStat(connection))
        #expect(connectionStat.mode == 0o600 && connectionStat.uid == 0 && connectionStat.size == 4096)

        let emptyStat = try #require(try image.rootStat("/empty"))
        #expect(emptyStat.type == "regular" && emptyStat.size == 0)

        let odd = try #require(try image.rootStat("/dir with space/file; #x\\y ü"))
        #expect(odd.mode == 0o4755 && odd.uid == 7 && odd.gid == 8)

        let link = try #require(try image.rootStat("/home/pi/link to key"))
        #expect(link.type == "symlink" && link.uid == 1000 && link.size == UInt64("claim.private.pem.key".utf8.count))
        #expect(try image.debugfs("stat \"/home/pi/link to key\"").text.contains("Fast link dest: \"claim.private.pem.key\""))

        let check = try image.e2fsck()
        #expect(check.status == 0, "\(check.text)")
        try await FileSystemCheck.ext4(imageAt: image.path, offset: image.rootOffset)

        // Our own readers agree with debugfs.
        #expect(try await editor.readFile(connection) == (0..<4096).map { UInt8(truncatingIfNeeded: $0 * 7) })
        #expect(try await editor.readFile("/empty") == [])
        #expect(try await editor.status(of: "/home/pi") == Ext4FileStatus(type: "directory", mode: 0o755, uid: 1000, gid: 1000, size: 4096))
    }

    @Test("overwriting replaces the file (one entry, new content, new mode) and leaks no inode")
    func overwrites() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let first = try hostFile(image.directory, "first", Array(String(repeating: "old content ", count: 1000).utf8))
        let second = try hostFile(image.directory, "second", Array("new\n".utf8))
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)
        try await editor.apply([.write(hostFile: first, to: "/etc/hostname", mode: 0o644, uid: 0, gid: 0)])
        try await editor.apply([.write(hostFile: second, to: "/etc/hostname", mode: 0o600, uid: 1000, gid: 1000)])
        // The same path twice in one batch works too: the later write wins.
        try await editor.apply([
            .write(hostFile: first, to: "/etc/hosts", mode: 0o644, uid: 0, gid: 0),
            .write(hostFile: second, to: "/etc/hosts", mode: 0o644, uid: 0, gid: 0),
        ])

        #expect(try image.rootCat("/etc/hostname") == Array("new\n".utf8))
        let status = try #require(try image.rootStat("/etc/hostname"))
        #expect(status.mode == 0o600 && status.uid == 1000 && status.gid == 1000 && status.size == 4)
        #expect(try image.rootCat("/etc/hosts") == Array("new\n".utf8))
        let listing = try image.debugfs("ls -l /etc").text
        #expect(listing.components(separatedBy: " hostname\n").count == 2)
        let check = try image.e2fsck()
        #expect(check.status == 0, "\(check.text)")
    }

    @Test("a parent reached through a symlink (/lib -> usr/lib) is followed")
    func followsSymlinkedParents() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let unit = try hostFile(image.directory, "unit", Array("[Unit]\n".utf8))
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)
        try await editor.apply([
            .mkdirs(path: "/usr/lib", mode: 0o755, uid: 0, gid: 0),
            .symlink(path: "/lib", target: "usr/lib", uid: 0, gid: 0),
        ])
        try await editor.apply([
            .write(hostFile: unit, to: "/lib/systemd/system/fleet.service", mode: 0o644, uid: 0, gid: 0),
        ])
        #expect(try image.rootCat("/usr/lib/systemd/system/fleet.service") == Array("[Unit]\n".utf8))
        #expect(try image.rootStat("/lib")?.type == "symlink")
        let check = try image.e2fsck()
        #expect(check.status == 0, "\(check.text)")
    }

    @Test("a file that does not fit throws, naming the path and a full file system")
    func fileSystemFull() async throws {
        let image = try DiskImageTestImage(.mbr, rootMiB: 8)
        defer { image.remove() }
        let big = image.directory + "/big.bin"
        try DiskImageShell.run(["dd", "if=/dev/urandom", "of=\(big)", "bs=1M", "count=20", "status=none"])
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)
        let error = await #expect(throws: DiskImageError.self) {
            try await editor.apply([.write(hostFile: big, to: "/opt/big.bin", mode: 0o644, uid: 0, gid: 0)])
        }
        guard case .editFailed(_, "/opt/big.bin", let cause) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(cause.contains("full"))
        #expect(cause.contains("Could not allocate block"))
    }

    @Test("impossible edits throw before writing anything")
    func refusesImpossibleEdits() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let file = try hostFile(image.directory, "file", Array("x".utf8))
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)
        try await editor.apply([.write(hostFile: file, to: "/etc/motd", mode: 0o644, uid: 0, gid: 0)])
        let before = try DiskImageShell.sha256(image.path)

        let underFile = await #expect(throws: DiskImageError.self) {
            try await editor.apply([.write(hostFile: file, to: "/etc/motd/inner", mode: 0o644, uid: 0, gid: 0)])
        }
        #expect(underFile?.description.contains("/etc/motd exists and is not a directory") == true)
        let ontoDirectory = await #expect(throws: DiskImageError.self) {
            try await editor.apply([.write(hostFile: file, to: "/etc", mode: 0o644, uid: 0, gid: 0)])
        }
        #expect(ontoDirectory?.description.contains("a directory is in the way") == true)
        await #expect(throws: DiskImageError.invalidPath(path: "etc/x", reason: "must be absolute (start with /)")) {
            try await editor.apply([.write(hostFile: file, to: "etc/x", mode: 0o644, uid: 0, gid: 0)])
        }
        await #expect(throws: DiskImageError.self) {
            try await editor.apply([.write(hostFile: file, to: "/etc/a\nb", mode: 0o644, uid: 0, gid: 0)])
        }
        await #expect(throws: DiskImageError.self) {
            try await editor.apply([.write(hostFile: file, to: "/etc/../x", mode: 0o644, uid: 0, gid: 0)])
        }
        await #expect(throws: DiskImageError.io(path: image.directory + "/missing", operation: "open for reading", errno: ENOENT)) {
            try await editor.apply([.write(hostFile: image.directory + "/missing", to: "/x", mode: 0o644, uid: 0, gid: 0)])
        }
        #expect(try DiskImageShell.sha256(image.path) == before)
    }

    @Test("readFile: content, nil when missing, errors for directories and unreadable file systems")
    func reads() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let bytes = (0..<70000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
        let file = try hostFile(image.directory, "data", bytes)
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)
        try await editor.apply([.write(hostFile: file, to: "/var/data \"x\"", mode: 0o640, uid: 3, gid: 4)])

        #expect(try await editor.readFile("/var/data \"x\"") == bytes)
        #expect(try await editor.readFile("/var/nothing") == nil)
        #expect(try await editor.readFile("/no/such/dir/file") == nil)
        #expect(try await editor.status(of: "/var/nothing") == nil)
        #expect(try await editor.status(of: "/var/data \"x\"") == Ext4FileStatus(type: "regular", mode: 0o640, uid: 3, gid: 4, size: 70000))
        await #expect(throws: DiskImageError.notARegularFile(image: editor.imageDescription, path: "/var", kind: "directory")) {
            try await editor.readFile("/var")
        }
        // The FAT partition is no ext4 file system: an error, not "missing".
        let wrong = Ext4Editor(imagePath: image.path, partitionOffset: image.bootOffset)
        let error = await #expect(throws: DiskImageError.self) { try await wrong.readFile("/etc/hostname") }
        guard case .toolFailed("debugfs", _, let detail) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(detail.contains("cannot open"))
    }

    @Test("a cancelled apply throws CancellationError")
    func cancellation() async throws {
        let image = try DiskImageTestImage(.mbr)
        defer { image.remove() }
        let file = try hostFile(image.directory, "file", Array("x".utf8))
        let editor = Ext4Editor(imagePath: image.path, partitionOffset: image.rootOffset)
        let task = Task {
            try await editor.apply([.write(hostFile: file, to: "/x", mode: 0o644, uid: 0, gid: 0)])
        }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}
