import Foundation
import Testing

/// Six sites × two boards: twelve variants, enough for a run to be cut in the middle.
func twelveVariants(hostname: String? = nil) -> (inout [String: Any]) -> Void {
    { manifest in
        manifest["matrix"] = ["board": ["pi4", "pi5"]]
        if let hostname, var defaults = manifest["defaults"] as? [String: Any] {
            defaults["hostname"] = hostname
            manifest["defaults"] = defaults
        }
    }
}

/// `sqlite3 -batch DB QUERY`, trimmed.
func sqlite(_ database: String, _ query: String) throws -> String {
    try tool("sqlite3", ["-batch", database, query]).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Entries of the state's work folder (none when it does not exist).
func workLeftovers(_ fleet: DemoFleet) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: fleet.state + "/work")) ?? []
}

extension CLITests {
    @Suite struct Faults {
        /// 4. One site's build fails; the others finish and are placed.
        @Test func oneSiteFailsTheOthersFinish() throws {
            // /etc/os-release is a regular file in the base image: writing /etc/os-release/x must fail,
            // and only at build time (the manifest itself is valid).
            let fleet = try DemoFleet("one-fails") { manifest in
                keepSites(3)(&manifest)
                var sites = manifest["sites"] as! [[String: Any]]
                sites[1]["files"] = [["source": "variants/common/config.yaml", "destination": "/etc/os-release/x"]]
                manifest["sites"] = sites
            }
            defer { fleet.remove() }
            let validate = try fleet.cli(["validate"])
            #expect(validate.status == 0, "the manifest is meant to be valid: \(validate)")

            let outcome = try fleet.cli(["build", "--json"])
            #expect(outcome.exited && outcome.status == 1, "\(outcome)")
            let summary = statuses(try parseJSON(outcome.stdout))
            #expect(ids(summary, "built") == ["dub-depot", "zrh-lab"])
            #expect(ids(summary, "failed") == ["gva-plant"])
            #expect(outcome.stderr.contains("gva-plant: FAILED"), "\(outcome.stderr)")

            let audit = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem")
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            #expect(audit.folders.keys.sorted() == ["dub-depot", "zrh-lab"])
            #expect(OutputCheck.entries(fleet.output, "gva-plant").isEmpty, "gva-plant has output: \(OutputCheck.entries(fleet.output, "gva-plant"))")
            #expect(!FileManager.default.fileExists(atPath: fleet.output + "/gva-plant/latest"))
            #expect(workLeftovers(fleet).isEmpty, "work folders left (they may hold keys): \(workLeftovers(fleet))")

            let failed = try fleet.json(["ls", "--status", "failed"])["builds"] as? [[String: Any]] ?? []
            #expect(failed.compactMap { $0["variant"] as? String } == ["gva-plant"], "ls --status failed: \(failed)")
            let lsText = try fleet.cli(["ls", "--status", "failed"]).stdout
            #expect(lsText.contains("gva-plant") && lsText.contains("failed") && !lsText.contains("zrh-lab"), "\(lsText)")
            let runs = try fleet.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.first?["status"] as? String == "failed", "runs: \(runs)")
            #expect((runs.first?["counts"] as? [String: Any])?["failed"] as? Int == 1)
            #expect(try fleet.cli(["runs"]).stdout.contains("failed"))
            #expect(try sqlite(fleet.database, "SELECT status FROM build WHERE variantID = 'gva-plant'") == "failed")

            let log = failed.first?["log"] as? String ?? ""
            let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(!log.isEmpty && logText.contains("/etc/os-release"), "log \(log): \(logText)")
            #expect(log.hasPrefix(fleet.state + "/logs/"), "the log is outside the state folder: \(log)")
        }

