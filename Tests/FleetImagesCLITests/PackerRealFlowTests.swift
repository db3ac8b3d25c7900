import Foundation
import Testing

// The packer-docker builder against the REAL-FLOW stand-in (scripts/make-packer-realflow.sh): a
// local Debian image whose `packer` does packer-builder-arm's reuse flow for real (loop device,
// mounts, provisioners in the chroot under the host's qemu, cleanup) on the bookworm test base of
// scripts/testbed. No registry image was run: this is what the stand-in reproduces, not
// packer-builder-arm itself. Everything checked is read from the images (debugfs, mtools), the
// kernel (/sys/block) and Docker, and one image is booted.

extension CLITests {
    @Suite(.serialized,
           .enabled(if: TestBed.enabled && geteuid() == 0 && ProcessInfo.processInfo.environment["FLEET_IMAGES_DOCKER_TESTS"] == "1",
                    "needs the test bases (FLEET_IMAGES_BOOT_TESTS=1), root and Docker (FLEET_IMAGES_DOCKER_TESTS=1); scripts/test.sh sets them up"))
    struct PackerRealFlow {
        static let image = "fleet-images-packer-realflow:test"
        /// What lets a container attach loop devices (and their partitions, major 259 when the loop
        /// driver has max_part=0), mount them and use FUSE here, short of --privileged.
        static let dockerArgs = ["--cap-add", "SYS_ADMIN", "--device-cgroup-rule", "b 7:* rmw", "--device-cgroup-rule", "b 259:* rmw",
                                 "--device-cgroup-rule", "c 10:237 rmw", "--device-cgroup-rule", "c 10:229 rmw", "-v", "/dev:/dev"]
        static let rootOffset = 532480 * 512
        static let bootOffset = 8192 * 512

        /// A bookworm test-base fleet built by packer-docker with the example's template.
        static func fleet(_ label: String, sites: Int, mode: String = "per-variant", setOS: String? = nil) throws -> BootFleet {
            try tool(CLILocation.repository + "/scripts/make-packer-realflow.sh", [image])
            let fleet = try BootFleet("packer-\(label)", suite: "bookworm", hostname: "{fleet}-{site}", firstBoot: .demoProvision, sites: sites) { manifest in
                manifest["builder"] = ["type": "packer-docker", "image": image, "template": "variants/common/raspios-lite.json",
                                       "docker_args": dockerArgs, "mode": mode] as [String: Any]
            }
            let directory = fleet.fleet.directory
            try tool("cp", [CLILocation.repository + "/examples/raspios-greengrass/variants/common/raspios-lite.json", directory + "/variants/common/"])
            if let setOS { try write(setOS, to: directory + "/variants/common/set_os.sh", mode: 0o755) }
            return fleet
        }

        static func debugfs(_ image: String, _ request: String) throws -> String {
            try tool("debugfs", ["-R", request, "\(image)?offset=\(rootOffset)"])
        }

        static func fat(_ image: String, _ name: String) throws -> String {
            try tool("mtype", ["-i", "\(image)@@\(bootOffset)", "::/" + name])
        }

