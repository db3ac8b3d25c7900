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
        subcommands: [Validate.self, Plan.self, Build.self, Ls.self, Runs.self, Show.self, Sign.self, Verify.self, Keygen.self, Prune.self]
    )
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
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
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
