import Foundation

/// Checks what the manifest refers to: files exist and stay inside the manifest's folder,
/// secrets resolve and are well-formed, certificates parse, match their keys and are not
/// expired. Runs after ``Expansion`` so that every check sees the merged values, and reports
/// each problem once, at the path where the value was written.
public struct ManifestChecker: Sendable {
    public var manifest: Manifest
    public var environment: [String: String]
    public var now: Date
    /// Results of earlier certificate/key checks, reused for identical bytes (optional).
    public var claimCache: ClaimCheckCache?

    public init(manifest: Manifest, environment: [String: String], now: Date = Date(), claimCache: ClaimCheckCache? = nil) {
        self.manifest = manifest
        self.environment = environment
        self.now = now
        self.claimCache = claimCache
    }

    public func check(_ variants: [Variant]) -> [Diagnostic] {
        var diagnostics = Diagnostics()
        var checkedFiles = Set<String>()

        func requireFile(_ relative: String, at path: JSONPath, what: String) -> Bool {
            let key = relative + "\u{0}" + path.description
            if checkedFiles.contains(key) { return true }
            checkedFiles.insert(key)
            if let problem = fileProblem(relative, what: what) {
                diagnostics.error(path, problem)
                return false
            }
            return true
        }

        if case .path(let source) = manifest.baseImage.source {
            _ = requireFile(source, at: JSONPath.root.key("base_image").key("source"), what: "base image")
        }
        if manifest.builder.kind == .packerDocker, let template = manifest.builder.template {
            let templateOK = requireFile(template, at: JSONPath.root.key("builder").key("template"), what: "Packer template")
            var unreadable = Set<String>()
            for variable in manifest.builder.variables {
                if case .file(let relative) = variable.value, !requireFile(relative, at: variable.path, what: "file of a template variable") {
                    unreadable.insert(variable.name)
                }
            }
            checkPackerVariables(template: templateOK ? template : nil, skipping: unreadable, &diagnostics)
        }
        checkSigning(&diagnostics)

        // Parsing certificates and keys is most of the cost of a big fleet: do it on every core
        // first, then report in manifest order.
        let claimResults = precheckClaims(variants)

        var checkedPSK = Set<String>()
        var checkedClaims = Set<String>()
        var checkedHashes = Set<String>()
        var checkedKeys = Set<String>()
        var noLogin: [(variant: Variant, problem: String)] = []
        for variant in variants {
            let claimKey = variant.claim.certificate + "\u{0}" + variant.claim.privateKey
            if checkedClaims.insert(claimKey).inserted {
                let certOK = requireFile(variant.claim.certificate, at: variant.claim.certificatePath, what: "claim certificate")
                let keyOK = requireFile(variant.claim.privateKey, at: variant.claim.privateKeyPath, what: "claim private key")
                if keyOK { checkKeyPermissions(variant.claim.privateKey, at: variant.claim.privateKeyPath, &diagnostics) }
                if certOK && keyOK {
                    diagnostics.append(contentsOf: claimResults[claimKey] ?? [])
                }
            }
            if let wifi = variant.wifi, checkedPSK.insert(wifi.pskPath.description).inserted {
                switch SecretResolver(manifest: manifest, environment: environment).passphrase(wifi.psk) {
                case .success(let psk):
                    if let problem = WifiRules.checkPassphrase(psk) { diagnostics.error(wifi.pskPath, problem) }
                case .failure(let problem):
                    diagnostics.error(wifi.pskPath, problem.description)
                }
            }
            for file in variant.files {
                _ = requireFile(file.source, at: file.path.key("source"), what: "file")
            }
            if let user = variant.user, let source = user.passwordHash, let path = user.passwordHashPath,
               checkedHashes.insert(path.description).inserted {
                if case .file(let relative) = source, !requireFile(relative, at: path, what: "password hash file") {
                    // Reported already.
                } else if case .failure(let problem) = SecretResolver(manifest: manifest, environment: environment).passwordHash(source) {
                    diagnostics.error(path, problem.description)
                }
            }
            for key in variant.ssh?.authorizedKeys ?? [] where checkedKeys.insert(key.path.description).inserted {
                if requireFile(key.file, at: key.path, what: "public key file") {
                    checkPublicKeyFile(key, &diagnostics)
                }
            }
            checkFirstBootCommand(variant, &diagnostics)
            if let problem = Self.loginProblem(variant) { noLogin.append((variant, problem)) }
            diagnostics.append(contentsOf: VariantContent.conflicts(of: variant, manifest: manifest))
        }
        reportNoLogin(noLogin, total: variants.count, &diagnostics)
        // Report each problem once, in a stable order.
        var seen = Set<Diagnostic>()
        return diagnostics.items.filter { seen.insert($0).inserted }
    }

