import Foundation

/// Runs the independent tools the disk-image tests build and check images with (sfdisk, mkfs.*, debugfs,
/// mtools, e2fsck, fsck.fat, cmp, stat, sha256sum): these are not the code under test.
enum DiskImageShell {
    struct Result {
        var status: Int32
        var output: Data
        var error: String
        var text: String { String(decoding: output, as: UTF8.self) }
    }

    struct Failure: Error, CustomStringConvertible {
        var command: [String]
        var result: Result
        var description: String { "\(command.joined(separator: " ")) exited \(result.status): \(result.error)\(result.text)" }
    }

    static let searchPath = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"

    /// Runs `command`; throws unless it exits 0 (or `allowFailure`).
    @discardableResult
    static func run(_ command: [String], stdin: String? = nil, environment: [String: String] = [:],
                    allowFailure: Bool = false) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        var variables = ProcessInfo.processInfo.environment
        variables["PATH"] = searchPath
        variables["LC_ALL"] = "C.UTF-8"
        variables["DEBUGFS_PAGER"] = "__none__"
        variables["MTOOLS_SKIP_CHECK"] = "1"
        variables.merge(environment) { $1 }
        process.environment = variables
        let output = Pipe(), error = Pipe(), input = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read stderr on another thread so a chatty tool cannot block on a full pipe.
        let errorBox = DiskImageDataBox()
        let done = DispatchSemaphore(value: 0)
        let errorHandle = error.fileHandleForReading
        Thread.detachNewThread {
            errorBox.data = errorHandle.readDataToEndOfFile()
            done.signal()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        let errorData = errorBox.data
        process.waitUntilExit()
        let result = Result(status: process.terminationStatus, output: outputData,
                            error: String(decoding: errorData, as: UTF8.self))
        if !allowFailure && result.status != 0 { throw Failure(command: command, result: result) }
        return result
    }

    static func sha256(_ path: String) throws -> String {
        String(try run(["sha256sum", path]).text.prefix(64))
    }

    /// Blocks allocated on disk, in bytes (`stat -c %b` × `%B`).
    static func allocatedBytes(_ path: String) throws -> UInt64 {
        let fields = try run(["stat", "-c", "%b %B", path]).text.split(separator: " ")
        return UInt64(fields[0])! * UInt64(fields[1].trimmingCharacters(in: .whitespacesAndNewlines))!
    }
}

/// Hands stderr bytes from the reader thread back; the semaphore orders the write before the read.
private final class DiskImageDataBox: @unchecked Sendable {
    var data = Data()
}
