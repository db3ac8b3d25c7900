import Foundation
import Testing
@testable import FleetImagesCore

/// Reading what a base image runs from real disk images: the repository's demo base, and small
/// images made with sfdisk/mkfs with the files of each case put in place.
@Suite(.serialized) struct BaseImageInspectorTests {
    static func manifest(base: String, os: String? = nil) throws -> Manifest {
        let json = """
        {"format": 1, "fleet": "t", "builder": {"type": "inject"},
         "base_image": {"source": "base.img", "sha256": "\(String(repeating: "a", count: 64))", "arch": "arm64"\(os.map { ", \"os\": \($0)" } ?? "")},
         "signing": {"private_key": "k.pem", "public_key": "p.pem"},
         "sites": [{"id": "s", "region": "eu-central-1"}]}
        """
        let (manifest, diagnostics) = ManifestReader.read(data: Data(json.utf8), filePath: (base as NSString).deletingLastPathComponent + "/fleet.json")
        return try #require(manifest, "\(diagnostics)")
    }

    /// A test image whose root holds `files` (path → content) and `links` (path → target).
    static func image(files: [String: String], links: [String: String] = [:]) async throws -> DiskImageTestImage {
        let disk = try DiskImageTestImage(.mbr)
        var operations: [Ext4Operation] = []
        for (index, (path, content)) in files.sorted(by: { $0.key < $1.key }).enumerated() {
            let host = disk.directory + "/file-\(index)"
            try DiskImageTestDirectory.write(Array(content.utf8), to: host)
            operations.append(.write(hostFile: host, to: path, mode: 0o644, uid: 0, gid: 0))
        }
        for (path, target) in links.sorted(by: { $0.key < $1.key }) {
            operations.append(.symlink(path: path, target: target, uid: 0, gid: 0))
        }
        try await Ext4Editor(imagePath: disk.path, partitionOffset: disk.rootOffset).apply(operations)
        return disk
    }

    static let trixie = "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\nVERSION_CODENAME=trixie\n"

    @Test("the demo base is Bookworm with the userconf format and its UID-1000 user pi")
    func demoBase() async throws {
        let archive = PackerDockerTemplateTests.packageRoot + "/base/demo-raspios-bookworm-arm64.img.xz"
        let directory = try makeTemporaryDirectory("fleet-images-inspect")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runTool("sh", ["-c", "xz -dc '\(archive)' > '\(directory)/base.img'"])
        let os = try await BaseImageInspector(manifest: try Self.manifest(base: directory + "/base.img"))
            .inspect(imagePath: directory + "/base.img", probe: ["/bin/sh", "/usr/local/bin/nothing-here"])
        #expect(os.codename == "bookworm" && os.initFormat == .userconf && !os.hasCloudInit && !os.overridden)
        #expect(os.firstUser == DeviceOS.FirstUser(name: "pi", home: "/home/pi", uid: 1000, gid: 1000))
        #expect(os.probedPaths["/usr/local/bin/nothing-here"] == false)
    }