    /// Why `relative` cannot be used as an input file, or nil when it can.
    /// `builder.variables`: every value resolves (a secret's environment variable is set, its file
    /// readable), and the template declares every name (Packer refuses an undeclared one only
    /// once the container is up).
    func checkPackerVariables(template: String?, skipping unreadable: Set<String>, _ diagnostics: inout Diagnostics) {
        let variables = manifest.builder.variables
        guard !variables.isEmpty else { return }
        let resolver = SecretResolver(manifest: manifest, environment: environment)
        for variable in variables where !unreadable.contains(variable.name) {
            if case .failure(let problem) = resolver.packerVariable(variable) {
                diagnostics.error(variable.path, problem.description)
            }
        }
        guard let template, let declared = PackerTemplateRenderer.declaredVariables(templateAt: manifest.directory + "/" + template) else { return }
        for variable in variables where !declared.contains(variable.name) {
            let hint = Suggestion.closest(to: variable.name, among: declared.sorted()).map { " (did you mean \"\($0)\"?)" } ?? ""
            diagnostics.error(JSONPath.root.key("builder").key("variables").key(variable.name),
                              "the template \(template) declares no variable \"\(variable.name)\"\(hint); declare it in the template's \"variables\" or remove it here")
        }
    }

    func fileProblem(_ relative: String, what: String) -> String? {
        Self.fileProblem(relative, what: what, directory: manifest.directory)
    }

    static func fileProblem(_ relative: String, what: String, directory: String) -> String? {
        let full = directory + "/" + relative
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory) else {
            return "\(what) \(relative) does not exist (looked in \(directory))"
        }
        if isDirectory.boolValue { return "\(what) \(relative) is a folder; name a file" }
        if let problem = InputFile.nonRegularProblem(full, shown: relative, what: what) { return problem }
        if let escape = escapesFolder(full, directory: directory) {
            return "\(what) \(relative) resolves through a symbolic link to \(escape), outside the manifest's folder; copy the file in instead"
        }
        guard FileManager.default.isReadableFile(atPath: full) else {
            return "\(what) \(relative) is not readable by this user; fix its permissions"
        }
        return nil
    }

    /// The certificate checks of every distinct claim pair whose files exist, computed in parallel.
    func precheckClaims(_ variants: [Variant]) -> [String: [Diagnostic]] {
        var seen = Set<String>()
        var pairs: [(key: String, variant: Variant)] = []
        for variant in variants {
            let key = variant.claim.certificate + "\u{0}" + variant.claim.privateKey
            guard seen.insert(key).inserted,
                  Self.fileProblem(variant.claim.certificate, what: "", directory: manifest.directory) == nil,
                  Self.fileProblem(variant.claim.privateKey, what: "", directory: manifest.directory) == nil else { continue }
            pairs.append((key, variant))
        }
        let checked = pairs.map(\.variant).concurrentMap { variant in
            var local = Diagnostics()
            checkClaimCertificate(variant, &local)
            return local.items
        }
        var byKey: [String: [Diagnostic]] = [:]
        for (index, pair) in pairs.enumerated() { byKey[pair.key] = checked[index] }
        return byKey
    }

    func absolute(_ relative: String) -> String {
        manifest.directory + "/" + relative
    }

    /// The real location of `path` when a symbolic link takes it outside the manifest folder.
    static func escapesFolder(_ path: String, directory: String) -> String? {
        // realpath(3): URL.resolvingSymlinksInPath is ~100x slower, and a big fleet asks this
        // tens of thousands of times.
        func real(_ path: String) -> String {
            guard let resolved = realpath(path, nil) else { return path }
            defer { free(resolved) }
            return String(cString: resolved)
        }
        let resolved = real(path)
        let root = real(directory)
        return resolved == root || resolved.hasPrefix(root + "/") ? nil : resolved
    }

    func checkKeyPermissions(_ relative: String, at path: JSONPath, _ diagnostics: inout Diagnostics) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: absolute(relative)),
              let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value else { return }
        if mode & 0o004 != 0 {
            diagnostics.warning(path, "private key \(relative) is readable by every user (mode \(String(mode, radix: 8))); run `chmod 600 \(relative)`")
        }
    }
}

/// The rules for Wi-Fi passphrases (IEEE 802.11i): 8–63 printable ASCII characters, or exactly 64 hex digits (a raw PSK).
public enum WifiRules {
    public static func checkPassphrase(_ secret: Secret) -> String? {
        let bytes = secret.unsafeBytes
        if bytes.count == 64 && bytes.allSatisfy({ Names.isDigit($0) || (97...102).contains($0) || (65...70).contains($0) }) {
            return nil
        }
        if bytes.count == 64 {
            return "a 64-character passphrase must be a raw key of 64 hex digits; a text passphrase has 8 to 63 characters"
        }
        guard (8...63).contains(bytes.count) else {
            return "the passphrase has \(bytes.count) characters; a WPA passphrase has 8 to 63 (or is 64 hex digits)"
        }
        guard bytes.allSatisfy({ (32...126).contains($0) }) else {
            return "the passphrase contains a character that is not printable ASCII; WPA passphrases are printable ASCII only"
        }
        return nil
    }
}
