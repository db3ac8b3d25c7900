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
            let results = await withTaskGroup(of: (String, Result<ImageSignature, any Error>).self) { group in
                for image in images {
                    group.addTask {
                        do {
                            let signature = try ImageSigning.sign(imageAt: image, key: signingKey, padding: padding)
                            try ImageSigning.writeSidecars(signature, forImageAt: image)
                            return (image, .success(signature))
                        } catch {
                            return (image, .failure(error))
                        }
                    }
                }
                var all: [String: Result<ImageSignature, any Error>] = [:]
                for await (image, result) in group { all[image] = result }
                return all
            }
            var failed = false
            for image in images {
                switch results[image]! {
                case .success(let signature):
                    print("\(image): signed, sha256 \(signature.sha256), \(signature.size) bytes, key \(signature.keyFingerprint)")
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
            abstract: "Check an image's size, SHA-256 and signature; say exactly which check failed.",
            discussion: """
            Reads IMAGE.sha256 and IMAGE.sig beside the image, and the size recorded in IMAGE.intoto.json when present. \
            Exit 0 when every check passes, 1 when one fails, 2 when the key or the sidecars cannot be read.
            """)

        @Argument(help: "The .img file.") var image: String
        @Option(help: "Public key (PEM). Default: signing.public_key of the manifest.") var key: String?
        @Option(help: "RSA padding: pkcs1 or pss. Default: the manifest's, else pkcs1.") var rsaPadding: String?
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
            let recorded = ProvenanceSidecar.recordedSubject(forImage: image)
            let report: ImageVerification
            do {
                report = try ImageSigning.verify(imageAt: image, publicKey: publicKey, padding: padding, expectedSize: recorded?.size)
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            var failures = report.failures
            if let recordedDigest = recorded?.sha256, recordedDigest != report.sha256 {
                failures.append("SHA-256 \(report.sha256) differs from the provenance record's \(recordedDigest)")
            }
            if failures.isEmpty {
                print(report.description)
            } else {
                Output.error("\(image): FAILED: " + failures.joined(separator: "; "))
                throw Exit.failed
            }
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
