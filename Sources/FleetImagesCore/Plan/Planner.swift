import Foundation

/// One input of a variant with its digest. Secret-bearing inputs (private keys, Wi-Fi keyfiles)
/// get an HMAC-SHA-256 under the state's local key instead of a plain SHA-256: a plain digest of a
/// passphrase can be brute-forced from a stolen database or a published plan.
public struct InputDigest: Sendable, Codable, Equatable {
    public var role: String
    public var name: String
    /// `sha256` or `hmac-sha256`.
    public var algorithm: String
    public var digest: String
}

/// A variant ready to build: what goes into its image and the digest of everything it depends on.
public struct PlannedVariant: Sendable {
    public var variant: Variant
    public var items: [ContentItem]
    public var inputs: [InputDigest]
    /// SHA-256 over the canonical description of the variant, its inputs' digests, the base
    /// image, the builder and the tool version. Equal digests mean an identical image.
    public var inputsDigest: String
}

/// The expanded fleet with every variant's inputs digest: what `plan` prints and `build` runs.
public struct Plan: Sendable {
    public var manifest: Manifest
    public var variants: [PlannedVariant]
    public var baseImageDigest: String
    /// What the base image runs, and so which first-boot format every variant is written in.
    public var os: DeviceOS
}

public struct Planner: Sendable {
    public var manifest: Manifest
    public var environment: [String: String]
    /// The state's local HMAC key (see ``StateSecretKey``).
    public var secretKey: [UInt8]

