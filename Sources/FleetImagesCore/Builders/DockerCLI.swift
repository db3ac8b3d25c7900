import Foundation
import Subprocess
import SystemPackage

/// The `docker` command line, the only way fleet-images talks to Docker: the operator's own
/// client configuration (`DOCKER_HOST`, contexts, `~/.docker/config.json` credentials) applies
/// unchanged, and every step can be repeated by hand from the log.
public struct DockerCLI: Sendable {
    public struct Outcome: Sendable {
        public var status: Int32?
        public var output: String
        public var succeeded: Bool { status == 0 }
    }

    /// Absolute path of the client found on `PATH`; every run executes this file.
    public var executable: String
    /// Variables set for the client on top of the inherited environment (`DOCKER_HOST`, …).
    public var environment: [String: String]

    public init(executable: String, environment: [String: String] = [:]) {
        self.executable = executable
        self.environment = environment
    }

    /// The client on `PATH`, or nil.
    public static func find(environment: [String: String] = [:]) -> DockerCLI? {
        ToolAvailability.path(named: "docker").map { DockerCLI(executable: $0, environment: environment) }
    }

    var processEnvironment: Environment {
        var variables: [Environment.Key: String?] = [:]
        for (key, value) in environment { variables[Environment.Key(stringLiteral: key)] = value }
        return .inherit.updating(variables)
    }

    static let outputLimit = 4 << 20

    /// Runs `docker arguments…` to the end and returns its combined output. On task cancellation
    /// the client gets SIGTERM (then SIGKILL after `grace`) and this throws `CancellationError`.
    public func run(_ arguments: [String], grace: Duration = .seconds(2)) async throws -> Outcome {
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: grace)]
        let result: ExecutionResult<Void, BytesOutput, CombinedErrorOutput>
        do {
            result = try await Subprocess.run(
                .path(FilePath(executable)),
                arguments: Arguments(arguments),
                environment: processEnvironment,
                platformOptions: options,
                input: .none,
                output: .bytes(limit: Self.outputLimit),
                error: .combinedWithOutput
            )
        } catch let error as SubprocessError {
            try Task.checkCancellation()
            return Outcome(status: nil, output: "cannot run \(executable): \(error)")
        }
        try Task.checkCancellation()
        let output = String(decoding: result.standardOutput, as: UTF8.self)
        switch result.terminationStatus {
        case .exited(let code): return Outcome(status: code, output: output)
        case .signaled(let signal): return Outcome(status: nil, output: output + "\n(killed by signal \(signal))")
        }
    }

    /// Runs `docker arguments…` and hands each output line (stdout and stderr merged, in order)
    /// to `line` as it arrives. Returns the exit status (nil when the client was killed). On
    /// cancellation the client is killed at once and this returns; it is only the client, and the
    /// caller stops the container itself.
    public func stream(_ arguments: [String], line: @escaping @Sendable (String) -> Void) async throws -> Int32? {
        var options = PlatformOptions()
        options.teardownSequence = []
        let result = try await Subprocess.run(
            .path(FilePath(executable)),
            arguments: Arguments(arguments),
            environment: processEnvironment,
            platformOptions: options,
            input: .none,
            output: .sequence,
            error: .combinedWithOutput
        ) { execution in
            for try await text in execution.standardOutput.strings() {
                line(text)
            }
        }
        switch result.terminationStatus {
        case .exited(let code): return code
        case .signaled: return nil
        }
    }
}
