import Foundation

/// Reads what the first-boot contract needs to know from a base image, without root or mounting:
/// `/etc/os-release` (through its usual link to `/usr/lib/os-release`), the UID-1000 user of
/// `/etc/passwd`, whether cloud-init is installed and enabled, the boot partition's cloud-init
/// seed files, and the WLAN rfkill state files.
///
/// The result depends only on the image's bytes and the manifest's `base_image`, so it is cached
/// beside the decompressed image, keyed by the archive's SHA-256: a nightly run with nothing to
/// build never decompresses or reads the image again.
public struct BaseImageInspector: Sendable {
    public var manifest: Manifest

    public init(manifest: Manifest) {
        self.manifest = manifest
    }

    /// The OS of the image at `imagePath`; `probe` are device paths whose presence is reported in
    /// ``DeviceOS/probedPaths``.
    public func inspect(imagePath: String, probe: [String] = []) async throws -> DeviceOS {
        let table = try PartitionTableReader.read(imageAt: imagePath)
        let (boot, root) = try InjectBuilder.partitions(in: table, spec: manifest.baseImage, image: imagePath)
        let ext4 = Ext4Editor(imagePath: imagePath, partitionOffset: root.startOffset)
        let fat = FATEditor(imagePath: imagePath, partitionOffset: boot.startOffset)

        var osRelease: [UInt8]?
        for path in ["/etc/os-release", "/usr/lib/os-release"] {
            if let status = try await ext4.status(of: path), status.type == "regular" {
                osRelease = try await ext4.readFile(path)
                break
            }
        }
        let fields = osRelease.map { DeviceOS.parseOSRelease(String(decoding: $0, as: UTF8.self)) } ?? [:]
        let found = fields["VERSION_CODENAME"]
        let override = manifest.baseImage.os
        let codename = override?.value.codename ?? found
        guard let codename, DeviceOS.supportedCodenames.contains(codename) else {
            let what = osRelease == nil
                ? "no /etc/os-release in its root file system"
                : "\(fields["PRETTY_NAME"] ?? "an os-release") with VERSION_CODENAME=\(found ?? "(none)")"
            throw DeviceOSError("base image: found \(what); fleet-images writes the first-boot settings of Raspberry Pi OS \(DeviceOS.supportedCodenames.joined(separator: " and ")). Use such a base image, or set base_image.os {\"codename\": …} if this one is derived from one")
        }

        let cloudInstalled = try await ext4.status(of: "/usr/bin/cloud-init") != nil
        let cloudDisabled = try await ext4.status(of: "/etc/cloud/cloud-init.disabled") != nil
        let hasCloudInit = cloudInstalled && !cloudDisabled
        var raspberryModule = false
        if hasCloudInit, let versions = try await ext4.listDirectory("/usr/lib/python3/dist-packages/cloudinit/config") {
            raspberryModule = versions.contains("cc_rpi_userdata.py")
        }
        // The boot partition's seed files tell a cloud-init image even when the package check is fooled.
        let hasMetaData = try await fat.readFile("/meta-data") != nil
        let hasUserData = try await fat.readFile("/user-data") != nil
        let seeded = hasMetaData || hasUserData
        let format = override?.value.initFormat ?? DeviceOS.defaultFormat(codename: codename, hasCloudInit: hasCloudInit)
        if format == .cloudInit, !hasCloudInit {
            throw DeviceOSError("base image: \(fields["PRETTY_NAME"] ?? codename) has \(cloudInstalled ? "cloud-init disabled (/etc/cloud/cloud-init.disabled)" : "no cloud-init (/usr/bin/cloud-init is missing)")\(seeded ? ", although its boot partition has seed files" : ""); set base_image.os.init_format to \"userconf\" or use an image that ships cloud-init")
        }

        var firstUser: DeviceOS.FirstUser?
        if let passwd = try await ext4.readFile("/etc/passwd") {
            for line in String(decoding: passwd, as: UTF8.self).split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                if f.count >= 7, f[2] == "1000", let gid = UInt32(f[3]) {
                    firstUser = .init(name: f[0], home: f[5], uid: 1000, gid: gid)
                    break
                }
            }
        }
        let rfkill = (try await ext4.listDirectory("/var/lib/systemd/rfkill") ?? []).filter { $0.hasSuffix(":wlan") }.sorted()
        var probed: [String: Bool] = [:]
        for path in Set(probe) {
            // A command reached through /bin or /sbin on a merged-/usr image is a link: that is "there".
            probed[path] = try await ext4.status(of: path) != nil
        }
        return DeviceOS(codename: codename, prettyName: fields["PRETTY_NAME"] ?? codename, initFormat: format,
                        overridden: override != nil, firstUser: firstUser, hasCloudInit: hasCloudInit,
                        hasRaspberryPiUserconfModule: raspberryModule, rfkillWlanFiles: rfkill, probedPaths: probed)
    }
}
