import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Flash: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a checked image to a card: refuses an image that fails a check and a device that is in use.",
            discussion: """
            IMAGE is a .img, .img.xz or .img.zst file, or a variant of the manifest (its latest image). \
            Before anything is written the image is read once and checked: its size and SHA-256 against \
            IMAGE.sha256, its signature, its signed provenance, the compressed file's own .sha256, and its \
            block map against the image. DEVICE must be a whole block device that is not mounted, not in \
            use, not the system's disk and not smaller than the image. Only the block map's data blocks \
            are written (streamed from the compressed file when one is given), then the device is synced \
            and what was written is read back and checked. Asks before writing unless --yes. \
            Exit 0 written and checked · 1 the image failed a check (nothing written) or the write or \
            read-back failed · 2 bad device or arguments (nothing written).
            """)

        @Argument(help: "A .img / .img.xz / .img.zst file, or a variant id of the manifest.") var image: String
        @Argument(help: "The card's whole block device, e.g. /dev/sdb or /dev/mmcblk0.") var device: String
        @Flag(name: .shortAndLong, help: "Write without asking (for scripts; the checks still run).") var yes = false
        @Option(help: "Public key (PEM). Default: signing.public_key of the manifest.") var key: String?
        @Option(help: "RSA padding: pkcs1 or pss. Default: the manifest's, else pkcs1.") var rsaPadding: String?
        @Flag(help: "Accept an image without IMAGE.intoto.json (built elsewhere); one that is there is still checked.") var noProvenance = false
        @OptionGroup var manifestOptions: ManifestOptions
        @Option(help: "State folder (for a variant id). Default: .fleet-images beside the manifest.") var state: String?

        func run() async throws {
            // The device first: a wrong one is found before the image is read.
            let target: BlockDevice
            do { target = try BlockDevice.inspect(device) } catch {
                Output.error("error: \(error); nothing was written")
                throw Exit.badInput
            }
            let manifest = FileManager.default.fileExists(atPath: manifestOptions.manifest) ? ManifestReader.read(path: manifestOptions.manifest).manifest : nil
            let source = try resolveSource(manifest)
            let publicKey: VerifyingKey
            do {
                if let key {
                    publicKey = try VerifyingKey.load(contentsOf: key)
                } else if let manifest {
                    publicKey = try VerifyingKey.load(contentsOf: manifest.directory + "/" + manifest.signing.publicKey.value)
                } else {
                    Output.error("error: no public key to check the image with: pass --key PUB.pem (or run in the fleet's folder)")
                    throw Exit.badInput
                }
            } catch let exit as ExitCode { throw exit } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            guard let padding = RSAPadding(rawValue: rsaPadding ?? manifest?.signing.rsaPadding ?? "pkcs1") else {
                throw ValidationError("--rsa-padding must be pkcs1 or pss")
            }
            Output.error("checking \(source.path) …")
            let verified: ImageFlasher.Verified
            do { verified = try ImageFlasher.verify(source, publicKey: publicKey, padding: padding, requireProvenance: !noProvenance) } catch {
                Output.error("\(error.description); nothing was written to \(device)")
                throw error.isInputProblem ? Exit.badInput : Exit.failed
            }
            let mapped = verified.blockMap.map { "\(Self.size(verified.bytesToWrite)) of data in \($0.rangeCount) ranges" } ?? "no block map: every block"
            Output.error("image OK: \(Self.size(verified.size)), sha256 \(verified.sha256), signed by \(verified.keyFingerprint)"
                         + (verified.provenance ? ", provenance checked" : ", no provenance (--no-provenance)") + "; \(mapped)")
            guard target.size >= verified.size else {
                Output.error("error: \(device) holds \(Self.size(target.size)), the image \(Self.size(verified.size)): use a larger card; nothing was written")
                throw Exit.badInput
            }
            if !yes { try confirm(target, verified) }
            let interactive = isatty(2) == 1
            var lastStep = -1
            let started = Date()
            do {
                let written = try ImageFlasher.write(source, verified, to: target) { done, total in
                    let percent = total == 0 ? 100 : Int(done * 100 / total)
                    if interactive {
                        let bar = String(repeating: "#", count: percent / 4) + String(repeating: " ", count: 25 - percent / 4)
                        FileHandle.standardError.write(Data("\r[\(bar)] \(percent)% \(Self.size(done)) of \(Self.size(total))".utf8))
                    } else if percent / 10 > lastStep {
                        lastStep = percent / 10
                        Output.error("written \(percent)% (\(Self.size(done)) of \(Self.size(total)))")
                    }
                }
                if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
                let seconds = Date().timeIntervalSince(started)
                print("\(device): wrote \(source.path) (\(Self.size(written.bytes)) in \(String(format: "%.1f", seconds)) s), synced, read back \(Self.size(written.readBack)): OK")
            } catch {
                if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
                Output.error("error: \(error)")
                throw error.isInputProblem ? Exit.badInput : Exit.failed
            }
        }

        /// A file as given, else the latest image of the variant of that id.
        func resolveSource(_ manifest: Manifest?) throws -> FlashSource {
            if FileManager.default.fileExists(atPath: image) { return FlashSource(path: image) }
            guard let manifest else {
                Output.error("error: \(image): no such image file (and no manifest \(manifestOptions.manifest) to find a variant of that name in); nothing was written")
                throw Exit.badInput
            }
            let (_, variantIDs, store) = try StateOptions.open(manifestPath: manifestOptions.manifest, state: state)
            guard variantIDs?.contains(image) == true else {
                let hint = Suggestion.closest(to: image, among: variantIDs ?? []).map { " (did you mean \($0)?)" } ?? ""
                Output.error("error: \(image) is neither an image file nor a variant of \(manifest.fleet)\(hint); nothing was written")
                throw Exit.badInput
            }
            guard let build = try? store?.latestBuildsWithImages(variantIDs: [image])[image], let raw = build.artifactPath else {
                Output.error("error: \(image) has no image yet: run `fleet-images build`; nothing was written")
                throw Exit.badInput
            }
            if FileManager.default.fileExists(atPath: raw) { return FlashSource(path: raw) }
            if let compressed = build.compressedPath, FileManager.default.fileExists(atPath: compressed) { return FlashSource(path: compressed) }
            Output.error("error: the latest image of \(image) (\(raw)) is gone (pruned or moved): build it again; nothing was written")
            throw Exit.badInput
        }

        /// Names the device, its size and model; only "yes" goes on.
        func confirm(_ target: BlockDevice, _ verified: ImageFlasher.Verified) throws {
            guard isatty(0) == 1 else {
                Output.error("error: not asking on a non-terminal: pass --yes to write \(device) (\(Self.size(target.size)), \(target.model)) without a prompt; nothing was written")
                throw Exit.badInput
            }
            FileHandle.standardError.write(Data("Write \(image) to \(device) (\(Self.size(target.size)), \(target.model))? Everything on it is lost. Type yes: ".utf8))
            guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
                Output.error("not confirmed; nothing was written")
                throw Exit.failed
            }
        }

        static func size(_ bytes: UInt64) -> String {
            bytes >= 1 << 30 ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.1f MiB", Double(bytes) / Double(1 << 20))
        }
    }
}
