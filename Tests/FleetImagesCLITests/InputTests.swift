import Foundation
import Testing

extension CLITests {
    @Suite struct Inputs {
        /// 8a. Several mistakes: all reported with their JSON paths, exit 2, nothing written.
        @Test func badManifestReportsEveryProblemAndWritesNothing() throws {
            let fleet = try DemoFleet("bad-input") { manifest in
                manifest["fleet"] = "Demo Fleet"
                manifest["paralel"] = 4
                manifest["output"] = ["directory": "../outside"]
                var sites = manifest["sites"] as! [[String: Any]]
                sites[0]["region"] = "EU_CENTRAL"
                var wifi = sites[1]["wifi"] as! [String: Any]
                wifi["country"] = "Switzerland"
                sites[1]["wifi"] = wifi
                var claim = sites[2]["claim"] as! [String: Any]
                claim["certificate"] = "certs/nowhere/claim.pem.crt"
                sites[2]["claim"] = claim
                manifest["sites"] = sites
            }
            defer { fleet.remove() }
            let shapePaths = ["paralel", "fleet", "output.directory", "sites[0].region", "sites[1].wifi.country"]
            for command in [["validate"], ["plan"], ["plan", "--json"], ["build"], ["build", "--dry-run"]] {
                let outcome = try fleet.cli(command)
                #expect(outcome.exited && outcome.status == 2, "fleet-images \(command.joined(separator: " ")): \(outcome)")
                for path in shapePaths {
                    #expect(outcome.stderr.contains("error: \(path):"), "\(command): \(path) is not reported:\n\(outcome.stderr)")
                }
                // A missing file is a problem too, and "every problem at once" includes it.
                #expect(outcome.stderr.contains("sites[2].claim.certificate"), "\(command): the missing certificate is not reported with the other problems:\n\(outcome.stderr)")
            }
            for path in [fleet.state, fleet.directory + "/build", fleet.directory + "/../outside"] {
                #expect(!FileManager.default.fileExists(atPath: path), "\(path) was created by a rejected manifest")
            }
        }

        /// 8b. --parallel out of range is a usage error: exit 2 (the README's table, not ArgumentParser's 64) with the reason.
        @Test(arguments: ["0", "65"])
        func parallelOutOfRangeIsAUsageError(value: String) throws {
            let fleet = try DemoFleet("parallel-\(value)", edit: keepSites(1))
            defer { fleet.remove() }
            let outcome = try fleet.cli(["build", "--parallel", value])
            #expect(outcome.exited && outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.contains("--parallel must be 1 to 64 (got \(value))"), "\(outcome.stderr)")
            #expect(outcome.stderr.contains("Usage: fleet-images build"), "the usage text is lost: \(outcome.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fleet.state) && !FileManager.default.fileExists(atPath: fleet.output))
        }

        /// 8c. debugfs missing: 69 and a message naming it; nothing built. fleet-images looks in PATH
        /// and then in /usr/sbin and /sbin (where Debian puts e2fsprogs), so a PATH without debugfs is not
        /// enough: the child also runs in a private mount namespace where /usr/sbin/debugfs is an empty,
        /// non-executable file.
        @Test func missingToolIsUnavailable() throws {
            let fleet = try DemoFleet("no-debugfs", edit: keepSites(1))
            defer { fleet.remove() }
            let bin = fleet.directory + "/bin-without-debugfs"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            let fm = FileManager.default
            for folder in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"] {
                for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name != "debugfs" {
                    let link = bin + "/" + name
                    if fm.isExecutableFile(atPath: folder + "/" + name), !fm.fileExists(atPath: link) {
                        try fm.createSymbolicLink(atPath: link, withDestinationPath: folder + "/" + name)
                    }
                }
            }
            #expect(fm.fileExists(atPath: bin + "/mcopy") && fm.fileExists(atPath: bin + "/e2fsck") && !fm.fileExists(atPath: bin + "/debugfs"))
            let empty = fleet.directory + "/not-debugfs"
            try write("", to: empty, mode: 0o644)
            var environment = ProcessInfo.processInfo.environment
            environment["PATH"] = bin
            let probe = try run("unshare", ["-m", "true"], environment: environment)
            guard probe.status == 0 else {
                print("SKIPPED missingToolIsUnavailable: no private mount namespace here (unshare -m: \(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
                return
            }
            let outcome = try run("unshare", ["-m", "sh", "-c", "mount --bind \"$0\" /usr/sbin/debugfs && exec \"$@\"",
                                              empty, fleet.executable, "build"], in: fleet.directory, environment: environment)
            #expect(outcome.exited && outcome.status == 69, "\(outcome)")
            #expect(outcome.stderr.contains("debugfs") && outcome.stderr.contains("e2fsprogs"), "the message does not name debugfs and its package: \(outcome.stderr)")
            #expect(!fm.fileExists(atPath: fleet.output), "output written without debugfs")
            #expect(fm.isExecutableFile(atPath: "/usr/sbin/debugfs"), "the bind mount leaked out of the namespace")
        }
    }
}