        /// 5. SIGTERM / SIGINT after the first image: a clean stop, then a rerun that builds only the rest.
        @Test(arguments: [(SIGTERM, Int32(143)), (SIGINT, Int32(130))])
        func signalStopsTheRunCleanly(signal: Int32, expectedStatus: Int32) throws {
            let fleet = try DemoFleet("signal-\(signal)", edit: twelveVariants())
            defer { fleet.remove() }
            let all = try fleet.variantIDs()
            #expect(all.count == 12)
            let child = try fleet.start(["build", "--parallel", "1"])
            let (first, inFlight) = try waitForFirstImageAndNextCopy(child)
            child.send(signal)
            let outcome = try child.finish()
            #expect(outcome.exited && outcome.status == expectedStatus, "\(outcome)")

            let audit = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem")
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            let builtBefore = audit.folders.keys.sorted()
            #expect(builtBefore.contains(first))
            #expect(!builtBefore.contains(inFlight) && OutputCheck.entries(fleet.output, inFlight).isEmpty, "\(inFlight) was cut mid-build but has output")
            let interrupted = try fleet.json(["ls", "--status", "interrupted"])["builds"] as? [[String: Any]] ?? []
            #expect(interrupted.compactMap { $0["variant"] as? String } == [inFlight], "ls --status interrupted: \(interrupted)")
            #expect(builtBefore.count < all.count, "the run was not cut: \(builtBefore.count) built")
            #expect(workLeftovers(fleet).isEmpty, "work folders left: \(workLeftovers(fleet))")
            let runs = try fleet.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.first?["status"] as? String == "interrupted", "runs: \(runs)")
            #expect(try sqlite(fleet.database, "SELECT count(*) FROM build WHERE status = 'running'") == "0")

