import Foundation
import Testing

/// Every end-to-end suite is nested here so that `.serialized` covers all of them: they start real
/// builds (each a 320 MiB sparse image) on a 2-core machine, and the interruption tests read the
/// child's progress lines, which must not compete with another suite's builds.
@Suite(.serialized) struct CLITests {}

/// The demo fleet built once with `build --parallel 4` and shared by the tests that only read it
/// (main job, secrets, verify), with what the first build printed and `ls --json` right after it.
struct SharedDemoBuild: Sendable {
    let fleet: DemoFleet
    let firstBuild: ProcessOutcome
    let lsAfterFirstBuild: String

    static let shared: Result<SharedDemoBuild, any Error> = Result { try SharedDemoBuild() }

    static func get() throws -> SharedDemoBuild { try shared.get() }

    private init() throws {
        fleet = try DemoFleet("shared")
        atexit { if case .success(let built) = SharedDemoBuild.shared { built.fleet.remove() } }
        firstBuild = try fleet.cli(["build", "--parallel", "4"])
        lsAfterFirstBuild = try fleet.cli(["ls", "--json"]).stdout
    }
}
