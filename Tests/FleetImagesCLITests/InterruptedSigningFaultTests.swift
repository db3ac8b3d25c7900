import Foundation
import Testing

// Issue 11, item 13: a real SIGINT while the image is being hashed for signing; the records read with sqlite3.

extension CLITests {
    @Suite("Fault promises: interrupted signing") struct InterruptedSigningPromises {
        @Test("SIGINT while an image is being signed records the build interrupted, not failed, and exits 130")
        func sigintDuringSigningIsInterrupted() throws {
            let fleet = try DemoFleet("sigint-signing", edit: keepSites(1))
            defer { fleet.remove() }
            // strace holds every fadvise(2) on the work image for 4 s. Signing makes one as it opens the
            // image to hash it, so the SIGINT sent as soon as "signing" is printed lands inside signing,
            // before the first chunk is read. (strace only slows the call; the signal is the test's own kill.)
            let workImage = fleet.state + "/work/run-1-zrh-lab/zrh-lab.img"
            let child = try RunningProcess("/usr/bin/strace",
                                           ["-f", "-qq", "-o", "/dev/null", "-P", workImage, "-e", "inject=fadvise64:delay_exit=4000000",
                                            fleet.executable, "build", "--parallel", "1"],
                                           currentDirectory: fleet.directory)
            let signing = child.waitForStderrLine { $0.contains("zrh-lab: signing") }
            #expect(signing != nil, "the build never reached signing: \(child.stderrSoFar)")
            guard let tracee = Self.onlyChild(of: child.pid) else {
                _ = try child.finish()
                throw CLITestFailure("no fleet-images process under strace \(child.pid)")
            }
            kill(tracee, SIGINT)
            let outcome = try child.finish()
            #expect(outcome.exited && outcome.status == 130, "\(outcome)")

            #expect(try sqlite(fleet.database, "SELECT status FROM build WHERE variantID = 'zrh-lab'") == "interrupted")
            #expect(try sqlite(fleet.database, "SELECT status FROM run") == "interrupted")
            let listed = try fleet.json(["ls", "--all"])["builds"] as? [[String: Any]] ?? []
            #expect(listed.map { $0["status"] as? String } == ["interrupted"], "ls --all: \(listed)")
            let runs = try fleet.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.first?["status"] as? String == "interrupted", "runs: \(runs)")
            // The signal landed inside signing: the log says signing began and never that it finished.
            let log = try String(contentsOfFile: fleet.state + "/logs/run-1/zrh-lab.log", encoding: .utf8)
            #expect(log.contains("signing") && !log.contains("signed by") && log.contains("interrupted"), "\(log)")
            #expect(OutputCheck.entries(fleet.output, "zrh-lab").isEmpty, "something was placed: \(OutputCheck.entries(fleet.output, "zrh-lab"))")
            #expect(workLeftovers(fleet).isEmpty, "work folders left: \(workLeftovers(fleet))")
        }

        /// The single child process of `pid` (strace's tracee).
        static func onlyChild(of pid: Int32) -> Int32? {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
            let children = text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return children.count == 1 ? children[0] : nil
        }
    }
}
