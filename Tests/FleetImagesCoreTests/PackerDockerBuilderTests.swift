import Foundation
import Testing
@testable import FleetImagesCore

/// The packer-docker builder against a real Docker engine, driven through ``BuildRunner`` so the
/// whole path (context, container, log, sign, record, place) runs. The builder image is the local
/// STAND-IN `fleet-images-packer-standin:test` (scripts/make-packer-standin.sh: busybox and a
/// script in place of packer, see Tests/Fixtures/packer-standin/packer), not packer-builder-arm:
/// no registry is reachable and containers cannot be --privileged here, so docker_args is `[]`.
/// Every claim about containers is checked with the docker CLI itself.
@Suite("packer-docker builder (real Docker, stand-in image)", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["FLEET_IMAGES_DOCKER_TESTS"] == "1",
                "set FLEET_IMAGES_DOCKER_TESTS=1 with a running dockerd to run the packer-docker tests"))
struct PackerDockerBuilderTests {
    static let standin = "fleet-images-packer-standin:test"
    /// What lets a container attach and mount loop devices here, short of --privileged.
    static let loopDockerArgs = ["--cap-add", "SYS_ADMIN", "--device-cgroup-rule", "b 7:* rmw", "--device-cgroup-rule", "c 10:237 rmw", "-v", "/dev:/dev"]

    init() throws {
        try runTool(PackerDockerTemplateTests.packageRoot + "/scripts/make-packer-standin.sh", [Self.standin])
    }

    /// A test fleet whose builder is packer-docker with the stand-in image. `behaviours` gives a
    /// site a behaviour of its own (ok, fail, hang, loop) through the file the stand-in reads.
    struct Fleet {
        let fleet: TestFleet
        let sites: [String]

        /// `variables` are the template's defaults; `builderVariables` is the manifest's
        /// `builder.variables` (each name is declared in the template too).
        init(sites: [String], behaviours: [String: String] = [:], variables: [String: String] = [:], mode: String = "per-variant",
             base: (file: String, sha256: String)? = nil, builderVariables: [String: Any] = [:], dockerArgs: [String] = []) throws {
            fleet = try TestFleet(sites: sites)
            self.sites = sites
            var baseSource = "base/base.img"
            var baseSHA = try runTool("sha256sum", [fleet.directory + "/base/base.img"]).prefix(64).description
            if let base {
                try FileManager.default.copyItem(atPath: base.file, toPath: fleet.directory + "/base/" + (base.file as NSString).lastPathComponent)
                baseSource = "base/" + (base.file as NSString).lastPathComponent
                baseSHA = base.sha256
            }
            try fleet.write("variants/common/set_os.sh", "#!/bin/sh\ntouch /boot/firmware/ssh\n", mode: 0o755)
            var allVariables = ["fleet_images_test_behaviour": "ok"]
            allVariables.merge(variables) { $1 }
            for name in builderVariables.keys where allVariables[name] == nil { allVariables[name] = "" }
            let variableJSON = allVariables.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
            try fleet.write("variants/common/standin.json", """
            {
              "variables": { \(variableJSON) },
              "builders": [{
                "type": "arm",
                "file_urls": ["replaced by fleet-images"],
                "file_checksum_type": "sha256",
                "image_build_method": "reuse",
                "image_path": "standin.img",
                "image_size": "1G",
                "image_type": "dos",
                "image_partitions": [
                  {"name": "bootfs", "type": "c", "start_sector": "8192", "filesystem": "vfat", "size": "256M", "mountpoint": "/boot/firmware"},
                  {"name": "rootfs", "type": "83", "start_sector": "532480", "filesystem": "ext4", "size": "0", "mountpoint": "/"}
                ],
                "qemu_binary_source_path": "/usr/bin/qemu-arm-static"
              }],
              "provisioners": [
                {"type": "file", "source": "./claim.pem.crt", "destination": "/etc/fleet-images/claim.pem.crt"},
                {"type": "shell", "script": "./set_os.sh"}
              ]
            }
            """)
            for (site, behaviour) in behaviours {
                try fleet.write("variants/\(site)/behaviour", behaviour + "\n")
            }
            try fleet.writeManifest(sites: sites) { manifest in
                manifest["base_image"] = ["source": baseSource, "sha256": baseSHA, "arch": "arm64"]
                manifest["builder"] = ["type": "packer-docker", "image": PackerDockerBuilderTests.standin,
                                       "template": "variants/common/standin.json", "docker_args": dockerArgs, "mode": mode,
                                       "variables": builderVariables]
                var entries = manifest["sites"] as! [[String: Any]]
                for index in entries.indices {
                    let site = entries[index]["id"] as! String
                    if behaviours[site] != nil {
                        entries[index]["files"] = [["source": "variants/\(site)/behaviour", "destination": "/etc/fleet-images-test-behaviour"]]
                    }
                }
                manifest["sites"] = entries
            }
        }

