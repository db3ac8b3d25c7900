import Foundation
import Subprocess

/// Runs one of the disk tools with a fixed, predictable environment and captures its combined output.
///
/// stdout and stderr share one pipe so `debugfs`'s echoed commands and its error messages stay in order.
/// Output is bounded; when the calling task is cancelled the tool gets SIGTERM, then SIGKILL after two seconds,
/// and this throws `CancellationError` (swift-subprocess returns normally in that case).
enum DiskImageProcess {
    struct Outcome {
        var exitCode: Int32?
        var output: String
        var succeeded: Bool { exitCode == 0 }
    }

    static let outputLimit = 16 << 20

    /// 2024-01-01T00:00:00Z: the time stamped on files fleet-images writes into images when
    /// SOURCE_DATE_EPOCH is not set.
    static let reproducibleEpoch = "1704067200"

    static func run(
        _ tool: ToolAvailability.Tool,
        _ arguments: [String],
        image: String,
        environment extra: [String: String] = [:]
    ) async throws -> Outcome {
        try ToolAvailability.require([tool])
        var variables: [Environment.Key: String?] = [
            "PATH": ToolAvailability.searchPath,
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "DEBUGFS_PAGER": "__none__",
            "PAGER": "__none__",
        ]
        // Reproducible images: the same inputs give the same bytes. debugfs and mtools stamp what
        // they write with the current time unless told otherwise; pin it to SOURCE_DATE_EPOCH
        // (the Reproducible Builds convention) when the caller sets it, else to a fixed date.
        let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { UInt64($0) }.map(String.init) ?? reproducibleEpoch
        variables["SOURCE_DATE_EPOCH"] = epoch
        variables["E2FSPROGS_FAKE_TIME"] = epoch
        for (key, value) in extra { variables[Environment.Key(stringLiteral: key)] = value }
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(2))]

        let result: ExecutionResult<Void, BytesOutput, CombinedErrorOutput>
        do {
            result = try await Subprocess.run(
                ToolAvailability.executable(tool),
                arguments: Arguments(arguments),
                environment: .inherit.updating(variables),
                platformOptions: options,
                input: .none,
                output: .bytes(limit: outputLimit),
                error: .combinedWithOutput
            )
        } catch let error as SubprocessError {
            try Task.checkCancellation()
            throw DiskImageError.toolFailed(tool: tool.rawValue, image: image, detail: "\(error)")
        }
        try Task.checkCancellation()
        let output = String(decoding: result.standardOutput, as: UTF8.self)
        switch result.terminationStatus {
        case .exited(let code):
            return Outcome(exitCode: code, output: output)
        case .signaled(let signal):
            throw DiskImageError.toolFailed(tool: tool.rawValue, image: image,
                                            detail: "killed by signal \(signal); output:\n\(output)")
        }
    }
}
