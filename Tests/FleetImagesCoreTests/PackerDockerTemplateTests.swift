import Foundation
import Testing
@testable import FleetImagesCore

/// The packer-docker builder's pure parts: the rendered template (golden files and the
/// packer-builder-arm field list), the chroot edit scripts (run with the system's `sh` and `awk`
/// and compared with the Swift edits the inject builder makes), the machine-readable parser and
/// the start gate. No Docker needed.
@Suite("Packer template rendering")
struct PackerDockerTemplateTests {
    static var packageRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.lastPathComponent != "Tests" { url.deleteLastPathComponent() }
        return url.deletingLastPathComponent().path
    }

    /// The production example: its manifest, its template, its two sites.
    static func exampleRenderer() throws -> (PackerTemplateRenderer, Plan) {
        let manifestPath = packageRoot + "/examples/raspios-greengrass/fleet.json"
        let environment: [String: String] = [:]
        let outcome = FleetLoader.load(manifestPath: manifestPath, environment: environment, only: nil)
        guard let manifest = outcome.manifest, !outcome.hasErrors else {
            Issue.record("the example does not load: \(outcome.diagnostics.map(\.description))")
            throw CancellationError()
        }
        let plan = try Planner(manifest: manifest, environment: environment, secretKey: Array(repeating: 7, count: 32)).plan(outcome.variants, os: .testBookworm)
        return (try PackerTemplateRenderer.load(manifest: manifest), plan)
    }

    static func object(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let top) = try JSONValue.parse(Data(text.utf8)) else { throw CancellationError() }
        return top
    }

    @Test("the example's variant context matches its golden file")
    func variantGolden() throws {
        let (renderer, plan) = try Self.exampleRenderer()
        let variant = try #require(plan.variants.first { $0.variant.id == "zrh-lab" })
        let context = try renderer.render(.variant(id: variant.variant.id, items: variant.items))
        let listing = context.listing(relativeTo: renderer.manifest.directory)
        if let problem = goldenMismatch(listing, name: "packer/raspios-greengrass-zrh-lab.txt") { Issue.record("\(problem)") }
        // Nothing secret in the listing: the Wi-Fi passphrase and the claim key's bytes stay out.
        let psk = try String(contentsOfFile: renderer.manifest.directory + "/certs/zrh-lab/wifi.psk", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!listing.contains(psk))
        #expect(!listing.contains("PRIVATE KEY"))
    }

    @Test("the example's base context matches its golden file and holds no site file")
    func baseGolden() throws {
        let (renderer, _) = try Self.exampleRenderer()
        let context = try renderer.render(.base)
        if let problem = goldenMismatch(context.listing(relativeTo: renderer.manifest.directory), name: "packer/raspios-greengrass-base.txt") {
            Issue.record("\(problem)")
        }
        #expect(!context.template.contains("\"type\" : \"file\""))
        #expect(context.files.map(\.path) == ["scripts/set_os.sh"])
    }

    @Test("rendered templates use only packer-builder-arm fields and have every required one")
    func fieldList() throws {
        let (renderer, plan) = try Self.exampleRenderer()
        var templates = [try renderer.render(.base).template]
        for variant in plan.variants {
            templates.append(try renderer.render(.variant(id: variant.variant.id, items: variant.items)).template)
        }
        for text in templates {
            let top = try Self.object(text)
            #expect(Set(top.keys).isSubset(of: PackerTemplateRenderer.topLevelKeys))
            guard case .array(let builders)? = top["builders"], case .object(let builder)? = builders.first else {
                Issue.record("no builder")
                continue
            }
            #expect(Set(builder.keys).isSubset(of: PackerArmFields.builderKeys), "unknown: \(Set(builder.keys).subtracting(PackerArmFields.builderKeys))")
            for key in PackerArmFields.requiredKeys { #expect(builder[key] != nil, "missing \(key)") }
            #expect(builder["file_checksum"] != nil || builder["file_checksum_url"] != nil)
            #expect(builder["image_size"] != nil || builder["image_size_bytes"] != nil)
            #expect(PackerArmFields.problems(in: builder).isEmpty)
            // arm64 image, so the aarch64 emulator (the seed named qemu-arm-static).
            #expect(PackerJSON.string(builder["qemu_binary_source_path"]) == "/usr/bin/qemu-aarch64-static")
            #expect(PackerJSON.string(builder["qemu_binary_destination_path"]) == "/usr/bin/qemu-aarch64-static")
        }
    }

    @Test("the field check names unknown and missing fields")
    func fieldProblems() throws {
        let builder = try Self.object("""
        {"type": "arm", "file_urls": ["x"], "image_pth": "a.img", "image_build_method": "copy", "image_partitions": [{"name": "root", "mount": "/"}],
         "qemu_binary_source_path": "/usr/bin/qemu-aarch64-static"}
        """)
        let problems = PackerArmFields.problems(in: builder).joined(separator: "\n")
        #expect(problems.contains("image_pth: not a packer-builder-arm field; did you mean \"image_path\"?"))
        #expect(problems.contains("image_path: required"))
        #expect(problems.contains("file_checksum: one of"))
        #expect(problems.contains("image_size: one of"))
        #expect(problems.contains("image_build_method: \"copy\""))
        #expect(problems.contains("image_partitions[0].mount: not a packer-builder-arm partition field"))
    }

    @Test("the builder's real fields pass: resize, filesystem_make_options, additional_chroot_mounts")
    func realFieldsPass() throws {
        let (renderer, _) = try Self.exampleRenderer()
        guard case .object(var top) = renderer.template, case .array(let builders)? = top["builders"], case .object(var builder) = builders[0] else {
            throw CancellationError()
        }
        builder["image_build_method"] = .string("resize")
        builder["image_size"] = .string("6G")
        builder["image_size_bytes"] = nil
        builder["additional_chroot_mounts"] = .array([.object([
            "mount_type": .string("bind"), "source_path": .string("/run/systemd"), "destination_path": .string("/run/systemd"),
        ])])
        if case .array(var partitions)? = builder["image_partitions"], case .object(var root) = partitions[partitions.count - 1] {
            root["filesystem_make_options"] = .array([.string("-O"), .string("^metadata_csum")])
            partitions[partitions.count - 1] = .object(root)
            builder["image_partitions"] = .array(partitions)
        }
        top["builders"] = .array([.object(builder)])
        var changed = renderer
        changed.template = .object(top)
        let rendered = try Self.object(try changed.render(.base).template)
        guard case .array(let out)? = rendered["builders"], case .object(let fields) = out[0] else { throw CancellationError() }
        #expect(PackerJSON.string(fields["image_build_method"]) == "resize")
        #expect(fields["additional_chroot_mounts"] == builder["additional_chroot_mounts"])
        #expect(fields["image_partitions"] == builder["image_partitions"])
        // And what the builder itself refuses is still refused.
        builder["image_size_bytes"] = .integer(6_000_000_000)
        builder["additional_chroot_mounts"] = .array([.object(["source": .string("/x")])])
        let problems = PackerArmFields.problems(in: builder).joined(separator: "\n")
        #expect(problems.contains("only one of image_size or image_size_bytes"))
        #expect(problems.contains("additional_chroot_mounts[0].source: not a packer-builder-arm chroot mount field"))
    }

    @Test("a template file provisioner the manifest does not cover is an error, not a silent drop")
    func uncoveredFileProvisioner() throws {
        let (renderer, plan) = try Self.exampleRenderer()
        var changed = renderer
        guard case .object(var top) = renderer.template, case .array(var provisioners)? = top["provisioners"] else { throw CancellationError() }
        provisioners.insert(.object(["type": .string("file"), "source": .string("./extra.conf"), "destination": .string("/etc/extra.conf")]), at: 0)
        top["provisioners"] = .array(provisioners)
        changed.template = .object(top)
        let variant = plan.variants[0]
        #expect(throws: PackerDockerError.self) { try changed.render(.variant(id: variant.variant.id, items: variant.items)) }
        // The base leaves every file to the inject builder.
        #expect(try changed.render(.base).notes.contains { $0.contains("left out of the base") })
    }

    /// Does what packer-builder-arm's `StepExtractAndCopyImage` does with a rendered template: copy
    /// the archive into a fresh folder, run `file_unarchive_cmd` there with `$ARCHIVE_PATH` and
    /// `$TMP_DIR` replaced (no shell), remove the archive if still there, and want one file left,
    /// unless the extension is `img`. Returns that file's bytes.
    static func unpackAsPackerBuilderArm(archive: String, template: String) throws -> Data {
        let top = try object(template)
        guard case .array(let builders)? = top["builders"], case .object(let builder) = builders[0] else { throw CancellationError() }
        let folder = try makeTemporaryDirectory("unarchive")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let copied = folder + "/" + (archive as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: archive, toPath: copied)
        let target = PackerJSON.string(builder["file_target_extension"])
        if target != "img" && target != "iso" {
            let command = try #require(PackerJSON.strings(builder["file_unarchive_cmd"]), "no file_unarchive_cmd for \(archive)")
            let replaced = command.map { $0 == "$ARCHIVE_PATH" ? copied : $0 == "$TMP_DIR" ? folder : $0 }
            try DiskImageShell.run(replaced)
            try? FileManager.default.removeItem(atPath: copied)
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: folder)
        try #require(left.count == 1, "left after unpacking: \(left)")
        return try Data(contentsOf: URL(fileURLWithPath: folder + "/" + left[0]))
    }

    @Test("every base format gets an unarchive command packer-builder-arm's image can run, leaving the raw image")
    func unarchiveCommands() throws {
        let (renderer, _) = try Self.exampleRenderer()
        let folder = try makeTemporaryDirectory("formats")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let raw = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
        try raw.write(to: URL(fileURLWithPath: folder + "/base.img"))
        try FileManager.default.createDirectory(atPath: folder + "/inner", withIntermediateDirectories: true)
        try raw.write(to: URL(fileURLWithPath: folder + "/inner/2026-raspios-lite.IMG"))
        try Data("not the image\n".utf8).write(to: URL(fileURLWithPath: folder + "/inner/README.txt"))
        try DiskImageShell.run(["xz", "-k", "-1", folder + "/base.img"])
        try DiskImageShell.run(["gzip", "-k", folder + "/base.img"])
        try DiskImageShell.run(["zstd", "-q", "-k", folder + "/base.img"])
        // A zip as Raspberry Pi's downloads are: the image in a folder, beside another file, upper case.
        try DiskImageShell.run(["sh", "-c", "cd \"$1\" && zip -q -r base.zip inner", "sh", folder])
        let expected: [(String, String)] = [("base.img", "img"), ("base.img.xz", "xz"), ("base.img.gz", "gz"), ("base.img.zst", "zst"), ("base.zip", "zip")]
        for (name, extensionName) in expected {
            var manifest = renderer.manifest
            manifest.baseImage.source = .url("https://downloads.example.com/images/\(name)?v=1")
            let context = try PackerTemplateRenderer(manifest: manifest, template: renderer.template, templatePath: renderer.templatePath).render(.base)
            let builder = try Self.object(context.template)
            #expect(context.template.contains("\"file_target_extension\" : \"\(extensionName)\""), "\(name)")
            if case .array(let builders)? = builder["builders"], case .object(let fields) = builders[0] {
                #expect((fields["file_unarchive_cmd"] == nil) == (extensionName == "img"), "\(name)")
            }
            #expect(try Self.unpackAsPackerBuilderArm(archive: folder + "/" + name, template: context.template) == raw, "\(name)")
        }
        // A zip with two images is refused by the command, as the inject builder refuses it.
        try DiskImageShell.run(["zip", "-q", "-j", folder + "/two.zip", folder + "/base.img", folder + "/inner/2026-raspios-lite.IMG"])
        var manifest = renderer.manifest
        manifest.baseImage.source = .url("https://downloads.example.com/two.zip")
        let context = try PackerTemplateRenderer(manifest: manifest, template: renderer.template, templatePath: renderer.templatePath).render(.base)
        #expect(throws: DiskImageShell.Failure.self) { try Self.unpackAsPackerBuilderArm(archive: folder + "/two.zip", template: context.template) }
    }

    @Test("armhf bases get qemu-arm-static")
    func armhf() throws {
        let (renderer, _) = try Self.exampleRenderer()
        var manifest = renderer.manifest
        manifest.baseImage.arch = "armhf"
        let context = try PackerTemplateRenderer(manifest: manifest, template: renderer.template, templatePath: renderer.templatePath).render(.base)
        #expect(context.template.contains("\"qemu_binary_source_path\" : \"/usr/bin/qemu-arm-static\""))
        #expect(context.notes.contains { $0.contains("replaced") })
    }

    @Test("the chroot hostname edit gives what HostsFile gives", arguments: [
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\n\n127.0.1.1\t\traspberrypi\n",
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
        "# empty\n",
        "127.0.0.1 localhost\n127.0.1.1\told\n127.0.1.1\tolder\n",
        "127.0.0.1\tlocalhost\n127.0.1.1  raspberrypi   # the pi\n127.0.1.1 #only a comment\n",
    ])
    func hostsEdit(hosts: String) throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data(hosts.utf8).write(to: URL(fileURLWithPath: folder + "/hosts"))
        let item = ContentItem(destination: folder + "/hosts", partition: .root, pathInPartition: folder + "/hosts", mode: 0o644, uid: 0, gid: 0,
                               source: .hostsEntry(hostname: "gg-zrh-lab"))
        let script = PackerChrootScript.finish(variantID: "t", files: [], edits: [item])
        try Data(script.utf8).write(to: URL(fileURLWithPath: folder + "/finish.sh"))
        try runTool("/bin/sh", [folder + "/finish.sh"])
        let edited = try String(contentsOfFile: folder + "/hosts", encoding: .utf8)
        #expect(edited == HostsFile.settingHostname(hosts, hostname: "gg-zrh-lab"))
    }

    @Test("the chroot kernel parameter edit gives what KernelCommandLine gives", arguments: [
        "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n",
        "console=tty1 cfg80211.ieee80211_regdom=US rootwait\n",
        "console=tty1 cfg80211-ieee80211_regdom=US rootwait cfg80211.ieee80211_regdom=GB\n",
    ])
    func cmdlineEdit(cmdline: String) throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data(cmdline.utf8).write(to: URL(fileURLWithPath: folder + "/cmdline.txt"))
        let item = ContentItem(destination: folder + "/cmdline.txt", partition: .boot, pathInPartition: "/cmdline.txt", mode: 0o644, uid: 0, gid: 0,
                               source: .kernelParameter(key: "cfg80211.ieee80211_regdom", value: "CH"))
        let script = PackerChrootScript.finish(variantID: "t", files: [], edits: [item])
        try Data(script.utf8).write(to: URL(fileURLWithPath: folder + "/finish.sh"))
        try runTool("/bin/sh", [folder + "/finish.sh"])
        let edited = try String(contentsOfFile: folder + "/cmdline.txt", encoding: .utf8)
        #expect(edited == KernelCommandLine.settingParameter(cmdline, key: "cfg80211.ieee80211_regdom", value: "CH"))
    }

    @Test("the finish script sets owners and modes (checked with stat)")
    func ownersAndModes() throws {
        guard getuid() == 0 else { return }  // chown needs root; CI runs as root
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/claim.private.pem.key"
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        let item = ContentItem(destination: path, partition: .root, pathInPartition: path, mode: 0o600, uid: 1000, gid: 1000,
                               source: .file("certs/x", secret: true))
        try Data(PackerChrootScript.finish(variantID: "t", files: [item], edits: []).utf8).write(to: URL(fileURLWithPath: folder + "/finish.sh"))
        try runTool("/bin/sh", [folder + "/finish.sh"])
        #expect(try runTool("stat", ["-c", "%u:%g %a", path]).trimmingCharacters(in: .whitespacesAndNewlines) == "1000:1000 600")
    }

    @Test("machine-readable lines: fields, escaped commas, phases, artifacts, loop devices")
    func machineReadable() {
        let record = PackerMachineReadable(line: "1702252800,,ui,say,==> arm: Uploading a%!(PACKER_COMMA)b => /x")
        #expect(record?.type == "ui")
        #expect(record?.data == ["say", "==> arm: Uploading a,b => /x"])
        #expect(PackerMachineReadable(line: "losetup: /build/x.img: failed to set up loop device") == nil)

        var monitor = PackerOutputMonitor()
        #expect(monitor.consume("1702252800,,ui,say,==> arm: Mounting image") == "Mounting image")
        #expect(monitor.consume("1702252800,,ui,say,arm: output will be in this color.") == nil)
        _ = monitor.consume("1702252800,arm,artifact,0,file,0,raspios-lite.img")
        #expect(monitor.artifactFiles == ["raspios-lite.img"])
        _ = monitor.consume("1702252800,,ui,error,Build 'arm' errored: boom")
        #expect(monitor.failureMessage(status: 1) == "packer failed (exit 1): Build 'arm' errored: boom")
        _ = monitor.consume("losetup: /build/x.img: failed to set up loop device: No such file or directory")
        #expect(monitor.failureMessage(status: 1).hasPrefix("no free loop device"))

        // What packer-builder-arm prints on a host kernel without vfat or without loop partition nodes.
        for line in ["1702252800,,ui,error,mount: /tmp/x/boot/firmware: unknown filesystem type 'vfat'.",
                     "1702252800,,ui,error,mount: /tmp/x: special device /dev/loop0p2 does not exist."] {
            var mounting = PackerOutputMonitor()
            _ = mounting.consume(line)
            #expect(mounting.failureMessage(status: 1).hasPrefix("packer-builder-arm could not mount a partition of the image"))
            #expect(mounting.failureMessage(status: 1).contains("max_part"))
        }
    }

    @Test("the start gate spaces starts by its interval")
    func startGate() async throws {
        let gate = DockerStartGate(interval: .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        let times = await withTaskGroup(of: Duration.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    try? await gate.waitForTurn()
                    return clock.now - start
                }
            }
            var all: [Duration] = []
            for await time in group { all.append(time) }
            return all.sorted()
        }
        // Lower bounds only: each slot is at least one interval after the previous one.
        #expect(times[1] >= .milliseconds(300))
        #expect(times[2] >= .milliseconds(600))
    }
}
