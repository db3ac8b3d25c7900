import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the manifest and everything it refers to; report every problem at once.",
            discussion: "Exit 0 when there is no error (warnings are printed), 2 otherwise. Writes nothing.")

        @OptionGroup var options: ManifestOptions

        func run() async throws {
            let outcome = FleetLoader.load(manifestPath: options.manifest, environment: ProcessInfo.processInfo.environment)
            Output.diagnostics(outcome.diagnostics)
            if outcome.hasErrors { throw Exit.badInput }
            print("\(options.manifest): valid, \(outcome.variants.count) variant\(outcome.variants.count == 1 ? "" : "s")")
        }
    }
}
