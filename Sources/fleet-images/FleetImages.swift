import ArgumentParser
import FleetImagesCore
import Foundation

@main
struct FleetImages: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-images",
        abstract: "Build, sign and record per-site OS images for a fleet of Raspberry Pi-class devices.",
        discussion: """
        Reads a fleet manifest (fleet.json), expands it into one image variant per site and matrix \
        combination, builds them in parallel, signs every image and records its provenance.

        Exit codes: 0 all built or up to date · 1 a variant failed · 2 bad command line or manifest · \
        69 a required tool or service is unavailable · 75 another run holds the lock · 130/143 interrupted.
        """,
        version: FleetImagesVersion.current,
        subcommands: [Validate.self, Plan.self, Build.self, Ls.self, Runs.self, Show.self, Sign.self, Verify.self, Keygen.self, Prune.self, Merge.self, Publish.self, Flash.self, Report.self]
    )

    /// swift-argument-parser's `main`, except that a usage error exits 2 (the README's table), not
    /// the parser's 64 (`EX_USAGE`), with the parser's message and usage text unchanged, and a
    /// misspelt subcommand gets the nearest real one.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot(nil)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            var text = fullMessage(for: error)
            if let hint = subcommandHint(Array(CommandLine.arguments.dropFirst())) { text += "\n" + hint }
            Output.error(text)
            Foundation.exit(Exit.badInput.rawValue)
        }
    }

    /// "did you mean" for a first word that is no subcommand but close to one (`biuld` → `build`).
    static func subcommandHint(_ arguments: [String]) -> String? {
        guard let word = arguments.first, !word.hasPrefix("-") else { return nil }
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        guard !names.contains(word) else { return nil }
        guard let closest = Suggestion.closest(to: word, among: names) else {
            return "fleet-images has no command '\(word)'; the commands are: \(names.joined(separator: ", "))"
        }
        return "fleet-images has no command '\(word)'; did you mean '\(closest)'?"
    }
}

/// Options every command that reads the manifest shares.
struct ManifestOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The fleet manifest.")
    var manifest: String = "fleet.json"
}

/// Exit codes from DESIGN.md; cron reads them.
enum Exit {
    static let failed = ExitCode(1)
    static let badInput = ExitCode(2)
    static let unavailable = ExitCode(69)
    static let locked = ExitCode(75)
}

enum Output {
    /// Writes `text` and a newline to standard error. Callers write `"error: \(error)"`; when the
    /// error's own text already starts with a severity (diagnostics rendered as text do), the
    /// caller's prefix is dropped, so no line ever reads `error: error:`.
    static func error(_ text: String) {
        var text = text
        let prefix = "error: "
        if text.hasPrefix(prefix), text.dropFirst(prefix.count).hasPrefix(prefix) || text.dropFirst(prefix.count).hasPrefix("warning: ") {
            text.removeFirst(prefix.count)
        }
        StandardError.write(text + "\n")
    }

    static func diagnostics(_ items: [Diagnostic]) {
        for item in items { error(item.description) }
        let errors = items.filter { $0.severity == .error }.count
        let warnings = items.count - errors
        if errors > 0 {
            error("\(errors) error\(errors == 1 ? "" : "s")\(warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : "")")
        }
    }
}
