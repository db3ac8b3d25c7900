import Foundation
import Testing

// Issue 11, the records side: each test makes the fault happen for real (a tmpfs that fills, a
// process killed by strace at a chosen syscall or by a tool it runs, a read-only mount, a damaged
// file) and then reads the database, `ls`, `runs`, `show` and the output folder with independent
// tools (sqlite3, readlink, stat, find). Mounting needs root: without it a test says SKIPPED and
// returns (CI runs as root).

/// Mounts a tmpfs of `size` (e.g. "16m") on `path` (created); false, with a SKIPPED line, when this
/// process may not mount.
func mountTmpfs(_ path: String, size: String, test: String) throws -> Bool {
    guard getuid() == 0 else {
        print("SKIPPED \(test): needs root to mount a tmpfs")
        return false
    }
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let mount = try run("mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0750", "tmpfs", path])
    guard mount.status == 0 else {
        print("SKIPPED \(test): cannot mount a tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
        return false
    }
    return true
}

func unmount(_ path: String) { _ = try? run("umount", ["-l", path]) }

/// Fills the file system holding `folder` until at most `leave` bytes are free.
func fill(_ folder: String, leaving leave: Int) throws {
    var info = statvfs()
    guard statvfs(folder, &info) == 0 else { throw CLITestFailure("statvfs \(folder): \(String(cString: strerror(errno)))") }
    let free = Int(info.f_bavail) * Int(info.f_frsize)
    if free > leave + 4096 { try tool("fallocate", ["-l", "\(free - leave)", folder + "/filler"]) }
}

/// `fleet-images ARGS` under strace, killed with SIGKILL when it first makes one of `syscalls`
/// (only those touching `path`, when given): a kill at exactly that moment, not at a guessed time.
func runKilledAt(_ fleet: DemoFleet, syscalls: String, path: String? = nil, _ arguments: [String]) throws -> ProcessOutcome {
    var strace = ["-f", "-qq", "-o", "/dev/null", "-e", "trace=\(syscalls)", "-e", "inject=\(syscalls):signal=KILL"]
    if let path { strace += ["-P", path] }
    return try run("strace", strace + [fleet.executable] + arguments, in: fleet.directory)
}

/// True when strace can be used here (installed, and ptrace allowed); prints SKIPPED otherwise.
func straceWorks(_ test: String) throws -> Bool {
    guard let probe = try? run("strace", ["-f", "-qq", "-o", "/dev/null", "true"]), probe.status == 0 else {
        print("SKIPPED \(test): strace is missing or cannot trace here (scripts/install-deps.sh installs it)")
        return false
    }
    return true
}