        var directory: String { fleet.directory }
        var state: String { directory + "/.fleet-images" }
    }

    /// Holds the builder the runner made, so the test knows its run label.
    final class BuilderBox: @unchecked Sendable {
        // @unchecked: written once by the runner before any read, under `lock`.
        private let lock = NSLock()
        private var stored: PackerDockerBuilder?
        private var flag = false
        var done: Bool {
            get { lock.lock(); defer { lock.unlock() }; return flag }
            set { lock.lock(); flag = newValue; lock.unlock() }
        }
        var builder: PackerDockerBuilder? {
            get { lock.lock(); defer { lock.unlock() }; return stored }
            set { lock.lock(); stored = newValue; lock.unlock() }
        }
    }

    static func runner(_ fleet: Fleet, parallel: Int, timeout: Int? = nil, force: Bool = false, box: BuilderBox,
                       settings: PackerDockerBuilder.Settings? = nil) -> BuildRunner {
        var options = BuildOptions(manifestPath: fleet.fleet.manifestPath, parallel: parallel, commandLine: "test", environment: [:])
        options.timeoutSeconds = timeout
        options.force = force
        var builderSettings = settings ?? PackerDockerBuilder.Settings()
        if settings == nil {
            builderSettings.startInterval = .milliseconds(200)
            builderSettings.stopGraceSeconds = 2
            builderSettings.pullIfMissing = false
            // The stand-in runs no arm program: a registration of the test's own, so the check
            // (HostBinfmtTests) passes whatever the host has.
            builderSettings.binfmtDirectory = (try? HostBinfmtTests.goodFolder()) ?? HostBinfmt.defaultDirectory
        }
        let chosen = builderSettings
        // The fleet's base is a placeholder file (the stand-in never reads it): say which OS it stands for.
        return BuildRunner(options: options, makeBuilder: { manifest, state in
            let builder = try await PackerDockerBuilder.prepare(manifest: manifest, state: state, settings: chosen)
            box.builder = builder
            return builder
        }, detectOS: { _, _, _, _ in .testBookworm })
    }

    static func containers(run token: String) throws -> [String] {
        try runTool("docker", ["ps", "-aq", "--filter", "label=fleet-images.run=\(token)"]).split(whereSeparator: \.isWhitespace).map(String.init)
    }

    static func runningContainers(run token: String) throws -> Int {
        try runTool("docker", ["ps", "-q", "--filter", "label=fleet-images.run=\(token)"]).split(whereSeparator: \.isWhitespace).count
    }

    /// Runs `runner`, sampling the run's live containers every 100 ms; returns the summary and the most seen at once.
    static func runSampling(_ runner: BuildRunner, box: BuilderBox) async throws -> (BuildSummary, Int) {
        let finished = BuilderBox()  // reused as a "done" flag: set when the run returns
        let task = Task {
            defer { finished.done = true }
            return try await runner.run()
        }
        var most = 0
        while !finished.done {
            if let token = box.builder?.runToken { most = max(most, try runningContainers(run: token)) }
            try await Task.sleep(for: .milliseconds(100))
        }
        return (try await task.value, most)
    }

    static func images(under folder: String) -> [String] {
        let found = (try? runTool("find", [folder, "-name", "*.img"])) ?? ""
        return found.split(separator: "\n").map(String.init)
    }