    public init(manifest: Manifest, environment: [String: String], secretKey: [UInt8]) {
        self.manifest = manifest
        self.environment = environment
        self.secretKey = secretKey
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Plans `variants` (already checked by ``ManifestChecker``) for a base image running `os`.
    /// Variants are planned on every core; a failure is the first in manifest order.
    public func plan(_ variants: [Variant], os: DeviceOS) throws -> Plan {
        let resolver = SecretResolver(manifest: manifest, environment: environment)
        let shared = Shared(base: baseImageIdentity(), builder: try builderIdentity(resolver: resolver), os: os,
                            fileDigests: ConcurrentCache(), keyedDigests: ConcurrentCache())
        let planned = variants.concurrentMap { variant in Result { try plan(variant, shared, resolver: resolver) } }
        return Plan(manifest: manifest, variants: try planned.map { try $0.get() }, baseImageDigest: shared.base.digest, os: os)
    }

    /// What every variant's plan uses: the fleet-wide parts of the identity, and the digests of
    /// files many variants share (each file is read once).
    private struct Shared: Sendable {
        var base: BaseIdentity
        var builder: (identity: BuilderIdentity, inputs: [InputDigest])
        var os: DeviceOS
        var fileDigests: ConcurrentCache<String>
        var keyedDigests: ConcurrentCache<String>
    }

    private func plan(_ variant: Variant, _ shared: Shared, resolver: SecretResolver) throws -> PlannedVariant {
        var secrets = VariantSecrets()
        if let wifi = variant.wifi {
            switch resolver.passphrase(wifi.psk) {
            case .success(let value): secrets.psk = value
            case .failure(let problem): throw Failure(description: "\(wifi.pskPath): \(problem)")
            }
        }
        if let user = variant.user, let source = user.passwordHash {
            switch resolver.passwordHash(source) {
            case .success(let value): secrets.passwordHash = value
            case .failure(let problem): throw Failure(description: "\(user.passwordHashPath ?? user.namePath): \(problem)")
            }
        }
        var keyInputs: [InputDigest] = []
        for key in variant.ssh?.authorizedKeys ?? [] {
            for (index, parsed) in try authorizedKeys(key).enumerated() {
                secrets.authorizedKeys.append(parsed.line)
                keyInputs.append(InputDigest(role: "ssh-authorized-key", name: "\(key.file)#\(index + 1)", algorithm: "ssh-fingerprint", digest: parsed.fingerprint))
            }
        }
        let os = shared.os
        let items = VariantContent.items(for: variant, manifest: manifest, os: os, secrets: secrets)
        var inputs: [InputDigest] = shared.builder.inputs + keyInputs
        var described: [CanonicalItem] = []
        for item in items {
            var digest: InputDigest?
            switch item.source {
            case .file(let relative, let secret):
                let role = [VariantContent.claimCertificatePath, VariantContent.legacyClaimCertificatePath].contains(item.destination) ? "claim-certificate"
                    : [VariantContent.claimKeyPath, VariantContent.legacyClaimKeyPath].contains(item.destination) ? "claim-private-key" : "file"
                if secret {
                    let value = try shared.keyedDigests.value(for: relative) { try hmacOfFile(relative) }
                    digest = InputDigest(role: role, name: relative, algorithm: "hmac-sha256", digest: value)
                } else {
                    let value = try shared.fileDigests.value(for: relative) { try sha256OfFile(relative) }
                    digest = InputDigest(role: role, name: relative, algorithm: "sha256", digest: value)
                }
            case .generated(let name, let bytes, let secret):
                digest = secret
                    ? InputDigest(role: "generated-secret", name: name, algorithm: "hmac-sha256", digest: Digest.hmacSHA256Hex(key: secretKey, message: bytes))
                    : InputDigest(role: "generated", name: name, algorithm: "sha256", digest: Digest.sha256Hex(bytes))
            case .hostsEntry, .kernelParameter, .directory, .symlink:
                digest = nil
            }
            if let digest { inputs.append(digest) }
            described.append(CanonicalItem(item, digest: digest?.digest))
        }
        let canonical = CanonicalVariant(
            tool: FleetImagesVersion.current, fleet: manifest.fleet, base: shared.base, os: [os.codename, os.initFormat.rawValue], builder: shared.builder.identity,
            id: variant.id, site: variant.site, axes: variant.axes, region: variant.region,
            iot: [variant.iot.dataEndpoint, variant.iot.credentialEndpoint, variant.iot.roleAlias, variant.iot.provisioningTemplate],
            wifi: variant.wifi.map { [$0.ssid, $0.country, $0.hidden ? "hidden" : "visible"] }, hostname: variant.hostname,
            items: described)
        return PlannedVariant(variant: variant, items: items, inputs: inputs, inputsDigest: Digest.sha256Hex(canonical.json()))
    }

    /// The keys of an OpenSSH public key file, parsed (comments and blank lines dropped).
    func authorizedKeys(_ key: Variant.SSH.Key) throws -> [SSHPublicKey] {
        do { return try SSHPublicKey.load(contentsOf: manifest.directory + "/" + key.file, shown: key.file) } catch {
            throw Failure(description: "\(key.path): \(error)")
        }
    }

    func sha256OfFile(_ relative: String) throws -> String {
        do { return try Digest.sha256Hex(fileAt: manifest.directory + "/" + relative) } catch {
            throw Failure(description: "\(relative): \(error)")
        }
    }

    func hmacOfFile(_ relative: String) throws -> String {
        // Never blocks: a file swapped for a FIFO after validate is refused, not waited on.
        switch InputFile.read(manifest.directory + "/" + relative, shown: relative, what: "secret input") {
        case .success(let bytes): return Digest.hmacSHA256Hex(key: secretKey, message: bytes)
        case .failure(let problem): throw Failure(description: "\(relative): \(problem)")
        }
    }

    struct BaseIdentity: Encodable, Sendable {
        var source: String
        var digest: String
        var arch: String
        var boot: Int?
        var root: Int?
        var bootMount: String
    }

    func baseImageIdentity() -> BaseIdentity {
        let spec = manifest.baseImage
        let source: String
        switch spec.source {
        case .path(let path): source = path
        case .url(let url): source = url
        }
        let digest = spec.sha256.map { "sha256:" + $0 } ?? "checksum-url:" + (spec.checksumURL ?? "")
        return BaseIdentity(source: source, digest: digest, arch: spec.arch, boot: spec.bootPartition, root: spec.rootPartition, bootMount: spec.bootMount)
    }

    struct BuilderIdentity: Encodable, Sendable {
        var kind: String
        var image: String?
        var template: String?
        var dockerArgs: [String]?
        var mode: String?
        /// Digest of every file beside the Packer template (the template itself, set_os.sh, …):
        /// editing any of them changes what Packer runs, so it rebuilds every variant.
        var templateFolder: [String: String]?
        /// `builder.variables`: name → digest of the value (an HMAC for a secret one).
        var variables: [String: String]?
    }

    /// The builder's part of every variant's identity, and the inputs every variant records for
    /// the template variables the manifest sets (names and digests, never values).
    func builderIdentity(resolver: SecretResolver) throws -> (BuilderIdentity, [InputDigest]) {
        let b = manifest.builder
        guard b.kind == .packerDocker else { return (BuilderIdentity(kind: b.kind.rawValue), []) }
        var variableInputs: [InputDigest] = []
        var variableDigests: [String: String] = [:]
        for variable in b.variables {
            let value: Secret
            switch resolver.packerVariable(variable) {
            case .success(let resolved): value = resolved
            case .failure(let problem): throw Failure(description: "\(variable.path): \(problem)")
            }
            let role = BuildInputRole.packerVariable.rawValue
            let input = variable.isSecret
                ? InputDigest(role: role, name: variable.name, algorithm: "hmac-sha256", digest: Digest.hmacSHA256Hex(key: secretKey, message: value.unsafeBytes))
                : InputDigest(role: role, name: variable.name, algorithm: "sha256", digest: Digest.sha256Hex(value.unsafeBytes))
            variableInputs.append(input)
            variableDigests[variable.name] = input.algorithm + ":" + input.digest
        }
        var folderDigests: [String: String]?
        if let template = b.template {
            let folder = ((manifest.directory + "/" + template) as NSString).deletingLastPathComponent
            var digests: [String: String] = [:]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue,
                      let digest = try? Digest.sha256Hex(fileAt: folder + "/" + name) else { continue }
                digests[name] = digest
            }
            folderDigests = digests
        }
        let identity = BuilderIdentity(kind: b.kind.rawValue, image: b.image, template: b.template, dockerArgs: b.dockerArgs,
                                       mode: b.packerMode.rawValue, templateFolder: folderDigests,
                                       variables: variableDigests.isEmpty ? nil : variableDigests)
        return (identity, variableInputs)
    }

