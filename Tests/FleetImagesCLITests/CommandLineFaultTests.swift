import Foundation
import Testing

// Issue 11, items 11 and 13: usage errors exit 2 with the usage text, a misspelt command gets a
// "did you mean", and no message reads `error: error:`. The real binary, read by exit code and text.

extension CLITests {
    @Suite("Fault promises: command line") struct CommandLinePromises {
        let executable: String
        let folder: String

        init() throws {
            executable = try CLILocation.executable()
            folder = NSTemporaryDirectory() + "fleet-images-cli-usage-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }

        @Test("a usage error exits 2, as the README's table says, with the parser's message and the usage text",
              arguments: [["ls", "--status", "bogus"], ["verify"], ["build", "--paralel", "2"], ["runs", "--limit", "many"], ["--no-such-flag"]])
        func usageErrorExitsTwo(arguments: [String]) throws {
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let outcome = try run(executable, arguments, in: folder)
            #expect(outcome.exited && outcome.status == 2, "fleet-images \(arguments.joined(separator: " ")): \(outcome)")
            #expect(outcome.stderr.contains("Error:") && outcome.stderr.contains("Usage: fleet-images"), "\(outcome.stderr)")
            #expect(outcome.stdout.isEmpty, "\(outcome.stdout)")
            #expect((try FileManager.default.contentsOfDirectory(atPath: folder)).isEmpty, "a usage error wrote files")
        }

        @Test("a misspelt command exits 2 and names the command that was meant",
              arguments: [("biuld", "build"), ("verfy", "verify"), ("prnue", "prune"), ("sohw", "show")])
        func misspeltCommandGetsASuggestion(typed: String, meant: String) throws {
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let outcome = try run(executable, [typed], in: folder)
            #expect(outcome.exited && outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.contains("fleet-images has no command '\(typed)'; did you mean '\(meant)'?"), "\(outcome.stderr)")
            #expect(outcome.stderr.contains("Usage: fleet-images"), "\(outcome.stderr)")
            let unrelated = try run(executable, ["xyzzy"], in: folder)
            #expect(unrelated.status == 2 && unrelated.stderr.contains("the commands are: validate, plan, build"), "\(unrelated)")
        }

        @Test("help and version still exit 0 on standard output")
        func helpAndVersionExitZero() throws {
            defer { try? FileManager.default.removeItem(atPath: folder) }
            for arguments in [["--help"], ["verify", "--help"], ["help", "build"], ["--version"]] {
                let outcome = try run(executable, arguments, in: folder)
                #expect(outcome.exited && outcome.status == 0 && !outcome.stdout.isEmpty && outcome.stderr.isEmpty, "\(arguments): \(outcome)")
            }
            let help = try run(executable, ["verify", "--help"], in: folder)
            let words = help.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
            #expect(words.contains("--no-provenance") && words.contains("PAE(payloadType, payload)"), "\(help.stdout)")
        }

        @Test("no message ever reads 'error: error:'",
              arguments: [["verify", "x.img"], ["prune"], ["sign", "x.img"], ["verify", "x.img", "-m", "other.json"]])
        func noDoubledErrorPrefix(arguments: [String]) throws {
            defer { try? FileManager.default.removeItem(atPath: folder) }
            // No fleet.json here: the manifest cannot be read, the reason is a diagnostic ("error: fleet.json: …").
            let outcome = try run(executable, arguments, in: folder)
            #expect(outcome.exited && outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.hasPrefix("error: ") && outcome.stderr.contains(".json"), "\(outcome.stderr)")
            #expect(!outcome.stderr.contains("error: error:"), "\(outcome.stderr)")
        }
    }
}