        /// The build logs of the last run, by variant (or "base").
        static func logs(_ fleet: BootFleet) throws -> [String: String] {
            let root = fleet.fleet.state + "/logs"
            let runs = try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix("run-") }.sorted {
                (Int($0.dropFirst(4)) ?? 0) < (Int($1.dropFirst(4)) ?? 0)
            }
            guard let last = runs.last else { return [:] }
            var logs: [String: String] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: root + "/" + last) where name.hasSuffix(".log") {
                logs[String(name.dropLast(4))] = try String(contentsOfFile: root + "/" + last + "/" + name, encoding: .utf8)
            }
            return logs
        }

        /// The loop devices the stand-in attached (its own "attached /dev/loopN" lines); each must
        /// be gone from the kernel.
        static func expectDetached(_ log: String, _ label: String) {
            let lines = log.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let attached = lines.filter { $0.hasPrefix("attached /dev/loop") }.map { String($0.dropFirst("attached ".count)) }
            #expect(!attached.isEmpty, "\(label): the stand-in attached no loop device:\n\(log.suffix(3000))")
            for device in attached {
                let backing = "/sys/block/\((device as NSString).lastPathComponent)/loop/backing_file"
                #expect(!FileManager.default.fileExists(atPath: backing), "\(label): \(device) is still attached")
            }
        }

        /// Two sites built at once (two containers, two loop devices, two chroots under qemu): each
        /// image holds its own claim and the manifest's owners and modes, set_os.sh ran inside the
        /// image, nothing is left attached; and a card flashed with one comes up as a device.
        @Test func twoVariantsAtOnceThenTheDeviceBoots() throws {
            let fleet = try Self.fleet("two", sites: 2)
            defer { fleet.remove() }
            let outcome = try fleet.fleet.cli(["build", "--parallel", "2"], timeout: 1800)
            #expect(outcome.exited && outcome.status == 0, "\(outcome)")
            let variants = try fleet.fleet.variantIDs()
            #expect(variants.count == 2)
            let logs = try Self.logs(fleet)
            for variant in variants {
                let image = fleet.fleet.output + "/\(variant)/latest/\(variant).img"
                let certificate = try String(contentsOfFile: fleet.fleet.directory + "/certs/\(variant)/claim.pem.crt", encoding: .utf8)
                #expect(try Self.debugfs(image, "cat /etc/fleet-images/claim.pem.crt") == certificate, "\(variant): not its own claim")
                let key = try Self.debugfs(image, "stat /etc/fleet-images/claim.private.pem.key")
                #expect(key.contains("Mode:  0600") && key.contains("User:     0"), "\(variant): \(key.prefix(300))")
                #expect(try Self.debugfs(image, "cat /etc/hostname").trimmingCharacters(in: .whitespacesAndNewlines) == "boot-\(variant)")
                // set_os.sh ran in the chroot (an arm64 bash, through the host's binfmt entry).
                #expect(try Self.fat(image, "cmdline.txt").contains("zswap.enabled=1"))
                #expect(try Self.fat(image, "userconf.txt").hasPrefix("fleet:$y$"))
                let log = try #require(logs[variant], "no log for \(variant): \(logs.keys.sorted())")
                #expect(log.contains("Provisioning with shell script: scripts/set_os.sh"))
                #expect(log.contains("-e SETUP_QEMU=false"))
                Self.expectDetached(log, variant)
                let verify = try tool("openssl", ["dgst", "-sha256", "-verify", fleet.fleet.directory + "/keys/demo-signing.pub.pem",
                                                  "-signature", image + ".sig", image])
                #expect(verify.contains("Verified OK"))
            }
            #expect(try tool("docker", ["ps", "-aq", "--filter", "label=fleet-images.fleet=boot"]).isEmpty)

            // The image packer-docker made works as a device, read from inside the booted guest.
            let report = try fleet.boot(fleet.fleet.output + "/zrh-lab/latest/zrh-lab.img", copy: "packer", serial: "00000000c0ffee07")
            #expect(report.value("hostname") == "boot-zrh-lab", "\(report)")
            try fleet.expectCommonDevice(report, format: .userconf)
            fleet.expectEnrolmentWaitsForNetwork(report)
        }

        /// A build stopped at its timeout while a provisioner runs: Packer's cleanup (on SIGTERM,
        /// within the stop grace) unmounts and detaches; no loop device, mount or container is left.
        @Test func timeoutMidProvisioningLeavesNothingAttached() throws {
            let fleet = try Self.fleet("timeout", sites: 1, setOS: "#!/bin/bash\necho 'set_os: hanging'\nsleep 900\n")
            defer { fleet.remove() }
            let outcome = try fleet.fleet.cli(["build", "--timeout", "90s"], timeout: 600)
            #expect(outcome.exited && outcome.status == 1, "\(outcome)")
            let log = try #require(try Self.logs(fleet)["zrh-lab"])
            #expect(log.contains("set_os: hanging"), "the provisioner never ran:\n\(log.suffix(3000))")
            #expect(log.contains("timed out after 90 s"))
            #expect(log.contains("build was cancelled"), "Packer's cleanup did not run:\n\(log.suffix(3000))")
            #expect(log.contains("unmounting"))
            Self.expectDetached(log, "zrh-lab")
            #expect(try tool("docker", ["ps", "-aq", "--filter", "label=fleet-images.fleet=boot"]).isEmpty)
            let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            #expect(!mounts.contains(fleet.fleet.directory), "a mount of the fleet is left: \(mounts)")
            #expect(!FileManager.default.fileExists(atPath: fleet.fleet.output + "/zrh-lab/latest"))
        }

        /// An operator who is not root (as contrib/fleet-images.service runs it, with the docker
        /// group): the root-owned image the container made is handed over, signed and placed; the
        /// loop device is gone.
        @Test func nonRootOperator() throws {
            let fleet = try Self.fleet("nonroot", sites: 1)
            defer { fleet.remove() }
            let directory = fleet.fleet.directory
            let cli = directory + "/bin/fleet-images"
            try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
            try tool("cp", [try CLILocation.executable(), cli])
            try FileManager.default.createDirectory(atPath: directory + "/home", withIntermediateDirectories: true)
            try tool("chown", ["-R", "65534:65534", directory])
            chmod(directory, 0o755)
            var socket = stat()
            try #require(stat("/var/run/docker.sock", &socket) == 0, "no /var/run/docker.sock")
            let outcome = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--groups=\(socket.st_gid)", "--", cli, "build"],
                                  in: directory, environment: ["HOME": directory + "/home", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"],
                                  timeout: 1200)
            #expect(outcome.exited && outcome.status == 0, "\(outcome)")
            let image = fleet.fleet.output + "/zrh-lab/latest/zrh-lab.img"
            var info = stat()
            #expect(stat(image, &info) == 0 && info.st_uid == 65534 && info.st_mode & 0o777 == 0o640, "owner \(info.st_uid), mode \(String(info.st_mode & 0o777, radix: 8))")
            let verify = try tool("openssl", ["dgst", "-sha256", "-verify", directory + "/keys/demo-signing.pub.pem", "-signature", image + ".sig", image])
            #expect(verify.contains("Verified OK"))
            let log = try #require(try Self.logs(fleet)["zrh-lab"])
            #expect(log.contains("belongs to uid 0, not to this user (65534)"), "\(log.suffix(2000))")
            Self.expectDetached(log, "zrh-lab")
            #expect(try Self.fat(image, "cmdline.txt").contains("zswap.enabled=1"))
            #expect(try tool("docker", ["ps", "-aq", "--filter", "label=fleet-images.fleet=boot"]).isEmpty)
        }

        /// Base mode: one Packer run (set_os.sh in the chroot) makes the shared base; the inject
        /// builder writes each site's files into a copy.
        @Test func baseModeOnePackerRun() throws {
            let fleet = try Self.fleet("base", sites: 2, mode: "base")
            defer { fleet.remove() }
            let outcome = try fleet.fleet.cli(["build", "--parallel", "2"], timeout: 1800)
            #expect(outcome.exited && outcome.status == 0, "\(outcome)")
            let bases = try FileManager.default.contentsOfDirectory(atPath: fleet.fleet.state + "/cache/packer-base")
            #expect(bases.filter { $0.hasSuffix(".img") }.count == 1, "\(bases)")
            let baseLog = try #require(bases.first { $0.hasSuffix(".log") }.map { fleet.fleet.state + "/cache/packer-base/" + $0 })
            let log = try String(contentsOfFile: baseLog, encoding: .utf8)
            #expect(log.components(separatedBy: "docker start --attach").count == 2, "one Packer run")
            Self.expectDetached(log, "base")
            for variant in try fleet.fleet.variantIDs() {
                let image = fleet.fleet.output + "/\(variant)/latest/\(variant).img"
                #expect(try Self.fat(image, "cmdline.txt").contains("zswap.enabled=1"), "\(variant): the base's set_os.sh change is missing")
                let certificate = try String(contentsOfFile: fleet.fleet.directory + "/certs/\(variant)/claim.pem.crt", encoding: .utf8)
                #expect(try Self.debugfs(image, "cat /etc/fleet-images/claim.pem.crt") == certificate)
            }
        }
    }
}