    @Test("two variants: images hold the variant's files, signed, recorded with the image digest, no container left")
    func buildsSignsRecords() async throws {
        let fleet = try Fleet(sites: ["alpha", "beta"])
        let box = BuilderBox()
        let summary = try await Self.runner(fleet, parallel: 2, box: box).run()
        #expect(summary.status == .succeeded, "\(summary.variants.map { "\($0.variant): \($0.error ?? "")" })")
        let builder = try #require(box.builder)
        let inspected = try runTool("docker", ["image", "inspect", "--format", "{{.Id}}", Self.standin]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(builder.imageDigest == inspected)

        for result in summary.variants {
            let image = try #require(result.image)
            // The stand-in's "image" is a tar of what Packer's file provisioners copied.
            let claim = try runTool("tar", ["-xOf", image, "./etc/fleet-images/claim.pem.crt"])
            #expect(claim == (try String(contentsOfFile: fleet.directory + "/certs/\(result.variant)/claim.pem.crt", encoding: .utf8)))
            let listing = try runTool("tar", ["-tf", image])
            #expect(listing.contains("./etc/NetworkManager/system-connections/preconfigured.nmconnection"))
            #expect(listing.contains("./etc/fleet-images/config_parameters.txt"))
            let verify = try runTool("openssl", ["dgst", "-sha256", "-verify", fleet.directory + "/keys/signing.pub.pem", "-signature", image + ".sig", image])
            #expect(verify.contains("Verified OK"))
            let log = try String(contentsOfFile: try #require(result.log), encoding: .utf8)
            #expect(log.contains("Uploading files/01-claim.pem.crt => /etc/fleet-images/claim.pem.crt"))
            #expect(log.contains("packer: Image written to standin.img"))
            #expect(log.contains("--label fleet-images.run=\(builder.runToken)"))
        }
        let recorded = try runTool("sqlite3", [fleet.state + "/provenance.sqlite", "SELECT DISTINCT builderImageDigest FROM build"])
        #expect(recorded.trimmingCharacters(in: .whitespacesAndNewlines) == inspected)
        #expect(try Self.containers(run: builder.runToken).isEmpty)
        // One shared Packer cache, mounted into both containers.
        let cacheLog = try String(contentsOfFile: fleet.state + "/cache/packer/standin.log", encoding: .utf8)
        #expect(cacheLog.split(separator: "\n").count == 2)
        // Keys live in the context only for the build: nothing is left in work/.
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.state + "/work").isEmpty)
    }

