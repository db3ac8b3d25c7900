import Foundation
import Testing

/// The shipped CI integrations (`contrib/github-actions/`, `contrib/kubernetes/`), through
/// `scripts/check-contrib.py`: their schemas and linters, then their jobs run here on the demo
/// fleet with the built executable (see the script's header for what stands in for what).
extension CLITests {
    @Suite struct Contrib {
        func check(_ arguments: [String]) throws {
            let script = CLILocation.repository + "/scripts/check-contrib.py"
            // The test runner's own PATH first: the Python that scripts/install-deps.sh installed the checkers into.
            var environment = ProcessInfo.processInfo.environment
            environment["PATH"] = (environment["PATH"].map { $0 + ":" } ?? "") + toolPath
            let outcome = try run("python3", [script] + arguments, in: CLILocation.repository, environment: environment, timeout: 1800)
            #expect(outcome.exited && outcome.status == 0, "check-contrib.py \(arguments.joined(separator: " ")):\n\(outcome.stdout)\(outcome.stderr)")
            #expect(outcome.stdout.contains("all checks passed"), "\(outcome.stdout)")
        }

        @Test("The workflow and the Kubernetes Jobs pass their schemas, zizmor, and what they must say")
        func staticChecks() throws {
            try check(["static"])
        }

        @Test("The GitHub workflow's plan, build --shard and merge jobs, run here on two nights, record the whole fleet")
        func githubWorkflowRuns() throws {
            try check(["github", try CLILocation.executable()])
        }

        @Test("The Kubernetes Indexed Job's pods and the merge Job's pod, run here on two nights, record the whole fleet",
              .enabled(if: getuid() == 0, "the pod stand-in needs root: mount namespaces and bind mounts"))
        func kubernetesJobsRun() throws {
            try check(["kubernetes", try CLILocation.executable()])
        }
    }
}
