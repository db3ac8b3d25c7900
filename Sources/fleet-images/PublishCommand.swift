import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a Raspberry Pi Imager repository of the fleet: an os_list JSON with one entry per built variant.",
            discussion: """
            Serve the output folder at --base-url; technicians then open the list with \
            `rpi-imager --repo BASE-URL/os_list.json` (or a local path to the file) and pick their site. \
            Each entry names the latest image of a variant (its compressed copy when output.compress is set), \
            with the uncompressed image's size and SHA-256, which Imager checks as it writes. \
            Only the database is read; nothing is built or hashed. Variants without an image are left out and named.
            """)

        @OptionGroup var manifestOptions: ManifestOptions
        @Option(help: "State folder. Default: .fleet-images beside the manifest.") var state: String?
        @Option(help: "The http(s) URL the output folder is served at, e.g. https://images.example.com/fleet/.")
        var baseURL: String
        @Option(help: "Where to write the list. Default: <output>/os_list.json.")
        var out: String?
        @Option(name: .customLong("device"), help: "An Imager device tag the images run on (repeatable). Default: pi5, pi4, pi3 for arm64; pi4-32bit, pi3-32bit, pi2-32bit for armhf.")
        var devices: [String] = []
        @Flag(help: "Let Imager offer its own customization (init_format of the OS: systemd on Bookworm, cloudinit-rpi on Trixie). Default init_format none: these images are customized already, and Imager's settings would override the fleet's.")
        var imagerCustomization = false

        func validate() throws {
            if case .failure(let problem) = ImagerRepository.baseURL(baseURL) { throw ValidationError(problem.description) }
            for device in devices where device.isEmpty || device.contains(where: { $0.isWhitespace }) {
                throw ValidationError("--device \"\(device)\": an Imager device tag such as pi5 or pi4-32bit")
            }
        }

        func run() async throws {
            guard case .success(let base) = ImagerRepository.baseURL(baseURL) else { throw Exit.badInput }
            let (manifestOrNil, _, storeOrNil) = try StateOptions.open(manifestPath: manifestOptions.manifest, state: state)
            guard let manifest = manifestOrNil else {
                Output.error("error: publish needs the manifest (its variants and output folder)")
                throw Exit.badInput
            }
            let variants = Expansion.expand(manifest, overlays: Overlay.scan(manifest: manifest).overlays).variants
            let outputDirectory = manifest.directory + "/" + manifest.output.directory
            let target = out.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 } ?? outputDirectory + "/os_list.json"
            let builds: [String: BuildRecord]
            do { builds = try storeOrNil?.latestBuildsWithImages(variantIDs: variants.map(\.id)) ?? [:] } catch {
                Output.error("error: \(error)")
                throw Exit.failed
            }
            var os: DeviceOS?
            if imagerCustomization {
                let state = StateLocation(manifestDirectory: manifest.directory, override: state)
                os = try? await BuildRunner.defaultOSDetection(manifest, state: state, variants: variants, log: { _ in })
                if os == nil {
                    Output.error("error: --imager-customization needs the base image's OS, and it cannot be read; run a build first")
                    throw Exit.failed
                }
            }
            let (architecture, defaultDevices) = ImagerRepository.imagerArchitecture(manifest.baseImage.arch)
            let repository = ImagerRepository.make(fleet: manifest.fleet, variants: variants, builds: builds, outputDirectory: outputDirectory,
                                                   baseURL: base, architecture: architecture, devices: devices.isEmpty ? defaultDevices : devices,
                                                   os: os, imagerCustomization: imagerCustomization)
            for skipped in repository.skipped { Output.error("warning: \(skipped.variant) left out: \(skipped.reason)") }
            guard !repository.entries.isEmpty else {
                Output.error("error: nothing to publish: no variant of \(manifest.fleet) has an image in \(outputDirectory)")
                throw Exit.failed
            }
            do {
                let group = manifest.output.group.flatMap { getgrnam($0)?.pointee.gr_gid }
                try Self.write(try repository.json(), to: target, group: group)
                try Self.write(Data(ImagerRepository.icon(fleet: manifest.fleet).utf8), to: outputDirectory + "/" + ImagerRepository.iconName, group: group)
            } catch {
                Output.error("error: cannot write \(target): \(error.localizedDescription)")
                throw Exit.failed
            }
            Output.error("wrote \(target): \(repository.entries.count) of \(variants.count) variants; open it with `rpi-imager --repo \(base)\((target as NSString).lastPathComponent)`")
        }

        /// Through a temporary file and a rename, mode 0640 (and the output group), as the images.
        static func write(_ data: Data, to path: String, group: gid_t?) throws {
            let temporary = (path as NSString).deletingLastPathComponent + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
            guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o640]) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary])
            }
            if let group { _ = chown(temporary, getuid(), group) }
            guard rename(temporary, path) == 0 else {
                let code = errno
                unlink(temporary)
                throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
            }
        }
    }
}