            let rerun = try fleet.cli(["build", "--parallel", "2", "--json"])
            #expect(rerun.exited && rerun.status == 0, "\(rerun)")
            let summary = statuses(try parseJSON(rerun.stdout))
            #expect(ids(summary, "built") == Set(all).subtracting(builtBefore).sorted())
            #expect(ids(summary, "up-to-date") == builtBefore)
            let after = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem", verify: false)
            #expect(after.problems.isEmpty && after.folders.count == all.count, "\(after.problems)")
        }

        /// 6. kill -9 after the first image: the next run recovers the records and the work folder.
        @Test func killedRunIsRecoveredByTheNext() throws {
            let fleet = try DemoFleet("kill9", edit: twelveVariants())
            defer { fleet.remove() }
            let all = try fleet.variantIDs()
            let child = try fleet.start(["build", "--parallel", "1"])
            let (_, inFlight) = try waitForFirstImageAndNextCopy(child)
            child.send(SIGKILL)
            let outcome = try child.finish()
            #expect(!outcome.exited && outcome.status == SIGKILL, "\(outcome)")
            #expect(try sqlite(fleet.database, "SELECT status FROM run ORDER BY id LIMIT 1") == "running", "kill -9 should leave the run row running")

            let before = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem")
            #expect(before.problems.isEmpty, "\(before.problems)")
            let builtBefore = before.folders.keys.sorted()
            #expect(!builtBefore.isEmpty && builtBefore.count < all.count)
            let leftovers = workLeftovers(fleet)
            #expect(!leftovers.isEmpty, "\(inFlight) was killed mid-build: its work folder should still be there")

            let rerun = try fleet.cli(["build", "--parallel", "2", "--json"])
            #expect(rerun.exited && rerun.status == 0, "\(rerun)")
            #expect(rerun.stderr.contains("removed \(leftovers.count) work folder"), "leftovers \(leftovers) not reported: \(rerun.stderr)")
            #expect(try sqlite(fleet.database, "SELECT status FROM build WHERE variantID = '\(inFlight)' ORDER BY id LIMIT 1") == "interrupted")
            #expect(workLeftovers(fleet).isEmpty, "work folders left: \(workLeftovers(fleet))")
            let summary = statuses(try parseJSON(rerun.stdout))
            #expect(ids(summary, "built") == Set(all).subtracting(builtBefore).sorted())
            #expect(ids(summary, "up-to-date") == builtBefore)
            let runs = try fleet.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.map { $0["status"] as? String ?? "?" } == ["succeeded", "interrupted"], "runs: \(runs)")
            #expect(try sqlite(fleet.database, "SELECT count(*) FROM build WHERE status = 'running'") == "0")
            let after = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem", verify: false)
            #expect(after.problems.isEmpty && after.folders.count == all.count, "\(after.problems)")
        }

        /// 7. The run lock: held by util-linux flock → 75 at once; --wait-lock waits; two builds never overlap.
        @Test func theLockKeepsRunsApart() throws {
            let fleet = try DemoFleet("lock", edit: keepSites(1))
            defer { fleet.remove() }
            try FileManager.default.createDirectory(atPath: fleet.state, withIntermediateDirectories: true)
            let lockPath = fleet.state + "/lock"
            let holder = try RunningProcess("flock", [lockPath, "sleep", "120"])
            defer { release(holder) }
            try #require(waitUntilLocked(lockPath), "flock did not take \(lockPath)")

            let refused = try fleet.cli(["build"])
            #expect(refused.exited && refused.status == 75, "\(refused)")
            #expect(refused.stderr.contains(lockPath), "the message does not name the lock file: \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fleet.output), "a refused run wrote output")

            let waiting = try fleet.start(["build", "--wait-lock", "1m"])
            Thread.sleep(forTimeInterval: 1) // let it reach the lock; correctness does not depend on it
            release(holder)
            let waited = try waiting.finish()
            #expect(waited.exited && waited.status == 0, "\(waited)")
            #expect(FileManager.default.fileExists(atPath: fleet.output + "/zrh-lab/latest/zrh-lab.img"))

            // Two builds at once: the second exits 75 naming the first's pid, unless told to wait.
            let a = try fleet.start(["build", "--force"])
            let started = a.waitForStderrLine { $0.contains("zrh-lab: started") }
            #expect(started != nil, "\(a.stderrSoFar)")
            let b = try fleet.cli(["build"])
            let aOutcome = try a.finish()
            #expect(aOutcome.status == 0, "\(aOutcome)")
            if started != nil {
                #expect(b.status == 75, "\(b)")
                #expect(b.stderr.contains("pid \(a.pid)"), "the holder is not named: \(b.stderr)")
            }
            let c = try fleet.start(["build", "--force", "--wait-lock", "1m"])
            let d = try fleet.start(["build", "--force", "--wait-lock", "1m"])
            let cOutcome = try c.finish(), dOutcome = try d.finish()
            #expect(cOutcome.status == 0 && dOutcome.status == 0, "\(cOutcome)\n\(dOutcome)")
            let audit = try OutputCheck.audit(fleet.output, publicKey: fleet.directory + "/keys/demo-signing.pub.pem")
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            #expect(audit.folders["zrh-lab"]?.count == 4, "expected 4 complete images: \(audit.folders)")
            let runs = try fleet.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.count == 4 && runs.allSatisfy { $0["status"] as? String == "succeeded" }, "runs: \(runs)")
        }

        /// 9. The output folder on a full file system: the variant fails saying so; `latest` stays intact.
        @Test func fullOutputFileSystemKeepsThePreviousImage() throws {
            let fleet = try DemoFleet("full-disk") { manifest in
                keepSites(1)(&manifest)
                manifest["output"] = ["directory": "out"]
            }
            defer { fleet.remove() }
            let mountPoint = fleet.directory + "/out"
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            let mount = try run("mount", ["-t", "tmpfs", "-o", "size=600m", "tmpfs", mountPoint])
            guard mount.status == 0 else {
                print("SKIPPED fullOutputFileSystemKeepsThePreviousImage: cannot mount a tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
                return
            }
            defer { _ = try? run("umount", ["-l", mountPoint]) }
            let publicKey = fleet.directory + "/keys/demo-signing.pub.pem"

            let first = try fleet.cli(["build"])
            #expect(first.status == 0, "\(first)")
            let latest = try FileManager.default.destinationOfSymbolicLink(atPath: mountPoint + "/zrh-lab/latest")
            // Placed across file systems (work/ is on the disk, out/ on tmpfs): same modes as a rename.
            let modes = try tool("stat", ["-c", "%a %n"] + OutputCheck.sidecars.map { mountPoint + "/zrh-lab/\(latest)/zrh-lab" + $0 })
            for line in modes.split(separator: "\n") {
                #expect(line.hasPrefix("640 "), "output files are 0640 (group-readable, README): \(line)")
            }

            // Fill the tmpfs.
            var info = statvfs()
            #expect(statvfs(mountPoint, &info) == 0)
            let free = Int(info.f_bavail) * Int(info.f_frsize)
            try tool("fallocate", ["-l", "\(max(free - 1_048_576, 4096))", mountPoint + "/filler"])
            _ = try run("dd", ["if=/dev/zero", "of=\(mountPoint)/filler2", "bs=4096"])

            let forced = try fleet.cli(["build", "--force", "--json"])
            #expect(forced.exited && forced.status == 1, "\(forced)")
            let entry = (try parseJSON(forced.stdout)["variants"] as? [[String: Any]])?.first
            #expect(entry?["status"] as? String == "failed")
            let error = entry?["error"] as? String ?? ""
            #expect(error.contains("No space left on device"), "the error does not say the disk is full: \(error)")

            try FileManager.default.removeItem(atPath: mountPoint + "/filler")
            try FileManager.default.removeItem(atPath: mountPoint + "/filler2")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: mountPoint + "/zrh-lab/latest") == latest)
            let audit = try OutputCheck.audit(mountPoint, publicKey: publicKey)
            #expect(audit.problems.isEmpty, "after the failed build: \(audit.problems)")
            #expect(audit.folders["zrh-lab"]?.map(\.path) == [mountPoint + "/zrh-lab/" + latest])
            #expect(workLeftovers(fleet).isEmpty, "work folders left: \(workLeftovers(fleet))")
        }

        /// 10. fleet.json rewritten during the run: the run keeps the version it read.
        @Test func manifestEditedDuringTheRunIsIgnored() throws {
            let fleet = try DemoFleet("edited", edit: twelveVariants(hostname: "orig-{site}-{board}"))
            defer { fleet.remove() }
            let all = try fleet.variantIDs()
            let originalDigest = try tool("sha256sum", [fleet.manifestPath]).split(separator: " ").first.map(String.init)
            let child = try fleet.start(["build", "--parallel", "1"])
            let first = child.waitForStderrLine { builtVariant($0) != nil }
            try #require(first != nil, "no `built` line: \(child.stderrSoFar)")

            var manifest = try fleet.readManifest()
            var defaults = manifest["defaults"] as! [String: Any]
            defaults["hostname"] = "edited-{site}-{board}"
            manifest["defaults"] = defaults
            manifest["sites"] = (manifest["sites"] as! [[String: Any]]).map { site in
                var site = site
                site["hostname"] = "edited-{site}-{board}"
                return site
            }
            try fleet.writeManifest(manifest)

            let outcome = try child.finish()
            #expect(outcome.exited && outcome.status == 0, "\(outcome)")
            for variant in all {
                let image = fleet.output + "/\(variant)/latest/\(variant).img"
                let board = variant.hasSuffix("-pi4") ? "pi4" : "pi5"
                let site = String(variant.dropLast(4))
                let hostname = try debugfs(image, "cat /etc/hostname").trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(hostname == "orig-\(site)-\(board)", "\(variant): /etc/hostname is \(hostname)")
            }
            #expect(try sqlite(fleet.database, "SELECT manifestSHA256 FROM run ORDER BY id LIMIT 1") == originalDigest)
            let shown = try fleet.json(["show", all.last!])["run"] as? [String: Any]
            #expect((shown?["manifest"] as? [String: Any])?["sha256"] as? String == originalDigest)
        }
    }
}