    @Test("template variables reach Packer through a 0600 var-file; the secret one is on no command line, in no log, record or provenance")
    func variablesReachPacker() async throws {
        let secret = "$6$fleetsalt$" + String(repeating: "Zq9", count: 28)
        let fleet = try Fleet(sites: ["alpha"], builderVariables: ["image_label": "nightly-7", "pi_password_hash": ["env": "FLEET_TEST_PI_HASH"]])
        var settings = PackerDockerBuilder.Settings()
        settings.startInterval = .milliseconds(200)
        settings.pullIfMissing = false
        settings.environment = ["FLEET_TEST_PI_HASH": secret]
        settings.binfmtDirectory = try HostBinfmtTests.goodFolder()
        var options = BuildOptions(manifestPath: fleet.fleet.manifestPath, parallel: 1, commandLine: "test", environment: ["FLEET_TEST_PI_HASH": secret])
        options.timeoutSeconds = 120
        let chosen = settings
        let runner = BuildRunner(options: options, makeBuilder: { manifest, state in
            try await PackerDockerBuilder.prepare(manifest: manifest, state: state, settings: chosen)
        }, detectOS: { _, _, _, _ in .testBookworm })
        let summary = try await runner.run()
        #expect(summary.status == .succeeded, "\(summary.variants.map { "\($0.variant): \($0.error ?? "")" })")
        let result = try #require(summary.variants.first)
        let image = try #require(result.image)
        // What Packer read, as the stand-in saw it inside the container.
        let values = try PackerDockerTemplateTests.object(try runTool("tar", ["-xOf", image, "./fleet-images-standin/var-file"]))
        #expect(values == ["image_label": .string("nightly-7"), "pi_password_hash": .string(secret)])
        #expect(try runTool("tar", ["-xOf", image, "./fleet-images-standin/var-file.mode"]).trimmingCharacters(in: .whitespacesAndNewlines) == "600")
        let log = try String(contentsOfFile: try #require(result.log), encoding: .utf8)
        #expect(log.contains("build -machine-readable -var-file=fleet-images.vars.json standin.json"))
        // Recorded by name (and keyed digest) only; the value is nowhere but in the image.
        let recorded = try runTool("sqlite3", [fleet.state + "/provenance.sqlite", "SELECT name || ' ' || digestKind FROM buildInput WHERE role = 'packer-variable' ORDER BY name"])
        #expect(recorded.split(separator: "\n") == ["image_label sha256", "pi_password_hash hmac-sha256"])
        let leaks = try runProcess("grep", ["-r", "-a", "-l", "-F", "--exclude=*.img", "Zq9Zq9Zq9", fleet.directory])
        #expect(leaks.status == 1, "the secret is in \(leaks.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.state + "/work").isEmpty)
    }

    @Test("an operator who is not root builds: the root-owned image Packer made is handed over, signed and placed",
          .enabled(if: geteuid() == 0, "needs root to run the CLI as another user"))
    func nonRootOperator() throws {
        // The demo base, so that the CLI detects its OS as a user's run does.
        let demo = PackerDockerTemplateTests.packageRoot + "/base/demo-raspios-bookworm-arm64.img.xz"
        let sha = String(try String(contentsOfFile: demo + ".sha256", encoding: .utf8).prefix(64))
        let fleet = try Fleet(sites: ["alpha"], base: (demo, sha))
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fleet.fleet.manifestPath))) as! [String: Any]
        // The built CLI, where the other user can run it; the fleet and a home, owned by that user.
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let cli = fleet.directory + "/bin/fleet-images"
        try FileManager.default.createDirectory(atPath: fleet.directory + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: (me as NSString).deletingLastPathComponent + "/fleet-images", toPath: cli)
        try FileManager.default.createDirectory(atPath: fleet.directory + "/home", withIntermediateDirectories: true)
        let operatorID = "65534"
        try runTool("chown", ["-R", "\(operatorID):\(operatorID)", fleet.directory])
        chmod(fleet.directory, 0o755)
        var socket = stat()
        try #require(stat("/var/run/docker.sock", &socket) == 0, "no /var/run/docker.sock")
        let result = try DiskImageShell.run(
            ["setpriv", "--reuid=\(operatorID)", "--regid=\(operatorID)", "--groups=\(socket.st_gid)", "--",
             cli, "build", "--manifest", fleet.fleet.manifestPath, "--parallel", "1", "--json"],
            environment: ["HOME": fleet.directory + "/home"], allowFailure: true)
        #expect(result.status == 0, "\(result.error)\n\(result.text)")
        let images = Self.images(under: fleet.directory).filter { $0.hasSuffix("/alpha.img") && !$0.contains("/.fleet-images/") }
        let image = try #require(images.first, "no image placed: \(result.error)")
        var info = stat()
        #expect(stat(image, &info) == 0 && info.st_uid == 65534, "owned by \(info.st_uid)")
        #expect(info.st_mode & 0o777 == 0o640)
        let verify = try runTool("openssl", ["dgst", "-sha256", "-verify", fleet.directory + "/keys/signing.pub.pem", "-signature", image + ".sig", image])
        #expect(verify.contains("Verified OK"))
        let logs = try runTool("sh", ["-c", "cat \"$1\"/.fleet-images/logs/run-*/alpha.log", "sh", fleet.directory])
        #expect(logs.contains("belongs to uid 0, not to this user (65534)"), "\(logs.suffix(2000))")
        #expect(try runTool("docker", ["ps", "-aq", "--filter", "label=fleet-images.variant=alpha", "--filter", "label=fleet-images.fleet=\(manifest["fleet"] as? String ?? "")"]).isEmpty)
    }

    @Test("never more containers of the run alive than --parallel")
    func parallelLimit() async throws {
        let fleet = try Fleet(sites: ["s1", "s2", "s3", "s4"], variables: ["fleet_images_test_sleep": "2"])
        let box = BuilderBox()
        let (summary, most) = try await Self.runSampling(Self.runner(fleet, parallel: 2, box: box), box: box)
        #expect(summary.status == .succeeded)
        #expect(summary.count(.built) == 4)
        #expect(most >= 1 && most <= 2, "saw \(most) containers at once")
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)
    }

    @Test("a failing variant does not stop the others; loop-device failures are named")
    func failureIsolation() async throws {
        let fleet = try Fleet(sites: ["alpha", "bad", "loopy"], behaviours: ["bad": "fail", "loopy": "loop"])
        let box = BuilderBox()
        let summary = try await Self.runner(fleet, parallel: 3, box: box).run()
        #expect(summary.status == .failed)
        let byID = Dictionary(uniqueKeysWithValues: summary.variants.map { ($0.variant, $0) })
        #expect(byID["alpha"]?.status == .built)
        #expect(byID["bad"]?.status == .failed)
        #expect(byID["bad"]?.error?.contains("the stand-in was told to fail") == true)
        #expect(byID["loopy"]?.status == .failed)
        #expect(byID["loopy"]?.error?.hasPrefix("no free loop device") == true, "\(byID["loopy"]?.error ?? "")")
        let loopLog = try String(contentsOfFile: try #require(byID["loopy"]?.log), encoding: .utf8)
        #expect(loopLog.components(separatedBy: "running this build once more").count == 2, "retried exactly once")
        #expect(loopLog.components(separatedBy: "docker start --attach").count == 3)
        let badLog = try String(contentsOfFile: try #require(byID["bad"]?.log), encoding: .utf8)
        #expect(badLog.contains("ui,error,Build 'arm' errored"))
        let output = fleet.directory + "/build/images"
        #expect(Self.images(under: output).allSatisfy { $0.contains("/alpha/") })
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)
    }

    @Test("a build that lost a loop-device race runs once more and succeeds, saying so")
    func loopDeviceRetry() async throws {
        let fleet = try Fleet(sites: ["alpha"], behaviours: ["alpha": "loop-once"])
        let box = BuilderBox()
        let summary = try await Self.runner(fleet, parallel: 1, box: box).run()
        let result = try #require(summary.variants.first)
        #expect(result.status == .built, "\(result.error ?? "")")
        let log = try String(contentsOfFile: try #require(result.log), encoding: .utf8)
        #expect(log.contains("could not attach a loop device (losetup: /build/standin.img: failed to set up loop device: Device or resource busy)"))
        #expect(log.contains("running this build once more"))
        // Both containers ran with the host's binfmt registration, not the entrypoint's.
        #expect(log.components(separatedBy: "-e SETUP_QEMU=false -v").count == 3)
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)
    }

    @Test("a remote daemon and a host that cannot run arm64 programs stop the run before it starts (exit 69)")
    func hostRefusals() async throws {
        let fleet = try Fleet(sites: ["alpha"])
        var remote = PackerDockerBuilder.Settings()
        remote.dockerEnvironment = ["DOCKER_HOST": "tcp://10.1.2.3:2375"]
        remote.binfmtDirectory = try HostBinfmtTests.goodFolder()
        do {
            _ = try await Self.runner(fleet, parallel: 1, box: BuilderBox(), settings: remote).run()
            Issue.record("the run started against a remote daemon")
        } catch let error as BuildRunError {
            guard case .unavailable(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("tcp://10.1.2.3:2375") && message.contains("bind-mounts each variant's build context"))
        }
        var noQemu = PackerDockerBuilder.Settings()
        noQemu.pullIfMissing = false
        noQemu.binfmtDirectory = try HostBinfmtTests.folder(entries: ["qemu-aarch64": (true, "P", HostBinfmtTests.aarch64Magic)])
        do {
            _ = try await Self.runner(fleet, parallel: 1, box: BuilderBox(), settings: noQemu).run()
            Issue.record("the run started without a usable binfmt registration")
        } catch let error as BuildRunError {
            guard case .unavailable(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("lacks the F (fix-binary) flag"))
        }
        #expect(Self.images(under: fleet.directory + "/build/images").isEmpty)
    }

    @Test("a build killed mid-way (its cleanup cut by SIGKILL) leaves no loop device attached to its image",
          .enabled(if: geteuid() == 0, "attaching loop devices needs root"))
    func timeoutDetachesLoopDevices() async throws {
        // The loop-device access packer-builder-arm gets, short of --privileged.
        let fleet = try Fleet(sites: ["alpha"], behaviours: ["alpha": "hang-attached"], dockerArgs: Self.loopDockerArgs)
        let box = BuilderBox()
        let summary = try await Self.runner(fleet, parallel: 1, timeout: 15, box: box).run()
        let result = try #require(summary.variants.first)
        #expect(result.status == .failed && result.error?.contains("timed out after 15 s") == true, "\(result.error ?? "")")
        let log = try String(contentsOfFile: try #require(result.log), encoding: .utf8)
        // The stand-in's own output line (indented in the log, as all container output is).
        let attached = try #require(log.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("attached /dev/loop") },
                                    "the stand-in attached nothing:\n\(log.suffix(1500))")
        let device = String(attached.dropFirst("attached ".count))
        #expect(log.contains("left 1 loop device(s) attached to its image; detached \(device)"), "\(log.suffix(1500))")
        let backing = "/sys/block/\((device as NSString).lastPathComponent)/loop/backing_file"
        #expect(!FileManager.default.fileExists(atPath: backing), "\(device) is still attached")
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)
    }

    @Test("a hung build is stopped at its timeout and its container removed")
    func timeout() async throws {
        let fleet = try Fleet(sites: ["alpha", "hung"], behaviours: ["hung": "hang"])
        let box = BuilderBox()
        // The timeout applies to every variant: generous enough that the healthy one finishes on a
        // loaded CI machine (staggered starts, docker create), short enough to keep the test quick.
        let (summary, most) = try await Self.runSampling(Self.runner(fleet, parallel: 2, timeout: 25, box: box), box: box)
        let byID = Dictionary(uniqueKeysWithValues: summary.variants.map { ($0.variant, $0) })
        #expect(byID["alpha"]?.status == .built, "\(byID["alpha"]?.error ?? "")")
        #expect(byID["hung"]?.status == .failed)
        #expect(byID["hung"]?.error?.contains("timed out after 25 s") == true)
        #expect(most >= 1)
        let log = try String(contentsOfFile: try #require(byID["hung"]?.log), encoding: .utf8)
        #expect(log.contains("the stand-in hangs here"))
        #expect(log.contains("stopped and removed"))
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)
        #expect(Self.images(under: fleet.directory + "/build/images").allSatisfy { !$0.contains("/hung/") })
    }

    @Test("cancelling the run leaves no container of the run and no image")
    func cancellation() async throws {
        let fleet = try Fleet(sites: ["alpha", "beta"], behaviours: ["alpha": "hang", "beta": "hang"])
        let box = BuilderBox()
        let runner = Self.runner(fleet, parallel: 2, box: box)
        let task = Task { try await runner.run() }
        // Wait until both containers run, then cancel (what SIGINT/SIGTERM does in the CLI).
        var alive = 0
        for _ in 0..<300 where alive < 2 {
            try await Task.sleep(for: .milliseconds(100))
            if let token = box.builder?.runToken { alive = try Self.runningContainers(run: token) }
        }
        #expect(alive == 2)
        task.cancel()
        let summary = try await task.value
        #expect(summary.status == .interrupted)
        #expect(summary.variants.allSatisfy { $0.status == .interrupted })
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)
        // No image in the output folder and nothing left in the work folder (the runner's verified
        // base under .fleet-images/cache/base is not a build product).
        #expect(Self.images(under: fleet.directory + "/build").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.state + "/work").isEmpty)
    }

    @Test("cancellation stress: ten cancelled builds leave no container")
    func cancellationStress() async throws {
        let fleet = try Fleet(sites: ["alpha"], behaviours: ["alpha": "hang"])
        for round in 0..<10 {
            let box = BuilderBox()
            let runner = Self.runner(fleet, parallel: 1, box: box)
            let task = Task { try await runner.run() }
            // Cancel at a different moment each round once the builder exists: while planning,
            // while waiting for the start gate, while the container starts, while it runs.
            for _ in 0..<100 where box.builder == nil { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(120 * round))
            task.cancel()
            do { _ = try await task.value } catch {
                // Cancelled before any build started: the runner reports it as an error of its own.
            }
            if let token = box.builder?.runToken {
                #expect(try Self.containers(run: token).isEmpty, "round \(round)")
            }
        }
        #expect(try runTool("docker", ["ps", "-aq", "--filter", "label=fleet-images.variant=alpha", "--filter", "label=fleet-images.fleet=test"]).isEmpty)
        #expect(Self.images(under: fleet.directory + "/build").isEmpty)
    }

    @Test("a missing image and an unreachable daemon stop the run before it starts (exit 69)")
    func unavailable() async throws {
        let fleet = try Fleet(sites: ["alpha"])
        var manifest = try String(contentsOfFile: fleet.fleet.manifestPath, encoding: .utf8)
        manifest = manifest.replacingOccurrences(of: Self.standin, with: "fleet-images-no-such-image:test")
        try manifest.write(toFile: fleet.fleet.manifestPath, atomically: true, encoding: .utf8)
        do {
            _ = try await Self.runner(fleet, parallel: 1, box: BuilderBox()).run()
            Issue.record("the run started without its builder image")
        } catch let error as BuildRunError {
            guard case .unavailable(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("fleet-images-no-such-image:test"))
        }

        var settings = PackerDockerBuilder.Settings()
        settings.dockerEnvironment = ["DOCKER_HOST": "unix:///nonexistent/docker.sock"]
        do {
            _ = try await Self.runner(fleet, parallel: 1, box: BuilderBox(), settings: settings).run()
            Issue.record("the run started without a daemon")
        } catch let error as BuildRunError {
            guard case .unavailable(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("the Docker daemon does not answer"))
            #expect(message.contains("start the Docker daemon"))
        }
    }

    @Test("base mode: one Packer run makes the shared base, inject specializes it per site, the base is cached")
    func baseMode() async throws {
        let demo = PackerDockerTemplateTests.packageRoot + "/base/demo-raspios-bookworm-arm64.img.xz"
        let sha = String(try String(contentsOfFile: demo + ".sha256", encoding: .utf8).prefix(64))
        let fleet = try Fleet(sites: ["alpha", "beta"], variables: ["fleet_images_test_image": "base"], mode: "base", base: (demo, sha))
        let box = BuilderBox()
        let summary = try await Self.runner(fleet, parallel: 2, box: box).run()
        #expect(summary.status == .succeeded, "\(summary.variants.map { "\($0.variant): \($0.error ?? "")" })")
        let cacheLog = try String(contentsOfFile: fleet.state + "/cache/packer/standin.log", encoding: .utf8)
        #expect(cacheLog.split(separator: "\n").count == 1, "one Packer run for the whole fleet")
        let bases = try FileManager.default.contentsOfDirectory(atPath: fleet.state + "/cache/packer-base").filter { $0.hasSuffix(".img") }
        #expect(bases.count == 1)
        for result in summary.variants {
            let image = try #require(result.image)
            let table = try runTool("sfdisk", ["--json", image])
            let json = try JSONSerialization.jsonObject(with: Data(table.utf8)) as! [String: Any]
            let partitions = (json["partitiontable"] as! [String: Any])["partitions"] as! [[String: Any]]
            let rootStart = (partitions[1]["start"] as! Int) * 512
            let claim = try runTool("debugfs", ["-R", "cat /etc/fleet-images/claim.pem.crt", "\(image)?offset=\(rootStart)"])
            #expect(claim == (try String(contentsOfFile: fleet.directory + "/certs/\(result.variant)/claim.pem.crt", encoding: .utf8)))
        }
        #expect(try Self.containers(run: try #require(box.builder).runToken).isEmpty)

        // A second run reuses the cached base: no new Packer run.
        let again = try await Self.runner(fleet, parallel: 2, force: true, box: BuilderBox()).run()
        #expect(again.count(.built) == 2)
        let cacheLogAfter = try String(contentsOfFile: fleet.state + "/cache/packer/standin.log", encoding: .utf8)
        #expect(cacheLogAfter.split(separator: "\n").count == 1)
    }
}
