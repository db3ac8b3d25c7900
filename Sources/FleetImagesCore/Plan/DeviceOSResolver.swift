import Foundation

/// Finds out what the base image runs (``BaseImageInspector``), once per base image: the answer is
/// kept in the state's base-image cache as `<sha256>.os.json`, so `plan` and a nightly run with
/// nothing to build do not decompress or read the image again. Then checks the variants against
/// it: a first-boot command the image does not have, or a login for an image without the
/// UID-1000 user that Raspberry Pi OS renames, is bad input (exit 2) before anything is built.
public struct DeviceOSResolver: Sendable {
    public var manifest: Manifest
    /// The state's base-image cache (`<state>/cache/base`).
    public var cacheDirectory: String

    public init(manifest: Manifest, cacheDirectory: String) {
        self.manifest = manifest
        self.cacheDirectory = cacheDirectory
    }

    /// First-boot commands the manifest's own files do not place: they must be in the base image.
    public static func commandsToProbe(_ variants: [Variant]) -> [String] {
        var paths: Set<String> = []
        for variant in variants {
            guard case .unit(let command, _)? = variant.firstBoot?.mode, let program = command.first else { continue }
            if !variant.files.contains(where: { $0.destination == program }) { paths.insert(program) }
        }
        return paths.sorted()
    }

    public func resolve(for variants: [Variant], log: @escaping @Sendable (String) -> Void) async throws -> DeviceOS {
        let probe = Self.commandsToProbe(variants)
        let resolver = BaseImageResolver(manifest: manifest, cacheDirectory: cacheDirectory)
        // The digest the manifest expects (for a checksum_url, read from its cached download): a
        // cached answer is used without hashing the base image; a changed file is caught by the
        // full check when anything is built from it.
        let expected = try await resolver.expectedDigest(log: log)
        let cachePath = "\(cacheDirectory)/\(expected)\(overrideKey).os.json"
        if let data = FileManager.default.contents(atPath: cachePath),
           let cached = try? JSONDecoder().decode(DeviceOS.self, from: data),
           probe.allSatisfy({ cached.probedPaths[$0] != nil }) {
            return cached
        }
        let base = try await resolver.resolve(log: log)
        let os = try await BaseImageInspector(manifest: manifest).inspect(imagePath: base.imagePath, probe: probe)
        log("base image runs \(os.summary)")
        let key = "\(cacheDirectory)/\(base.sourceSHA256)\(overrideKey).os.json"
        if let data = try? JSONEncoder().encode(os) {
            // A cache: losing it costs one inspection, so a failed write is not an error.
            try? FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            try? ProvenanceAtomicFile.replace(Array(data), to: key, mode: 0o640)
        }
        return os
    }

    /// Part of the cache key: `base_image.os` changes what is concluded from the same bytes.
    var overrideKey: String {
        guard let os = manifest.baseImage.os?.value else { return "" }
        return "-" + os.codename + (os.initFormat.map { "-" + $0.rawValue } ?? "")
    }

    /// What the base image cannot do for these variants, with the manifest path to fix.
    public static func problems(_ variants: [Variant], os: DeviceOS) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        var seen = Set<String>()
        func report(_ diagnostic: Diagnostic) {
            if seen.insert(diagnostic.description).inserted { diagnostics.append(diagnostic) }
        }
        for variant in variants {
            if let firstBoot = variant.firstBoot, case .unit(let command, _) = firstBoot.mode, let program = command.first,
               !variant.files.contains(where: { $0.destination == program }), os.probedPaths[program] == false {
                report(.error(firstBoot.path.key("command"), "\(program) is not in the base image (\(os.prettyName)) and no \"files\" entry puts it there; add the script to \"files\" (owner \"0:0\", mode \"0700\") or name a command the image has"))
            }
            if os.initFormat == .userconf, os.firstUser == nil, let user = variant.user {
                report(.error(user.namePath, "the base image has no UID-1000 user in /etc/passwd, which Raspberry Pi OS's userconf.txt renames to \"\(user.name)\"; use a Raspberry Pi OS image (pi-gen creates that user)"))
            }
            if os.initFormat == .userconf, os.firstUser == nil, variant.user == nil, let key = variant.ssh?.authorizedKeys.first {
                report(.error(key.path, "the base image has no UID-1000 user in /etc/passwd whose authorized_keys could hold this key; use a Raspberry Pi OS image (pi-gen creates that user)"))
            }
        }
        return diagnostics
    }
}
