import Foundation

/// Why a benchmark could not produce its numbers (setup failed, a run did not do what it must).
/// A benchmark that measured something other than what it claims is worse than none, so every
/// precondition that would make the numbers meaningless stops it with this error.
struct BenchError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Wall-clock timing on the monotonic clock.
enum Stopwatch {
    /// Seconds `body` took.
    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return seconds(ContinuousClock.now - start)
    }

    static func time(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        return seconds(ContinuousClock.now - start)
    }

    /// Wall and CPU seconds (user + system, this process) of `body`. On a machine shared with
    /// other work a single-threaded body's CPU time is what its wall time would be on a quiet one.
    static func measure(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        let cpuStart = processCPU()
        let wall = try time(body)
        return (wall, processCPU() - cpuStart)
    }

    /// CPU seconds (user + system) of this process so far.
    static func processCPU() -> Double { cpu(RUSAGE_SELF.rawValue) }

    /// CPU seconds (user + system) of the child processes waited for so far (debugfs, e2fsck, xz, …).
    static func childrenCPU() -> Double { cpu(RUSAGE_CHILDREN.rawValue) }

    private static func cpu(_ who: Int32) -> Double {
        var usage = rusage()
        getrusage(who, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func seconds(_ duration: Duration) -> Double {
        let (whole, attoseconds) = duration.components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

/// How benchmarks print: one measurement per line, numbers first-class, each goal beside its ratio.
enum Report {
    static func header(_ text: String) {
        print("== \(text)")
        print("  machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
    }

    /// The 1-, 5- and 15-minute load averages: other work on the machine skews every number.
    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "unknown"
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    static func line(_ text: String) {
        print("  " + text)
    }

    /// `name ... 1.234 s` with optional detail after it.
    static func measurement(_ name: String, seconds: Double, detail: String = "") {
        let padded = name.padding(toLength: max(name.count, 58), withPad: " ", startingAt: 0)
        print("  \(padded) \(format(seconds)) s\(detail.isEmpty ? "" : "  (\(detail))")")
    }

    /// A result against its goal, e.g. `ratio 2.10×   goal ≤ 3.00×   met`.
    static func goal(_ name: String, value: String, goal: String, met: Bool) {
        let padded = name.padding(toLength: max(name.count, 58), withPad: " ", startingAt: 0)
        print("  \(padded) \(value)   goal \(goal)   \(met ? "MET" : "MISSED")")
    }

    static func format(_ seconds: Double) -> String {
        String(format: "%.3f", seconds)
    }

    static func ratio(_ value: Double) -> String {
        String(format: "%.2f×", value)
    }

    static func list(_ values: [Double]) -> String {
        values.map(format).joined(separator: " ")
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// Runs command-line tools for setup and for the floors the benchmarks compare against.
enum Shell {
    struct Failure: Error, CustomStringConvertible {
        var command: String
        var status: Int32
        var stderr: String
        var description: String { "\(command) exited \(status): \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))" }
    }

    /// Runs `tool` (a path, or a name looked up on PATH) to the end. Standard output goes to
    /// `stdoutPath` when given (created or truncated), else it is captured and returned.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], stdoutPath: String? = nil, stdin: String? = nil,
                    currentDirectory: String? = nil) throws -> String {
        let process = Process()
        if tool.hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [tool] + arguments
        }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = (environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        process.environment = environment

        let errorFile = try TemporaryFolder.scratchFile("stderr")
        defer { unlink(errorFile) }
        guard let errorHandle = FileHandle(forWritingAtPath: errorFile) else { throw BenchError("cannot open \(errorFile)") }
        process.standardError = errorHandle
        var outputFile: String
        var captured = false
        if let stdoutPath {
            guard FileManager.default.createFile(atPath: stdoutPath, contents: nil) else { throw BenchError("cannot create \(stdoutPath)") }
            outputFile = stdoutPath
        } else {
            outputFile = try TemporaryFolder.scratchFile("stdout")
            captured = true
        }
        defer { if captured { unlink(outputFile) } }
        guard let outputHandle = FileHandle(forWritingAtPath: outputFile) else { throw BenchError("cannot open \(outputFile)") }
        process.standardOutput = outputHandle
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        try outputHandle.close()
        try errorHandle.close()
        let command = ([tool] + arguments).joined(separator: " ")
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let stderr = (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
            throw Failure(command: command, status: process.terminationStatus, stderr: String(stderr.suffix(4000)))
        }
        return captured ? ((try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "") : ""
    }

    /// The first line of `tool --version`, for the record.
    static func version(_ tool: String) -> String {
        ((try? run(tool, ["--version"])) ?? "unknown").split(separator: "\n").first.map(String.init) ?? "unknown"
    }
}

/// Folders that exist for one benchmark run and are removed afterwards.
enum TemporaryFolder {
    static func make(_ label: String) throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/fleet-images-bench-\(label).XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("cannot create a temporary folder under \(base): \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    static func scratchFile(_ label: String) throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/fleet-images-bench-\(label).XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw BenchError("cannot create a temporary file under \(base): \(String(cString: strerror(errno)))") }
        close(fd)
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Where set-up work that is slow to make (certificates, the Raspberry Pi OS-sized image) is kept
/// between runs: `$FLEET_IMAGES_BENCH_CACHE`, else `~/.cache/fleet-images-bench`.
enum BenchCache {
    static var root: String {
        if let override = ProcessInfo.processInfo.environment["FLEET_IMAGES_BENCH_CACHE"], !override.isEmpty { return override }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        return home + "/.cache/fleet-images-bench"
    }
}

/// File helpers the benchmarks share.
enum Files {
    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw BenchError("cannot write \(path)") }
        chmod(path, mode)
    }

    /// A hard link (same file system, instant) or else a copy.
    static func linkOrCopy(_ source: String, to destination: String) throws {
        if link(source, destination) == 0 { return }
        try FileManager.default.copyItem(atPath: source, toPath: destination)
    }

    static func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    static func size(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_size) : 0
    }

    /// Bytes actually allocated (a sparse file's holes do not count).
    static func allocated(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_blocks) * 512 : 0
    }

    /// Free bytes on the file system holding `path`.
    static func freeSpace(_ path: String) -> UInt64 {
        var info = statvfs()
        return statvfs(path, &info) == 0 ? UInt64(info.f_bavail) * UInt64(info.f_frsize) : 0
    }
}