    @Test("a Trixie image with cloud-init takes the cloud-init format; os-release is found through its /usr/lib link")
    func trixieCloudInit() async throws {
        let disk = try await Self.image(
            files: ["/usr/lib/os-release": Self.trixie, "/usr/bin/cloud-init": "#!/bin/sh\n",
                    "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n",
                    "/var/lib/systemd/rfkill/platform-fe300000.mmcnr:wlan": "1\n", "/var/lib/systemd/rfkill/platform-fe215040.serial:bluetooth": "0\n",
                    "/usr/local/bin/enrol": "#!/bin/sh\n"],
            links: ["/etc/os-release": "../usr/lib/os-release"])
        defer { disk.remove() }
        let os = try await BaseImageInspector(manifest: try Self.manifest(base: disk.path)).inspect(imagePath: disk.path, probe: ["/usr/local/bin/enrol"])
        #expect(os.codename == "trixie" && os.initFormat == .cloudInit && os.hasCloudInit)
        #expect(os.rfkillWlanFiles == ["platform-fe300000.mmcnr:wlan"])
        #expect(os.probedPaths == ["/usr/local/bin/enrol": true])

        // base_image.os can keep the userconf format on such an image (the content then turns cloud-init off).
        let forced = try await BaseImageInspector(manifest: try Self.manifest(base: disk.path, os: #"{"codename": "trixie", "init_format": "userconf"}"#))
            .inspect(imagePath: disk.path)
        #expect(forced.initFormat == .userconf && forced.overridden && forced.hasCloudInit)
    }

    @Test("an OS fleet-images does not know is refused with what was found")
    func unknownOS() async throws {
        let disk = try await Self.image(files: ["/etc/os-release": "PRETTY_NAME=\"Raspbian GNU/Linux 11 (bullseye)\"\nVERSION_CODENAME=bullseye\n"])
        defer { disk.remove() }
        do {
            _ = try await BaseImageInspector(manifest: try Self.manifest(base: disk.path)).inspect(imagePath: disk.path)
            Issue.record("a bullseye image was accepted")
        } catch let error as DeviceOSError {
            #expect(error.description.contains("Raspbian GNU/Linux 11 (bullseye) with VERSION_CODENAME=bullseye"), "\(error)")
            #expect(error.description.contains("base_image.os"))
        }
        // Told it is Bookworm-derived, fleet-images takes the operator's word for the release.
        let told = try await BaseImageInspector(manifest: try Self.manifest(base: disk.path, os: #"{"codename": "bookworm"}"#)).inspect(imagePath: disk.path)
        #expect(told.codename == "bookworm" && told.overridden)
    }

    @Test("cloud-init asked for on an image without it is refused; a disabled cloud-init does not count")
    func cloudInitMissing() async throws {
        let disk = try await Self.image(files: ["/etc/os-release": Self.trixie, "/usr/bin/cloud-init": "#!/bin/sh\n", "/etc/cloud/cloud-init.disabled": ""])
        defer { disk.remove() }
        let os = try await BaseImageInspector(manifest: try Self.manifest(base: disk.path)).inspect(imagePath: disk.path)
        #expect(os.initFormat == .userconf && !os.hasCloudInit)
        await #expect(throws: DeviceOSError.self) {
            _ = try await BaseImageInspector(manifest: try Self.manifest(base: disk.path, os: #"{"codename": "trixie", "init_format": "cloud-init"}"#)).inspect(imagePath: disk.path)
        }
    }

    @Test("a first-boot command neither in the image nor in files, and a login without a UID-1000 user, are manifest errors")
    func problemsAgainstTheImage() {
        var variant = DeviceContractTests.variant(firstBoot: .unit(command: ["/opt/enrol"], retrySeconds: 60))
        var os = DeviceOS.testBookworm
        os.probedPaths = ["/opt/enrol": false]
        #expect(DeviceOSResolver.commandsToProbe([variant]) == ["/opt/enrol"])
        let missing = DeviceOSResolver.problems([variant], os: os)
        #expect(missing.count == 1 && missing[0].description.contains("/opt/enrol is not in the base image"), "\(missing)")

        variant.files = [FileEntry(source: "enrol.sh", destination: "/opt/enrol", mode: 0o700, uid: 0, gid: 0, ownerGiven: true, path: .root)]
        #expect(DeviceOSResolver.commandsToProbe([variant]).isEmpty)
        #expect(DeviceOSResolver.problems([variant], os: os).isEmpty)

        os.firstUser = nil
        let noUser = DeviceOSResolver.problems([variant], os: os)
        #expect(noUser.count == 1 && noUser[0].description.contains("no UID-1000 user"), "\(noUser)")
        // Keys alone need that user's home just the same: never dropped without a word.
        variant.user = nil
        let keysOnly = DeviceOSResolver.problems([variant], os: os)
        #expect(keysOnly.count == 1 && keysOnly[0].description.contains("authorized_keys could hold this key"), "\(keysOnly)")
    }
}
