import Foundation

/// Builds a `debugfs -f` command file and splits debugfs's output back into one answer per command.
///
/// Findings that shape this (e2fsprogs 1.47, checked by the tests):
/// - debugfs's argument parser takes a double-quoted argument literally, with `""` standing for one `"`;
///   backslashes, spaces, `#` and `;` need nothing else. Every argument is therefore quoted. Newlines cannot
///   be expressed and are rejected.
/// - debugfs exits 0 even when commands fail. With `-f` it echoes each command as `debugfs: <line>` on stdout
///   and prints errors on stderr; read through one pipe the two stay in order, so everything between one echo
///   and the next belongs to that command.
/// - The last path component is not followed when it is a symlink, the others are. `dir/./name` therefore
///   reaches `name` inside whatever `dir` resolves to (Raspberry Pi OS has `/lib -> usr/lib`), while plain
///   `write /lib/x` would look for a directory in the symlink inode and fail after allocating an inode.
struct DebugfsScript {
    struct Command {
        var line: String
        /// The path in the image this command is about, for error messages.
        var subject: String
    }

    /// What debugfs printed after one command's echo.
    struct Answer {
        var command: Command
        var lines: [String]

        /// Lines that are neither blank nor the informational `Allocated inode: N` that `write` prints.
        var problems: [String] {
            lines.filter { line in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                return !trimmed.isEmpty && !trimmed.hasPrefix("Allocated inode: ")
            }
        }
    }

    private(set) var commands: [Command] = []

    /// Appends a command whose first word is a bare command name and the rest quoted arguments.
    mutating func append(command: String, _ arguments: [String], subject: String) {
        let line = ([command] + arguments.map(Self.quote)).joined(separator: " ")
        commands.append(Command(line: line, subject: subject))
    }

    static func quote(_ argument: String) -> String {
        "\"" + argument.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    var text: String { commands.map { $0.line + "\n" }.joined() }

    /// Runs the script against the ext file system at `offset` in `image`; writable only when `writable`.
    func run(image: String, offset: UInt64, writable: Bool) async throws -> [Answer] {
        guard !image.contains("?") else {
            throw DiskImageError.invalidPath(path: image, reason: "debugfs cannot open an image whose path contains '?'")
        }
        let scratch = try DiskImageScratch(near: image)
        defer { scratch.remove() }
        try scratch.write(text, to: "commands")
        let device = "\(image)?offset=\(offset)"
        let outcome = try await DiskImageProcess.run(
            .debugfs, (writable ? ["-w"] : []) + ["-f", scratch.file("commands"), device], image: image)
        return try parse(outcome.output, image: image, exitCode: outcome.exitCode)
    }

    func parse(_ output: String, image: String, exitCode: Int32?) throws(DiskImageError) -> [Answer] {
        var preamble: [String] = []
        var answers: [Answer] = []
        for line in output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if answers.count < commands.count, line == "debugfs: " + commands[answers.count].line {
                answers.append(Answer(command: commands[answers.count], lines: []))
            } else if answers.isEmpty {
                preamble.append(line)
            } else {
                answers[answers.count - 1].lines.append(line)
            }
        }
        let openProblems = preamble.filter { !$0.isEmpty && !$0.hasPrefix("debugfs 1.") && !$0.hasPrefix("debugfs 2.") }
        if !openProblems.isEmpty {
            throw .toolFailed(tool: "debugfs", image: image,
                              detail: "cannot open the file system: " + openProblems.joined(separator: "; "))
        }
        guard answers.count == commands.count, exitCode == 0 else {
            throw .toolFailed(tool: "debugfs", image: image,
                              detail: "stopped after \(answers.count) of \(commands.count) commands "
                                  + "(exit status \(exitCode.map(String.init) ?? "none")); output:\n\(output)")
        }
        return answers
    }
}