/// The `<output>/<variant>/latest` link's text, by readlink(1).
func readlinkLatest(_ fleet: DemoFleet, _ variant: String) throws -> String {
    try tool("readlink", [fleet.output + "/\(variant)/latest"]).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Every `succeeded`/`up-to-date` row's artifact path, by sqlite3.
func recordedImages(_ database: String) throws -> [String] {
    try sqlite(database, "SELECT artifactPath FROM build WHERE status IN ('succeeded', 'up-to-date') ORDER BY id")
        .split(separator: "\n").map(String.init)
}

/// Problems: rows that say an image was delivered when there is no such file (checked with ls(1)).
func ghostRows(_ database: String) throws -> [String] {
    try recordedImages(database).filter { try run("ls", [$0]).status != 0 }
}

/// SHA-256 of a file by openssl, to show that a command did not change it.
func fileDigest(_ path: String) throws -> String {
    try tool("openssl", ["dgst", "-sha256", "-r", path]).split(separator: " ").first.map(String.init) ?? "?"
}

/// Replaces the demo site's Wi-Fi passphrase (a credential rotation: new inputs digest).
func rotatePassphrase(_ fleet: DemoFleet, to passphrase: String) throws {
    try write(passphrase + "\n", to: fleet.directory + "/certs/zrh-lab/wifi.psk", mode: 0o600)
}

extension CLITests {
    @Suite("Fault promises: records") struct RecordFaults {
        @Test("A variant whose image could not be placed is never recorded succeeded")
        func unplacedImageIsNeverSucceeded() throws {
            let test = "unplacedImageIsNeverSucceeded"
            let fleet = try DemoFleet("rec-unplaced") { manifest in
                keepSites(1)(&manifest)
                manifest["output"] = ["directory": "out"]
            }
            defer { fleet.remove() }
            let mountPoint = fleet.directory + "/out"
            guard try mountTmpfs(mountPoint, size: "8m", test: test) else { return }
            defer { unmount(mountPoint) }

            let first = try fleet.cli(["build"])
            try #require(first.status == 0, "\(first)")
            let placed = try readlinkLatest(fleet, "zrh-lab")
            try fill(mountPoint, leaving: 65536)
            _ = try run("dd", ["if=/dev/zero", "of=\(mountPoint)/filler2", "bs=4096"])

            let forced = try fleet.cli(["build", "--force", "--json"])
            #expect(forced.exited && forced.status == 1, "\(forced)")
            let entry = (try parseJSON(forced.stdout)["variants"] as? [[String: Any]])?.first
            #expect(entry?["status"] as? String == "failed")
            let error = entry?["error"] as? String ?? ""
            #expect(error.contains("No space left on device"), "\(error)")

            // The database: the forced build is failed, with the reason; the only success is the first.
            #expect(try sqlite(fleet.database, "SELECT status FROM build ORDER BY id DESC LIMIT 1") == "failed")
            let message1 = try sqlite(fleet.database, "SELECT errorMessage FROM build ORDER BY id DESC LIMIT 1")
            #expect(message1.contains("No space left on device"), "\(message1)")
            #expect(try sqlite(fleet.database, "SELECT count(*) FROM build WHERE status = 'succeeded'") == "1")
            #expect(try sqlite(fleet.database, "SELECT status FROM run ORDER BY id DESC LIMIT 1") == "failed")
            let ghosts = try ghostRows(fleet.database)
            #expect(ghosts.isEmpty, "rows with no image: \(ghosts)")
            // ls, ls --status failed, show: what a morning check reads.
            let failed = try fleet.json(["ls", "--status", "failed"])["builds"] as? [[String: Any]] ?? []
            #expect(failed.compactMap { $0["variant"] as? String } == ["zrh-lab"], "ls --status failed: \(failed)")
            let latest = try fleet.json(["ls"])["builds"] as? [[String: Any]] ?? []
            #expect(latest.first?["status"] as? String == "failed", "ls: \(latest)")
            let shown = try fleet.json(["show", "zrh-lab"])["build"] as? [String: Any]
            #expect(shown?["status"] as? String == "failed" && shown?["artifact"] is NSNull, "show: \(shown ?? [:])")
            let showText = try fleet.cli(["show", "zrh-lab"]).stdout
            #expect(!showText.contains("succeeded"), "\(showText)")
            // The output folder: `latest` still on the first image, which is still whole.
            #expect(try readlinkLatest(fleet, "zrh-lab") == placed)
            try FileManager.default.removeItem(atPath: mountPoint + "/filler")
            try? FileManager.default.removeItem(atPath: mountPoint + "/filler2")
            let audit = try OutputCheck.audit(mountPoint, publicKey: fleet.directory + "/keys/demo-signing.pub.pem")
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            #expect(audit.folders["zrh-lab"]?.map(\.path) == [mountPoint + "/zrh-lab/" + placed])
            #expect(workLeftovers(fleet).isEmpty, "work folders left: \(workLeftovers(fleet))")
        }

        @Test("latest is put back on the recorded build a run reuses, and the repair is reported")
        func latestIsRepairedToTheReusedBuild() throws {
            let fleet = try DemoFleet("rec-latest", edit: keepSites(1))
            defer { fleet.remove() }
            let original = try String(contentsOfFile: fleet.directory + "/certs/zrh-lab/wifi.psk", encoding: .utf8)
            try #require(try fleet.cli(["build"]).status == 0)
            let firstFolder = try readlinkLatest(fleet, "zrh-lab")
            // Rotate the passphrase, build, rotate it back: the first image is up to date again,
            // but `latest` is on the rotated one, which devices would be flashed with.
            try rotatePassphrase(fleet, to: "rotated-passphrase-2026")
            try #require(try fleet.cli(["build"]).status == 0)
            #expect(try readlinkLatest(fleet, "zrh-lab") != firstFolder)
            try write(original, to: fleet.directory + "/certs/zrh-lab/wifi.psk", mode: 0o600)

            let back = try fleet.cli(["build", "--json"])
            #expect(back.status == 0, "\(back)")
            #expect(statuses(try parseJSON(back.stdout)) == ["zrh-lab": "up-to-date"])
            #expect(back.stderr.contains("zrh-lab/latest pointed at") && back.stderr.contains("repaired"), "no repair reported: \(back.stderr)")
            #expect(try readlinkLatest(fleet, "zrh-lab") == firstFolder)
            let reused = try sqlite(fleet.database, "SELECT artifactPath FROM build WHERE status = 'up-to-date' ORDER BY id DESC LIMIT 1")
            #expect(reused == fleet.output + "/zrh-lab/" + firstFolder + "/zrh-lab.img")
            #expect(try tool("readlink", ["-f", fleet.output + "/zrh-lab/latest/zrh-lab.img"]).trimmingCharacters(in: .whitespacesAndNewlines) == reused)
            let again = try fleet.cli(["build"])
            #expect(again.status == 0 && !again.stderr.contains("repaired"), "a second repair: \(again)")
        }

        @Test("A run killed after placing an image but before flipping latest never leaves that build succeeded")
        func killBeforeLatestFlipIsSettled() throws {
            guard try straceWorks("killBeforeLatestFlipIsSettled") else { return }
            let fleet = try DemoFleet("rec-kill-latest", edit: keepSites(1))
            defer { fleet.remove() }
            try #require(try fleet.cli(["build"]).status == 0)
            let firstFolder = try readlinkLatest(fleet, "zrh-lab")
            try rotatePassphrase(fleet, to: "rotated-passphrase-2026")
            // symlink(2) is the first step of flipping `latest`: the image is placed by then.
            let killed = try runKilledAt(fleet, syscalls: "symlink,symlinkat", ["build"])
            #expect(!killed.stderr.contains("zrh-lab: built"), "the run was not cut before latest: \(killed)")
            #expect(OutputCheck.entries(fleet.output, "zrh-lab").count == 2, "the new image is not placed: \(OutputCheck.entries(fleet.output, "zrh-lab"))")
            #expect(try readlinkLatest(fleet, "zrh-lab") == firstFolder)
            #expect(try sqlite(fleet.database, "SELECT status FROM build ORDER BY id DESC LIMIT 1") == "running",
                    "the cut build must not be recorded succeeded before latest is on it")

            let next = try fleet.cli(["build", "--json"])
            #expect(next.status == 0, "\(next)")
            #expect(statuses(try parseJSON(next.stdout)) == ["zrh-lab": "built"], "the rotation was not built: \(next.stdout)")
            #expect(try sqlite(fleet.database, "SELECT status FROM build WHERE id = 2") == "interrupted")
            let message2 = try sqlite(fleet.database, "SELECT errorMessage FROM build WHERE id = 2")
            #expect(message2.contains("ended without finishing"), "\(message2)")
            let newest = try sqlite(fleet.database, "SELECT artifactPath FROM build WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1")
            #expect(try tool("readlink", ["-f", fleet.output + "/zrh-lab/latest/zrh-lab.img"]).trimmingCharacters(in: .whitespacesAndNewlines) == newest)
            #expect(try ghostRows(fleet.database).isEmpty)
            #expect(try sqlite(fleet.database, "SELECT count(*) FROM build WHERE status = 'running'") == "0")
        }

        @Test("A run killed before placing an image leaves no succeeded row, and the next start settles every row of it")
        func killBeforePlacementIsSettled() throws {
            guard try straceWorks("killBeforePlacementIsSettled") else { return }
            let fleet = try DemoFleet("rec-kill-place", edit: keepSites(1))
            defer { fleet.remove() }
            try #require(try fleet.cli(["build"]).status == 0)
            // Run 2's work folder is renamed into the output to place the image: kill at that rename.
            let work = fleet.state + "/work/run-2-zrh-lab"
            let killed = try runKilledAt(fleet, syscalls: "rename,renameat,renameat2", path: work, ["build", "--force"])
            #expect(!killed.exited, "not killed: \(killed)")
            #expect(OutputCheck.entries(fleet.output, "zrh-lab").count == 1, "something was placed: \(OutputCheck.entries(fleet.output, "zrh-lab"))")
            #expect(try sqlite(fleet.database, "SELECT status FROM build WHERE runID = 2") == "running",
                    "recorded before the image was placed")
            let ghosts = try ghostRows(fleet.database)
            #expect(ghosts.isEmpty, "rows with no image: \(ghosts)")
            // What an older fleet-images left in the same moment: the row already `succeeded`.
            _ = try sqlite(fleet.database, """
                UPDATE build SET status = 'succeeded', artifactPath = '\(fleet.output)/zrh-lab/20260101T000000Z-000000000000-b2/zrh-lab.img',
                artifactSize = 1, artifactSHA256 = '00' WHERE runID = 2
                """)

            let next = try fleet.cli(["build", "--json"])
            #expect(next.status == 0, "\(next)")
            #expect(next.stderr.contains("marked 1 run"), "\(next.stderr)")
            #expect(try sqlite(fleet.database, "SELECT status FROM run WHERE id = 2") == "interrupted")
            #expect(try sqlite(fleet.database, "SELECT status FROM build WHERE runID = 2") == "interrupted")
            let message3 = try sqlite(fleet.database, "SELECT errorMessage FROM build WHERE runID = 2")
            #expect(message3.contains("ended before this image was placed"), "\(message3)")
            #expect(try sqlite(fleet.database, "SELECT artifactPath IS NULL FROM build WHERE runID = 2") == "1")
            let ghostsAfter = try ghostRows(fleet.database)
            #expect(ghostsAfter.isEmpty, "rows with no image: \(ghostsAfter)")
            let all = try fleet.json(["ls", "--all"])["builds"] as? [[String: Any]] ?? []
            #expect(!all.contains { $0["run_id"] as? Int == 2 && $0["status"] as? String == "succeeded" }, "ls --all: \(all)")
            #expect(workLeftovers(fleet).isEmpty, "work folders left: \(workLeftovers(fleet))")
        }

        @Test("A full state disk ends the run with exit 1 and the reason, records it failed, and removes the work folder")
        func fullStateDiskFailsCleanly() throws {
            let test = "fullStateDiskFailsCleanly"
            let fleet = try DemoFleet("rec-full-state", edit: keepSites(1))
            defer { fleet.remove() }
            let state = fleet.directory + "/state"
            guard try mountTmpfs(state, size: "8m", test: test) else { return }
            defer { unmount(state) }
            let database = state + "/provenance.sqlite"
            let first = try fleet.cli(["build", "--state", state])
            try #require(first.status == 0, "\(first)")
            // Room for the records and a few log lines, not for a copy of the image.
            try fill(state, leaving: 160 * 1024)

            let full = try fleet.cli(["build", "--state", state, "--force"])
            #expect(full.exited && full.status == 1, "a crash or a wrong code on a full state disk: \(full)")
            #expect(full.stderr.contains("No space left on device"), "\(full.stderr)")
            // The records' WAL outgrows what the filler left: the end of the run is written into the reserve's room.
            #expect(full.stderr.contains("space reserve was used to finish the records"), "\(full.stderr)")
            #expect(!FileManager.default.fileExists(atPath: state + "/space-reserve"))
            #expect(try sqlite(database, "SELECT status FROM run ORDER BY id DESC LIMIT 1") == "failed", "\(full.stderr)")
            #expect(try sqlite(database, "SELECT status FROM build ORDER BY id DESC LIMIT 1") == "failed",
                    "a build cut by a full disk is failed, not interrupted")
            let message4 = try sqlite(database, "SELECT errorMessage FROM build ORDER BY id DESC LIMIT 1")
            #expect(message4.contains("No space left on device"), "\(message4)")
            #expect(try sqlite(database, "SELECT count(*) FROM run WHERE status = 'running'") == "0")
            let work = (try? FileManager.default.contentsOfDirectory(atPath: state + "/work")) ?? []
            #expect(work.isEmpty, "work folders (with claim keys) left on the full disk: \(work)")
            let runs = try fleet.json(["runs", "--state", state])["runs"] as? [[String: Any]] ?? []
            #expect(runs.first?["status"] as? String == "failed", "runs: \(runs)")
            try FileManager.default.removeItem(atPath: state + "/filler")
            let after = try fleet.cli(["build", "--state", state])
            #expect(after.status == 0, "\(after)")
            let reserve = try FileManager.default.attributesOfItem(atPath: state + "/space-reserve")
            #expect(reserve[.size] as? Int == 1 << 20, "the reserve is made again once there is room: \(reserve)")
        }

        @Test("A build log that cannot be written fails the build with the reason and exit 1, never a crash, and leaves no work folder")
        func unwritableLogFailsCleanly() throws {
            let fleet = try DemoFleet("rec-full-logs", edit: keepSites(1))
            defer { fleet.remove() }
            try #require(try fleet.cli(["build"]).status == 0)
            let placed = try readlinkLatest(fleet, "zrh-lab")
            // The logs folder on its own full file system: opening a log works, every write fails.
            let logs = fleet.state + "/logs"
            guard try mountTmpfs(logs, size: "64k", test: "unwritableLogFailsCleanly") else { return }
            defer { unmount(logs) }
            _ = try run("dd", ["if=/dev/zero", "of=\(logs)/filler", "bs=4096"])

            let cut = try fleet.cli(["build", "--force"])
            #expect(cut.exited && cut.status == 1, "a crash (132 is the trap) or a wrong code: \(cut)")
            #expect(cut.stderr.contains("cannot write the log") && cut.stderr.contains("No space left on device"), "\(cut.stderr)")
            #expect(try sqlite(fleet.database, "SELECT status FROM run ORDER BY id DESC LIMIT 1") == "failed")
            #expect(try sqlite(fleet.database, "SELECT status FROM build ORDER BY id DESC LIMIT 1") == "failed")
            let message = try sqlite(fleet.database, "SELECT errorMessage FROM build ORDER BY id DESC LIMIT 1")
            #expect(message.contains("cannot write the log") && message.contains("No space left on device"), "\(message)")
            #expect(workLeftovers(fleet).isEmpty, "work folders (with claim keys) left: \(workLeftovers(fleet))")
            #expect(try readlinkLatest(fleet, "zrh-lab") == placed)
            let ghosts = try ghostRows(fleet.database)
            #expect(ghosts.isEmpty, "rows with no image: \(ghosts)")
        }

        @Test("ls, runs and show read a read-only copy of the database and never write to the database")
        func readingCommandsNeverWrite() throws {
            let test = "readingCommandsNeverWrite"
            guard try straceWorks(test) else { return }
            let fleet = try DemoFleet("rec-readonly", edit: keepSites(1))
            defer { fleet.remove() }
            try #require(try fleet.cli(["build"]).status == 0)

            // An archived copy on a read-only mount.
            let archive = fleet.directory + "/archive", readOnly = fleet.directory + "/archive-ro"
            try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
            try tool("cp", [fleet.database, archive + "/provenance.sqlite"])
            guard getuid() == 0, try run("mount", ["--bind", archive, readOnly]).status == 0 else {
                print("SKIPPED \(test): cannot bind-mount here")
                return
            }
            defer { unmount(readOnly) }
            try tool("mount", ["-o", "remount,bind,ro", readOnly])
            let archived = try fleet.json(["ls", "--state", readOnly])["builds"] as? [[String: Any]] ?? []
            #expect(archived.first?["status"] as? String == "succeeded", "ls of the read-only copy: \(archived)")
            #expect((try fleet.json(["runs", "--state", readOnly])["runs"] as? [[String: Any]])?.count == 1)
            #expect((try fleet.json(["show", "zrh-lab", "--state", readOnly])["build"] as? [String: Any])?["status"] as? String == "succeeded")
            let lsText = try fleet.cli(["ls", "--state", readOnly]).stdout
            #expect(lsText.contains("zrh-lab"), "\(lsText)")

            // A run that died leaves its rows `running`: reading commands show them and change nothing;
            // only the next build (which holds the lock) records them as interrupted.
            try rotatePassphrase(fleet, to: "rotated-passphrase-2026")
            _ = try runKilledAt(fleet, syscalls: "symlink,symlinkat", ["build"])
            let files = [fleet.database, fleet.database + "-wal"].filter { FileManager.default.fileExists(atPath: $0) }
            let before = try files.map(fileDigest)
            for arguments in [["ls"], ["ls", "--all"], ["runs"], ["show", "zrh-lab"], ["ls", "--json"]] {
                let outcome = try fleet.cli(arguments)
                #expect(outcome.status == 0, "\(arguments): \(outcome)")
            }
            #expect(try files.map(fileDigest) == before, "a reading command changed the database")
            #expect(try sqlite(fleet.database, "SELECT status FROM run WHERE id = 2") == "running")
            #expect(try fleet.cli(["build"]).status == 0)
            #expect(try sqlite(fleet.database, "SELECT status FROM run WHERE id = 2") == "interrupted")

            // A damaged database: every page after the first overwritten. Nothing writes to it.
            let damaged = try DemoFleet("rec-damaged", edit: keepSites(1))
            defer { damaged.remove() }
            try #require(try damaged.cli(["build"]).status == 0)
            let size = try Int(tool("stat", ["-c", "%s", damaged.database]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            try #require(size > 8192)
            try tool("sh", ["-c", "head -c \(size - 4096) /dev/zero | tr '\\0' '\\377' | dd of='\(damaged.database)' bs=4096 seek=1 conv=notrunc status=none"])
            let digest = try fileDigest(damaged.database)
            let ls = try damaged.cli(["ls"])
            #expect(ls.status != 0 && ls.stderr.contains("damaged"), "\(ls)")
            let build = try damaged.cli(["build"])
            #expect(build.status == 1 && build.stderr.contains("damaged") && build.stderr.contains("left untouched"), "\(build)")
            #expect(try fileDigest(damaged.database) == digest, "the damaged database was written to")
            let walSize = FileManager.default.fileExists(atPath: damaged.database + "-wal")
                ? try tool("stat", ["-c", "%s", damaged.database + "-wal"]).trimmingCharacters(in: .whitespacesAndNewlines) : "0"
            #expect(walSize == "0", "frames were written to the damaged database's WAL")
        }

        @Test("Scratch copies of partitions live in the run's work folder: a kill leaves none in TMPDIR, and the next run removes them")
        func scratchStaysInTheWorkFolder() throws {
            let fleet = try DemoFleet("rec-scratch", edit: keepSites(1))
            defer { fleet.remove() }
            let temporary = fleet.directory + "/tmp", tools = fleet.directory + "/tools"
            try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
            // fsck.fat runs on a scratch copy of the boot partition: the moment a kill leaves one behind.
            try write("#!/bin/sh\nkill -KILL $PPID\nsleep 5\n", to: tools + "/fsck.fat", mode: 0o755)
            var environment = ProcessInfo.processInfo.environment
            environment["PATH"] = tools + ":" + toolPath
            environment["TMPDIR"] = temporary
            let killed = try run(fleet.executable, ["build"], in: fleet.directory, environment: environment)
            #expect(!killed.exited && killed.status == SIGKILL, "not killed at fsck.fat: \(killed)")
            let leftInTemporary = try tool("find", [temporary, "-mindepth", "1"])
            #expect(leftInTemporary.isEmpty, "scratch left in TMPDIR: \(leftInTemporary)")
            let scratch = try tool("find", [fleet.state + "/work", "-name", ".fleet-images-scratch.*"])
            #expect(scratch.contains("/work/run-1-zrh-lab/"), "the partition copy was not in the run's work folder: \(scratch)")

            environment["PATH"] = toolPath
            let next = try run(fleet.executable, ["build"], in: fleet.directory, environment: environment)
            #expect(next.status == 0 && next.stderr.contains("removed 1 work folder"), "\(next)")
            #expect(try tool("find", [fleet.directory, "-name", ".fleet-images-scratch.*"]).isEmpty)
            #expect(try tool("find", [temporary, "-mindepth", "1"]).isEmpty)
        }

        @Test("Two builds with different state folders on one output folder never run at once: the second exits 75 naming the holder")
        func outputFolderIsLocked() throws {
            let fleet = try DemoFleet("rec-output-lock", edit: twelveVariants())
            defer { fleet.remove() }
            let stateA = fleet.directory + "/state-a", stateB = fleet.directory + "/state-b"
            try FileManager.default.createDirectory(atPath: fleet.output, withIntermediateDirectories: true)
            // Held by util-linux flock on the folder itself.
            let holder = try RunningProcess("flock", [fleet.output, "sleep", "120"])
            defer { release(holder) }
            try #require(waitUntilLocked(fleet.output), "flock did not take \(fleet.output)")
            let refused = try fleet.cli(["build", "--state", stateB])
            #expect(refused.status == 75, "\(refused)")
            #expect(refused.stderr.contains(fleet.output) && refused.stderr.contains("pid \(holder.pid)"), "holder not named: \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: stateB + "/provenance.sqlite"), "a refused run opened a database")
            release(holder)

            // Held by another build with its own state folder.
            let a = try fleet.start(["build", "--state", stateA, "--parallel", "1"])
            let started = a.waitForStderrLine { $0.contains(": started") }
            try #require(started != nil, "\(a.stderrSoFar)")
            let b = try fleet.cli(["build", "--state", stateB])
            let aOutcome = try a.finish()
            #expect(aOutcome.status == 0, "\(aOutcome)")
            #expect(b.status == 75, "\(b)")
            #expect(b.stderr.contains("pid \(a.pid)") && b.stderr.contains("--state \(stateA)"), "holder not named: \(b.stderr)")
            #expect(!FileManager.default.fileExists(atPath: stateB + "/provenance.sqlite"), "the refused run opened a database")
            for variant in try fleet.variantIDs() {
                let target = try tool("readlink", ["-f", fleet.output + "/\(variant)/latest/\(variant).img"]).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(try sqlite(stateA + "/provenance.sqlite", "SELECT count(*) FROM build WHERE status = 'succeeded' AND artifactPath = '\(target)'") == "1",
                        "\(variant)/latest is not a build of state-a: \(target)")
            }
        }

        @Test("The database is 0600 (0640 with the output group) and a world-writable state folder is refused with exit 2")
        func databaseIsPrivateAndStateMustBeToo() throws {
            let fleet = try DemoFleet("rec-modes", edit: keepSites(1))
            defer { fleet.remove() }
            try #require(try fleet.cli(["build"]).status == 0)
            let files = [fleet.database, fleet.database + "-wal", fleet.database + "-shm"].filter { FileManager.default.fileExists(atPath: $0) }
            let modes = try tool("stat", ["-c", "%a"] + files)
            #expect(modes.split(separator: "\n").allSatisfy { $0 == "600" }, "\(modes)")
            chmod(fleet.database, 0o644)
            try #require(try fleet.cli(["build"]).status == 0)
            #expect(try tool("stat", ["-c", "%a", fleet.database]).trimmingCharacters(in: .whitespacesAndNewlines) == "600")

            let group = try DemoFleet("rec-modes-group") { manifest in
                keepSites(1)(&manifest)
                manifest["output"] = ["directory": "build/images", "group": "root"]
            }
            defer { group.remove() }
            let grouped = try group.cli(["build"])
            try #require(grouped.status == 0, "\(grouped)")
            #expect(try tool("stat", ["-c", "%a %G", group.database]).trimmingCharacters(in: .whitespacesAndNewlines) == "640 root")

            let open = fleet.directory + "/shared-state"
            try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
            chmod(open, 0o777)
            for arguments in [["build", "--state", open], ["ls", "--state", open], ["prune", "--state", open]] {
                let refused = try fleet.cli(arguments)
                #expect(refused.status == 2, "\(arguments): \(refused)")
                #expect(refused.stderr.contains(open) && refused.stderr.contains("writable by every user"), "\(arguments): \(refused.stderr)")
            }
            #expect(try tool("find", [open, "-mindepth", "1"]).isEmpty, "a refused command wrote into \(open)")
        }
    }
}
