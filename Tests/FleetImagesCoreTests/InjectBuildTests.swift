import Foundation
import Testing
@testable import FleetImagesCore

/// The inject builder end to end through `BuildRunner`, on real disk images, read back with
/// tools that are not ours (debugfs, mtype, e2fsck, openssl).
@Suite(.serialized) struct InjectBuildTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let demoBase = repository + "/base/demo-raspios-bookworm-arm64.img.xz"

    /// A test fleet whose base image is `baseFile` (copied in as base/<name>).
    static func fleet(sites: [String], base baseFile: String, sha256: String? = nil, edit: @escaping (inout [String: Any]) -> Void = { _ in }) throws -> TestFleet {
        let fleet = try TestFleet(sites: sites)
        let name = (baseFile as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: baseFile, toPath: fleet.directory + "/base/" + name)
        let digest = try sha256 ?? String(runTool("sha256sum", [baseFile]).prefix(64))
        try fleet.writeManifest(sites: sites) { manifest in
            manifest["base_image"] = ["source": "base/" + name, "sha256": digest, "arch": "arm64"]
            edit(&manifest)
        }
        return fleet
    }

    static func build(_ fleet: TestFleet, parallel: Int = 2) async throws -> BuildSummary {
        let options = BuildOptions(manifestPath: fleet.manifestPath, parallel: parallel, commandLine: "build (test)", environment: [:])
        return try await BuildRunner(options: options).run()
    }

    static func debugfs(_ image: String, offset: UInt64, _ request: String) throws -> String {
        try runTool("/usr/sbin/debugfs", ["-R", request, "\(image)?offset=\(offset)"])
    }

    @Test func demoBaseIsSpecialisedPerSiteAndReadsBackWithIndependentTools() async throws {
        let fleet = try Self.fleet(sites: ["alpha", "beta"], base: Self.demoBase)
        let summary = try await Self.build(fleet)
        #expect(summary.status == .succeeded, "\(summary.variants.map { $0.error ?? "" })")

        let root: UInt64 = 270_336 * 512, boot: UInt64 = 8192 * 512
        for site in ["alpha", "beta"] {
            let image = fleet.directory + "/build/images/\(site)/latest/\(site).img"
            // Claim key: content as given, in the root-only folder, root's alone (never the login user's).
            let key = try Self.debugfs(image, offset: root, "cat /etc/fleet-images/claim.private.pem.key")
            #expect(key == (try String(contentsOfFile: fleet.directory + "/certs/\(site)/claim.private.pem.key", encoding: .utf8)))
            let keyStat = try Self.debugfs(image, offset: root, "stat /etc/fleet-images/claim.private.pem.key")
            #expect(keyStat.contains("Mode:  0600") && keyStat.contains("User:     0   Group:     0"), "\(keyStat)")
            let folderStat = try Self.debugfs(image, offset: root, "stat /etc/fleet-images")
            #expect(folderStat.contains("Type: directory") && folderStat.contains("Mode:  0700") && folderStat.contains("User:     0   Group:     0"), "\(folderStat)")
            let old = try runProcess("/usr/sbin/debugfs", ["-R", "stat /home/pi/claim.private.pem.key", "\(image)?offset=\(root)"])
            #expect(old.stderr.contains("File not found"), "the seed's /home/pi claim key must not be there: \(old.stdout)")
            // Wi-Fi keyfile: root-only, holds the site's SSID and passphrase.
            let keyfile = "/etc/NetworkManager/system-connections/preconfigured.nmconnection"
            let wifiStat = try Self.debugfs(image, offset: root, "stat \(keyfile)")
            #expect(wifiStat.contains("Mode:  0600") && wifiStat.contains("User:     0   Group:     0"))
            let wifi = try Self.debugfs(image, offset: root, "cat \(keyfile)")
            #expect(wifi.contains("ssid=\(site)-net") && wifi.contains("psk=psk-of-\(site)-secret") && wifi.contains("key-mgmt=wpa-psk"))
            // The radio is on at first boot: NetworkManager's state file, and the setup unit enabled.
            #expect(try Self.debugfs(image, offset: root, "cat /var/lib/NetworkManager/NetworkManager.state").contains("WirelessEnabled=true\n"))
            #expect(try Self.debugfs(image, offset: root, "stat /etc/systemd/system/sysinit.target.wants/fleet-images-setup.service").contains("Type: symlink"))
            // config_parameters.txt: the five lines provision.sh reads, in its order.
            let parameters = try Self.debugfs(image, offset: root, "cat /etc/fleet-images/config_parameters.txt")
            #expect(parameters == "eu-central-1\nabc123-ats.iot.eu-central-1.amazonaws.com\nxyz789.credentials.iot.eu-central-1.amazonaws.com\nTestRoleAlias\nTestTemplate\n")
            #expect(try Self.debugfs(image, offset: root, "cat /etc/hostname") == "\(site)\n")
            let hosts = try Self.debugfs(image, offset: root, "cat /etc/hosts")
            #expect(hosts.contains("127.0.1.1\t\t\(site)") || hosts.contains("127.0.1.1\t\(site)") || hosts.contains("127.0.1.1 \(site)"), "\(hosts)")
            #expect(!hosts.contains("raspberrypi"))
            // The manifest's file, with its owner.
            let config = try Self.debugfs(image, offset: root, "stat /home/pi/config.yaml")
            #expect(config.contains("User:  1000"))
            // Boot partition: the regulatory domain on the single kernel command line.
            let cmdline = try runTool("mtype", ["-i", "\(image)@@\(boot)", "::/cmdline.txt"])
            #expect(cmdline.hasSuffix(" cfg80211.ieee80211_regdom=CH\n") && cmdline.split(separator: "\n").count == 1)
            // Both file systems are consistent.
            _ = try runTool("/usr/sbin/e2fsck", ["-fn", "\(image)?offset=\(root)"])
            _ = try runTool("openssl", ["dgst", "-sha256", "-verify", fleet.directory + "/keys/signing.pub.pem", "-signature", image + ".sig", image])
            // Not world-readable: it carries keys.
            let mode = try FileManager.default.attributesOfItem(atPath: image)[.posixPermissions] as? NSNumber
            #expect(mode?.uint16Value == 0o640)
        }
        // The cached base is read-only and unchanged.
        let cache = fleet.directory + "/.fleet-images/cache/base"
        let cached = try #require(try FileManager.default.contentsOfDirectory(atPath: cache).first { $0.hasSuffix(".img") })
        let decompressed = try runTool("sh", ["-c", "xz -dc '\(Self.demoBase)' | sha256sum"]).prefix(64)
        #expect(try runTool("sha256sum", [cache + "/" + cached]).prefix(64) == decompressed)
        #expect((try FileManager.default.attributesOfItem(atPath: cache + "/" + cached)[.posixPermissions] as? NSNumber)?.uint16Value == 0o444)
        // Sparse: the 320 MiB image has a few hundred KiB of data, and only those are on disk.
        var info = stat()
        #expect(stat(cache + "/" + cached, &info) == 0 && info.st_blocks * 512 < 4 << 20, "allocated \(info.st_blocks * 512) bytes")
    }

    /// The same inputs give the same bytes: rebuilding with --force reproduces the image exactly.
    @Test func imagesAreReproducible() async throws {
        let fleet = try Self.fleet(sites: ["alpha"], base: Self.demoBase)
        let first = try await Self.build(fleet, parallel: 1)
        try await Task.sleep(for: .seconds(1.1))
        var options = BuildOptions(manifestPath: fleet.manifestPath, parallel: 1, commandLine: "build --force (test)", environment: [:])
        options.force = true
        let second = try await BuildRunner(options: options).run()
        let a = try #require(first.variants.first?.sha256), b = try #require(second.variants.first?.sha256)
        #expect(second.variants.first?.status == .built)
        #expect(a == b)
        #expect(first.variants.first?.image != second.variants.first?.image)
    }

    @Test func gptBaseImageWithPartitionsFoundByType() async throws {
        let disk = try DiskImageTestImage(.gpt)
        let fleet = try Self.fleet(sites: ["alpha"], base: disk.path) { manifest in
            manifest["defaults"] = ["iot": ["role_alias": "R", "provisioning_template": "T"],
                                    "wifi": ["country": "DE"],
                                    "files": [["source": "variants/common/config.yaml", "destination": "/boot/firmware/with space/config.yaml"]]] as [String: Any]
        }
        let summary = try await Self.build(fleet, parallel: 1)
        #expect(summary.status == .succeeded, "\(summary.variants.map { $0.error ?? "" })")
        let image = fleet.directory + "/build/images/alpha/latest/alpha.img"
        #expect(try runTool("mtype", ["-i", "\(image)@@\(disk.bootOffset)", "::/with space/config.yaml"]) == "greengrass: config\n")
        #expect(try Self.debugfs(image, offset: disk.rootOffset, "cat /etc/hostname") == "alpha\n")
    }

    @Test func aBaseImageWhoseDigestDiffersIsNeverUsed() async throws {
        let wrong = String(repeating: "0", count: 64)
        let fleet = try Self.fleet(sites: ["alpha", "beta"], base: Self.demoBase, sha256: wrong)
        let before = try runTool("sha256sum", [fleet.directory + "/base/demo-raspios-bookworm-arm64.img.xz"])
        let summary = try await Self.build(fleet)
        #expect(summary.status == .failed)
        for result in summary.variants {
            #expect(result.status == .failed)
            #expect(result.error?.contains(wrong) == true && result.error?.contains(String(before.prefix(64))) == true)
        }
        #expect(try runTool("sha256sum", [fleet.directory + "/base/demo-raspios-bookworm-arm64.img.xz"]) == before)
        #expect(BuildRunnerTests.outputImages(fleet).isEmpty)
        // The failure is recorded, so `ls` shows it.
        let rows = try runTool("sqlite3", [fleet.directory + "/.fleet-images/provenance.sqlite", "SELECT count(*) FROM build WHERE status = 'failed'"])
        #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "2")
    }

    @Test func notADiskImageFailsClearlyAndLeavesNothing() async throws {
        let folder = try makeTemporaryDirectory()
        let junk = folder + "/junk.img"
        try Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: junk))
        let fleet = try Self.fleet(sites: ["alpha"], base: junk)
        let summary = try await Self.build(fleet, parallel: 1)
        let result = try #require(summary.variants.first)
        #expect(result.status == .failed)
        #expect(result.error?.lowercased().contains("not a disk image") == true || result.error?.contains("partition") == true, "\(result.error ?? "")")
        #expect(BuildRunnerTests.outputImages(fleet).isEmpty && BuildRunnerTests.workLeftovers(fleet).isEmpty)
    }

    @Test func aRootThatIsNotExt4IsRefused() async throws {
        let disk = try DiskImageTestImage(.mbr, formatted: false)
        let fleet = try Self.fleet(sites: ["alpha"], base: disk.path)
        let summary = try await Self.build(fleet, parallel: 1)
        let result = try #require(summary.variants.first)
        #expect(result.status == .failed)
        #expect(result.error?.contains("not") == true, "\(result.error ?? "")")
        #expect(BuildRunnerTests.outputImages(fleet).isEmpty)
    }

    @Test func aFullFileSystemFailsThatSiteOnlyAndTheOthersGoOn() async throws {
        let disk = try DiskImageTestImage(.mbr, totalMiB: 120, rootMiB: 8)
        let fleet = try Self.fleet(sites: ["alpha", "beta"], base: disk.path) { manifest in
            var sites = manifest["sites"] as! [[String: Any]]
            sites[1]["files"] = [["source": "variants/big.bin", "destination": "/var/big.bin"]]
            manifest["sites"] = sites
        }
        _ = try runTool("sh", ["-c", "head -c \(24 << 20) /dev/urandom > '\(fleet.directory)/variants/big.bin'"])
        let summary = try await Self.build(fleet)
        #expect(summary.variants.first { $0.variant == "alpha" }?.status == .built)
        let beta = try #require(summary.variants.first { $0.variant == "beta" })
        #expect(beta.status == .failed)
        #expect(beta.error?.contains("/var/big.bin") == true, "\(beta.error ?? "")")
        #expect(!BuildRunnerTests.outputImages(fleet).contains { $0.hasPrefix("beta/") })
        #expect(BuildRunnerTests.workLeftovers(fleet).isEmpty)
    }

    @Test(arguments: ["gz", "zst", "zip"]) func compressedBaseImagesAreAccepted(_ format: String) async throws {
        let folder = try makeTemporaryDirectory()
        let raw = folder + "/base.img"
        _ = try runTool("sh", ["-c", "xz -dc '\(Self.demoBase)' > '\(raw)'"])
        let archive: String
        switch format {
        case "gz": archive = raw + ".gz"; _ = try runTool("gzip", ["-k", "-1", raw])
        case "zst": archive = raw + ".zst"; _ = try runTool("zstd", ["-q", "-1", raw, "-o", archive])
        default: archive = folder + "/base.zip"; _ = try runTool("zip", ["-q", "-j", archive, raw])
        }
        let fleet = try Self.fleet(sites: ["alpha"], base: archive)
        let summary = try await Self.build(fleet, parallel: 1)
        #expect(summary.status == .succeeded, "\(summary.variants.map { $0.error ?? "" })")
        let cache = fleet.directory + "/.fleet-images/cache/base"
        let cached = try #require(try FileManager.default.contentsOfDirectory(atPath: cache).first { $0.hasSuffix(".img") })
        #expect(try runTool("sha256sum", [cache + "/" + cached]).prefix(64) == runTool("sha256sum", [raw]).prefix(64))
    }
}