/// Waits for the first `built` line, then for the next variant to have copied its base image
/// (so a build is in flight, with a work folder). Returns both variant ids.
func waitForFirstImageAndNextCopy(_ child: RunningProcess) throws -> (built: String, inFlight: String) {
    let line = child.waitForStderrLine { builtVariant($0) != nil }
    guard let line, let built = builtVariant(line) else {
        throw CLITestFailure("no `built` line before the deadline or the end of the run:\n\(child.stderrSoFar)")
    }
    let copying = child.waitForStderrLine { $0.contains(": copied the base image") && !$0.contains(" \(built): ") }
    guard let copying, let inFlight = copying.split(separator: " ").dropFirst().first.map({ String($0.dropLast()) }) else {
        throw CLITestFailure("no second variant started after \(built):\n\(child.stderrSoFar)")
    }
    return (built, inFlight)
}

/// True once another process holds an exclusive flock on `path` (probed without blocking).
func waitUntilLocked(_ path: String, timeout: TimeInterval = 30) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            let free = flock(fd, LOCK_EX | LOCK_NB) == 0
            if free { flock(fd, LOCK_UN) }
            close(fd)
            if !free { return true }
        }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return false
}

/// Ends a `flock LOCK sleep N` holder: its sleep child first (flock then exits and the lock is free).
func release(_ holder: RunningProcess) {
    guard holder.process.isRunning else { return }
    let pid = holder.pid
    if let children = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) {
        for child in children.split(separator: " ").compactMap({ Int32($0) }) { kill(child, SIGKILL) }
    }
    kill(pid, SIGKILL)
    _ = try? holder.finish(timeout: 10)
}
