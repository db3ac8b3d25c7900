import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Sign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign images built elsewhere, or re-sign after a key rotation, exactly as build does.",
            discussion: """
            Writes IMAGE.sha256 (sha256sum format) and IMAGE.sig (verifiable with \
            `openssl dgst -sha256 -verify PUB -signature IMAGE.sig IMAGE`), each through a temporary file and a rename. \
            When IMAGE.intoto.json is there, its statement must name this image (file name, SHA-256, size); its DSSE \
            signature is then replaced by one of this key over the unchanged payload. An image without one stays \
            without: `verify` then needs --no-provenance. \
            Without --key the manifest's signing settings (key and passphrase source) are used. Several images are signed in parallel.
            """)

        @Argument(help: "Raw .img files to sign.") var images: [String]
        @Option(help: "Private key (PEM). Default: signing.private_key of the manifest.") var key: String?
        @Option(help: "Environment variable holding the key's passphrase (with --key).") var passphraseEnv: String?
        @Option(help: "File holding the key's passphrase (with --key).") var passphraseFile: String?
        @Option(help: "RSA padding: pkcs1 or pss. Default: the manifest's, else pkcs1.") var rsaPadding: String?
        @OptionGroup var options: ManifestOptions

        func run() async throws {
            let (signingKey, padding) = try loadKey()
            let results = await withTaskGroup(of: (String, Result<(ImageSignature, Bool), any Error>).self) { group in
                for image in images {
                    group.addTask {
                        do {
                            let signature = try ImageSigning.sign(imageAt: image, key: signingKey, padding: padding)
                            // The provenance beside the image (if any) is re-signed with the same key, once its
                            // statement is seen to describe this image, so `verify` checks it with the new key.
                            let provenance = ProvenanceDocument.path(forImage: image)
                            let hasProvenance = FileManager.default.fileExists(atPath: provenance)
                            if hasProvenance {
                                try ProvenanceSidecar.resign(at: provenance, imageName: (image as NSString).lastPathComponent,
                                                             size: signature.size, sha256: signature.sha256, key: signingKey, padding: padding)
                            }
                            try ImageSigning.writeSidecars(signature, forImageAt: image)
                            return (image, .success((signature, hasProvenance)))
                        } catch {
                            return (image, .failure(error))
                        }
                    }
                }
                var all: [String: Result<(ImageSignature, Bool), any Error>] = [:]
                for await (image, result) in group { all[image] = result }
                return all
            }
            var failed = false
            for image in images {
                switch results[image]! {
                case .success(let (signature, hasProvenance)):
                    let provenance = hasProvenance ? "provenance re-signed" : "no provenance file (verify it with --no-provenance)"
                    print("\(image): signed, sha256 \(signature.sha256), \(signature.size) bytes, key \(signature.keyFingerprint); \(provenance)")
                case .failure(let error):
                    failed = true
                    Output.error("error: \(error)")
                }
            }
            if failed { throw Exit.failed }
        }

        func loadKey() throws -> (SigningKey, RSAPadding) {
            let environment = ProcessInfo.processInfo.environment
            do {
                if let key {
                    var passphrase: Secret?
                    if let name = passphraseEnv {
                        guard let value = environment[name] else { throw ValidationError("environment variable \(name) is not set") }
                        passphrase = Secret(value)
                    } else if let file = passphraseFile {
                        guard var bytes = FileManager.default.contents(atPath: file).map(Array.init) else { throw ValidationError("cannot read \(file)") }
                        if bytes.last == 10 { bytes.removeLast() }
                        passphrase = Secret(bytes)
                    }
                    return (try SigningKey.load(contentsOf: key, passphrase: passphrase), try padding(nil))
                }
                let manifest = try ManifestAccess.read(options.manifest)
                var passphrase: Secret?
                if let source = manifest.signing.passphrase {
                    switch SecretResolver(manifest: manifest, environment: environment).signingPassphrase(source.value) {
                    case .success(let secret): passphrase = secret
                    case .failure(let problem): throw BadInput(description: "\(source.path): \(problem)")
                    }
                }
                let path = manifest.directory + "/" + manifest.signing.privateKey.value
                return (try SigningKey.load(contentsOf: path, passphrase: passphrase), try padding(manifest.signing.rsaPadding))
            } catch let error as ValidationError {
                throw error
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
        }

        func padding(_ fromManifest: String?) throws -> RSAPadding {
            guard let text = rsaPadding ?? fromManifest else { return .pkcs1 }
            guard let value = RSAPadding(rawValue: text) else { throw ValidationError("--rsa-padding must be pkcs1 or pss") }
            return value
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an image's SHA-256, signature and signed provenance; say exactly which check failed.",
            discussion: """
            Checks IMAGE.sha256 (the image's SHA-256), IMAGE.sig (a signature of the image by the key) and \
            IMAGE.intoto.json: a DSSE envelope of payload type application/vnd.in-toto+json, signed by the same key \
            over PAE(payloadType, payload) (DSSE v1), around an in-toto Statement v1 with a SLSA Provenance v1 \
            predicate whose subject is this image (its file name, SHA-256 and size). Nothing in the provenance file is \
            used before its signature is checked. A missing provenance file is a failure; --no-provenance accepts its \
            absence (an image built elsewhere and signed with `fleet-images sign`) and says so in the result. \
            Exit 0 when every check passes, 1 when any check fails (each one is named), 2 when the image or the key \
            cannot be read or the command line is wrong.
            """)

        @Argument(help: "The .img file.") var image: String
        @Option(help: "Public key (PEM). Default: signing.public_key of the manifest.") var key: String?
        @Option(help: "RSA padding: pkcs1 or pss. Default: the manifest's, else pkcs1.") var rsaPadding: String?
        @Flag(help: "Accept an image that has no IMAGE.intoto.json (built elsewhere, signed with `sign`); one that is there is still checked.")
        var noProvenance = false
        @OptionGroup var options: ManifestOptions

        func run() async throws {
            let publicKey: VerifyingKey
            var manifestPadding: String?
            do {
                if let key {
                    publicKey = try VerifyingKey.load(contentsOf: key)
                } else {
                    let manifest = try ManifestAccess.read(options.manifest)
                    manifestPadding = manifest.signing.rsaPadding
                    publicKey = try VerifyingKey.load(contentsOf: manifest.directory + "/" + manifest.signing.publicKey.value)
                }
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            guard let padding = RSAPadding(rawValue: rsaPadding ?? manifestPadding ?? "pkcs1") else {
                throw ValidationError("--rsa-padding must be pkcs1 or pss")
            }
            // The image first: a missing image is a missing image, not a missing sidecar.
            var info = stat()
            guard stat(image, &info) == 0 else {
                Output.error("error: \(image): no such image (\(String(cString: strerror(errno))))")
                throw Exit.badInput
            }
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                Output.error("error: \(image): not a regular file; give the .img file itself")
                throw Exit.badInput
            }

            var failures: [String] = []
            // Provenance: its signature is checked before anything in it (the recorded size) is used.
            var statement: ProvenanceSidecar.Statement?
            var provenanceAbsent = false
            do {
                statement = try ProvenanceSidecar.verify(at: ProvenanceDocument.path(forImage: image), publicKey: publicKey, padding: padding)
            } catch {
                if case .missing = error, noProvenance { provenanceAbsent = true } else { failures.append(error.description) }
            }
            let names = Self.names(of: image)
            let expectedSize = statement.flatMap { statement in names.lazy.compactMap(statement.recordedSize(name:)).first }

            var measured: (size: UInt64, sha256: String)?
            var summary = ""
            do {
                let report = try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: padding, expectedSize: expectedSize)
                failures.insert(contentsOf: report.failures, at: 0)
                measured = (report.size, report.sha256)
                summary = "\(report.size) bytes, sha256 \(report.sha256), signed by \(report.keyFingerprint)"
            } catch {
                switch error {
                case .sidecarMissing, .sidecarMalformed:
                    failures.insert(error.description, at: 0)
                    do { measured = try ImageSigning.measure(imageAt: image) } catch {
                        Output.error("error: \(error)")
                        throw Exit.badInput
                    }
                default:
                    Output.error("error: \(error)")
                    throw Exit.badInput
                }
            }
            if let statement, let measured {
                do { try statement.check(names: names, size: measured.size, sha256: measured.sha256) } catch { failures.append(error.description) }
            }
            guard failures.isEmpty else {
                Output.error("\(image): FAILED: " + failures.joined(separator: "; "))
                throw Exit.failed
            }
            let provenance = provenanceAbsent
                ? "no provenance file, accepted with --no-provenance"
                : "provenance \((ProvenanceDocument.path(forImage: image) as NSString).lastPathComponent) signed by the same key, its subject is this image"
            print("\(image): OK (\(summary); \(provenance))")
        }

        /// The names a provenance subject may give the image: the file name given and, through links, the real one.
        static func names(of image: String) -> [String] {
            var names = [(image as NSString).lastPathComponent]
            if let resolved = realpath(image, nil) {
                defer { free(resolved) }
                let name = (String(cString: resolved) as NSString).lastPathComponent
                if !names.contains(name) { names.append(name) }
            }
            return names
        }
    }

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an image-signing key pair: OUT.key.pem (mode 0600) and OUT.pub.pem.",
            discussion: "Refuses to overwrite either file. Prints the public key's SHA-256 fingerprint, as provenance records show it.")

        @Option(help: "Key type: ec-p256, ec-p384, rsa-3072 or rsa-4096.") var type: String = "ec-p256"
        @Option(help: "Path prefix of the two files, e.g. keys/fleet-signing.") var out: String

        func validate() throws {
            guard Self.kinds[type] != nil else { throw ValidationError("--type must be one of \(Self.kinds.keys.sorted().joined(separator: ", "))") }
        }

        static let kinds: [String: KeyKind] = ["ec-p256": .ecP256, "ec-p384": .ecP384, "rsa-3072": .rsa3072, "rsa-4096": .rsa4096]

        func run() async throws {
            do {
                let fingerprint = try KeyGeneration.generate(Self.kinds[type]!, privateKeyPath: out + ".key.pem", publicKeyPath: out + ".pub.pem")
                print("wrote \(out).key.pem (0600) and \(out).pub.pem")
                print("fingerprint \(fingerprint)")
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
        }
    }
}

struct BadInput: Error, CustomStringConvertible {
    var description: String
}

/// Reads just the manifest's shape (for commands that need only its settings, not a full validation).
enum ManifestAccess {
    static func read(_ path: String) throws -> Manifest {
        let (manifest, diagnostics) = ManifestReader.read(path: path)
        guard let manifest else {
            throw BadInput(description: diagnostics.map(\.description).joined(separator: "\n"))
        }
        return manifest
    }
}