    struct CanonicalItem: Encodable {
        var destination: String
        var partition: String
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var source: String
        var digest: String?

        init(_ item: ContentItem, digest: String?) {
            destination = item.destination
            partition = item.partition.rawValue
            mode = item.mode
            uid = item.uid
            gid = item.gid
            switch item.source {
            case .file(let path, _): source = "file:" + path
            case .generated(let name, _, _): source = "generated:" + name
            case .hostsEntry(let hostname): source = "hosts:" + hostname
            case .kernelParameter(let key, let value): source = "cmdline:\(key)=\(value)"
            case .directory: source = "directory"
            case .symlink(let target): source = "symlink:" + target
            }
            self.digest = digest
        }
    }

    /// The description the inputs digest is taken of. `Encodable` for the test that holds
    /// ``json()`` to `JSONEncoder`'s bytes (sorted keys, slashes unescaped), which it was until
    /// the encoder's cost showed in a 5,000-variant no-op.
    struct CanonicalVariant: Encodable {
        var tool: String
        var fleet: String
        var base: BaseIdentity
        /// Release and first-boot format: the same manifest writes other files on another OS.
        var os: [String]
        var builder: BuilderIdentity
        var id: String
        var site: String
        var axes: [Variant.AxisValue]
        var region: String
        var iot: [String]
        var wifi: [String]?
        var hostname: String
        var items: [CanonicalItem]
    }
}

extension Planner.CanonicalVariant {
    /// The canonical JSON text of this description (see ``CanonicalJSON``): keys in the order of
    /// their bytes, optional fields left out when nil, as synthesized `Encodable` does.
    func json() -> [UInt8] {
        var out = CanonicalJSON()
        out.beginObject()
        out.key("axes")
        out.beginArray()
        for axis in axes {
            out.element()
            out.beginObject()
            out.key("axis"); out.string(axis.axis)
            out.key("value"); out.string(axis.value)
            out.endObject()
        }
        out.endArray()
        out.key("base"); out.base(base)
        out.key("builder"); out.builder(builder)
        out.key("fleet"); out.string(fleet)
        out.key("hostname"); out.string(hostname)
        out.key("id"); out.string(id)
        out.key("iot"); out.strings(iot)
        out.key("items")
        out.beginArray()
        for item in items {
            out.element()
            out.item(item)
        }
        out.endArray()
        out.key("os"); out.strings(os)
        out.key("region"); out.string(region)
        out.key("site"); out.string(site)
        out.key("tool"); out.string(tool)
        if let wifi { out.key("wifi"); out.strings(wifi) }
        out.endObject()
        return out.bytes
    }
}

private extension CanonicalJSON {
    mutating func base(_ base: Planner.BaseIdentity) {
        beginObject()
        key("arch"); string(base.arch)
        if let boot = base.boot { key("boot"); integer(boot) }
        key("bootMount"); string(base.bootMount)
        key("digest"); string(base.digest)
        if let root = base.root { key("root"); integer(root) }
        key("source"); string(base.source)
        endObject()
    }

    mutating func builder(_ builder: Planner.BuilderIdentity) {
        beginObject()
        if let arguments = builder.dockerArgs { key("dockerArgs"); strings(arguments) }
        if let image = builder.image { key("image"); string(image) }
        key("kind"); string(builder.kind)
        if let mode = builder.mode { key("mode"); string(mode) }
        if let template = builder.template { key("template"); string(template) }
        if let folder = builder.templateFolder { key("templateFolder"); object(folder) }
        if let variables = builder.variables { key("variables"); object(variables) }
        endObject()
    }

    mutating func item(_ item: Planner.CanonicalItem) {
        beginObject()
        key("destination"); string(item.destination)
        if let digest = item.digest { key("digest"); string(digest) }
        key("gid"); integer(item.gid)
        key("mode"); integer(item.mode)
        key("partition"); string(item.partition)
        key("source"); string(item.source)
        key("uid"); integer(item.uid)
        endObject()
    }
}
