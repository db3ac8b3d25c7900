import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the run report: one static HTML page of every variant's latest build and the last runs.",
            discussion: """
            The page `build` writes after each run (<output>/index.html), written again from the records: \
            status, time, image SHA-256, signing key, claim-certificate expiry (red under 30 days), Wi-Fi SSID \
            (never the passphrase), links to each image's files, and the last 10 runs. No script, no external \
            asset: it opens from the disk or any web server. Only the database and the manifest are read.
            """)

        @OptionGroup var manifestOptions: ManifestOptions
        @Option(help: "State folder. Default: .fleet-images beside the manifest.") var state: String?
        @Option(help: "Where to write the page. Default: <output>/index.html (its links are relative to the output folder).")
        var out: String?

        func run() async throws {
            let (manifestOrNil, _, store) = try StateOptions.open(manifestPath: manifestOptions.manifest, state: state)
            guard let manifest = manifestOrNil else {
                Output.error("error: report needs the manifest (its variants and output folder)")
                throw Exit.badInput
            }
            let output = manifest.directory + "/" + manifest.output.directory
            do {
                if out == nil { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
                let path = try RunReport.write(manifest: manifest, store: store,
                                               to: out.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 })
                print(path)
            } catch {
                Output.error("error: \(error)")
                throw Exit.failed
            }
        }
    }
}
