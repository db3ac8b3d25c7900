import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the variants the manifest expands to, what each puts where, and its inputs digest.",
            discussion: """
            Order is deterministic: sites in manifest order, then matrix combinations (axes by name). \
            Passphrases and keys never appear; secret inputs are shown as HMAC digests under the state's local key. \
            The base image is read once (decompressed into the state's cache) to learn its OS and first-boot format. \
            With --json the output is the stable shape documented in the README.
            """)

        @OptionGroup var options: ManifestOptions
        @Option(help: "Only variants whose id matches this shell pattern, e.g. 'zrh-*'.") var only: String?
        @Option(help: "State folder (database, HMAC key, lock). Default: .fleet-images beside the manifest.") var state: String?
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let outcome = FleetLoader.load(manifestPath: options.manifest, environment: environment, only: only)
            Output.diagnostics(outcome.diagnostics)
            guard let manifest = outcome.manifest, !outcome.hasErrors else { throw Exit.badInput }
            let location = StateLocation(manifestDirectory: manifest.directory, override: state)
            let plan: FleetImagesCore.Plan
            do {
                try location.create()
                let key = try StateSecretKey.loadOrCreate(inDirectory: location.directory)
                let os = try await BuildRunner.defaultOSDetection(manifest, state: location, variants: outcome.variants, log: { _ in })
                let problems = DeviceOSResolver.problems(outcome.variants, os: os)
                if !problems.isEmpty {
                    Output.diagnostics(problems)
                    throw Exit.badInput
                }
                plan = try Planner(manifest: manifest, environment: environment, secretKey: key).plan(outcome.variants, os: os)
            } catch let exit as ExitCode {
                throw exit
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            print(json ? try PlanReport.json(plan) : PlanReport.text(plan))
        }
    }
}
