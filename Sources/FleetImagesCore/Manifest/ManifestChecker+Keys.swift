import Foundation

extension ManifestChecker {
    /// The image-signing key pair: both files present, the passphrase available, the private key
    /// usable for signing and the public key its own half (a mismatch would make every
    /// signature unverifiable with the published key).
    func checkSigning(_ diagnostics: inout Diagnostics) {
        let signing = manifest.signing
        func requireFile(_ relative: String, _ path: JSONPath, _ what: String) -> Bool {
            guard let problem = fileProblem(relative, what: what) else { return true }
            diagnostics.error(path, problem)
            return false
        }
        let privateOK = requireFile(signing.privateKey.value, signing.privateKey.path, "signing private key")
        let publicOK = requireFile(signing.publicKey.value, signing.publicKey.path, "signing public key")
        if privateOK { checkKeyPermissions(signing.privateKey.value, at: signing.privateKey.path, &diagnostics) }
        var passphrase: Secret?
        if let source = signing.passphrase {
            if case .file(let relative) = source.value, !requireFile(relative, source.path, "passphrase file") { return }
            switch SecretResolver(manifest: manifest, environment: environment).signingPassphrase(source.value) {
            case .success(let secret): passphrase = secret
            case .failure(let problem):
                diagnostics.error(source.path, problem.description)
                return
            }
        }
        guard privateOK, publicOK else { return }
        do {
            let key = try SigningKey.load(contentsOf: absolute(signing.privateKey.value), passphrase: passphrase)
            let publicKey = try VerifyingKey.load(contentsOf: absolute(signing.publicKey.value))
            if !key.matches(publicKey) {
                diagnostics.error(signing.publicKey.path, "\(signing.publicKey.value) is not the public half of \(signing.privateKey.value) (\(publicKey.fingerprint) vs \(key.publicKey.fingerprint)); images signed now would not verify with it")
            }
        } catch {
            diagnostics.error(signing.privateKey.path, "\(error)")
        }
    }

    /// A claim certificate must parse, belong to its private key and be valid for a while yet:
    /// AWS IoT refuses an expired claim at the device's first boot, long after the image was made.
    func checkClaimCertificate(_ variant: Variant, _ diagnostics: inout Diagnostics) {
        let claim = variant.claim
        // Parsing a certificate and its key costs ~2 ms in OpenSSL; a nightly run over a big fleet
        // repeats the same pairs, so a previous result for the same bytes is reused.
        let cacheKey = claimCache?.key(certificate: absolute(claim.certificate), privateKey: absolute(claim.privateKey))
        var facts = cacheKey.flatMap { claimCache?.entry($0) }
        if facts == nil {
            let certificate: CertificateInfo
            do {
                certificate = try CertificateInfo.load(contentsOf: absolute(claim.certificate))
            } catch {
                diagnostics.error(claim.certificatePath, "\(error)")
                return
            }
            let matches: Bool
            do {
                matches = try certificate.matches(privateKeyAt: absolute(claim.privateKey), passphrase: nil)
            } catch .passphraseRequired, .wrongPassphrase {
                // The signing passphrase has nothing to do with it: the device reads this key at its
                // first boot, with nobody there to type a passphrase.
                diagnostics.error(claim.privateKeyPath, "claim private key \(claim.privateKey) is encrypted; the device reads it unattended at first boot, so it must be stored unencrypted. Decrypt it with `openssl pkey -in \(claim.privateKey) -out \(claim.privateKey).plain` (it asks for the key's passphrase), `chmod 600` the result and point claim.private_key at it")
                return
            } catch {
                diagnostics.error(claim.privateKeyPath, "\(error)")
                return
            }
            let computed = ClaimCheckCache.Entry(notBefore: certificate.notBefore, notAfter: certificate.notAfter, keyMatches: matches)
            if let cacheKey { claimCache?.store(computed, for: cacheKey) }
            facts = computed
        }
        guard let facts else { return }
        let day = 86_400.0
        if facts.notAfter <= now {
            diagnostics.error(claim.certificatePath, "claim certificate \(claim.certificate) expired on \(Self.date(facts.notAfter)); create a new claim certificate in AWS IoT and replace it")
        } else if facts.notAfter.timeIntervalSince(now) < 30 * day {
            let days = Self.calendarDays(from: now, to: facts.notAfter)
            let when = days == 0 ? "today" : "in \(days) day\(days == 1 ? "" : "s")"
            diagnostics.warning(claim.certificatePath, "claim certificate \(claim.certificate) expires on \(Self.date(facts.notAfter)) (\(when)); devices first booted after that cannot enrol")
        }
        if facts.notBefore > now {
            diagnostics.warning(claim.certificatePath, "claim certificate \(claim.certificate) is not valid before \(Self.date(facts.notBefore))")
        }
        if !facts.keyMatches {
            diagnostics.error(claim.privateKeyPath, "\(claim.privateKey) is not the private key of \(claim.certificate); the device could not authenticate with them")
        }
    }

    /// Each public key file must hold OpenSSH key lines that sshd would accept.
    func checkPublicKeyFile(_ key: Variant.SSH.Key, _ diagnostics: inout Diagnostics) {
        do {
            _ = try SSHPublicKey.load(contentsOf: absolute(key.file), shown: key.file)
        } catch {
            let text = error.line.map { "public key file \(key.file), line \($0): \(error.reason)" } ?? error.reason
            diagnostics.error(key.path, text)
        }
    }

    /// Root runs `first_boot.command` at every boot until it succeeds: when a `files` entry puts
    /// the program in place, nobody but root may be able to change it.
    func checkFirstBootCommand(_ variant: Variant, _ diagnostics: inout Diagnostics) {
        guard case .unit(let command, _)? = variant.firstBoot?.mode, let program = command.first,
              let entry = variant.files.last(where: { $0.destination == program }) else { return }
        let ownerProblem = entry.uid != 0 || entry.gid != 0
        let modeProblem = entry.mode & 0o022 != 0
        guard ownerProblem || modeProblem else { return }
        let what = [ownerProblem ? "owner \(entry.uid):\(entry.gid)" : nil, modeProblem ? "mode \(String(format: "%04o", entry.mode)) (writable by group or others)" : nil]
            .compactMap { $0 }.joined(separator: " and ")
        diagnostics.error(entry.path.key(ownerProblem ? "owner" : "mode"),
                          "first_boot.command runs \(program) as root, but this entry gives it \(what); root must never run a file another user can write. Set \"owner\": \"0:0\" and a mode such as \"0700\" or \"0755\"")
    }

    /// Why a device flashed with `variant` could not be logged into, or nil.
    static func loginProblem(_ variant: Variant) -> String? {
        guard let user = variant.user else {
            return "no way to log in: no \"user\" is set, so Raspberry Pi OS keeps its locked default user (and on Bookworm its first-boot wizard waits on the console). Add \"user\": {\"name\": …, \"password_hash_file\": …} and/or \"ssh\": {\"authorized_keys\": […]}"
        }
        let hasKey = !(variant.ssh?.authorizedKeys.isEmpty ?? true)
        guard user.passwordHash == nil && !hasKey else { return nil }
        return "no way to log in: user \"\(user.name)\" has no password hash and ssh.authorized_keys lists no key. Add \"password_hash_file\" (or \"_env\") to \"user\", or a key to \"ssh.authorized_keys\""
    }

    /// One warning when no variant can be logged into (the usual case: nothing in `defaults`),
    /// else one per site that has such variants.
    func reportNoLogin(_ noLogin: [(variant: Variant, problem: String)], total: Int, _ diagnostics: inout Diagnostics) {
        guard !noLogin.isEmpty else { return }
        if noLogin.count == total, Set(noLogin.map(\.problem)).count == 1 {
            let scope = total == 1 ? "the variant" : "all \(total) variants"
            diagnostics.warning(JSONPath.root.key("defaults"), "\(scope): \(noLogin[0].problem)")
            return
        }
        var groups: [(site: String, problem: String, ids: [String])] = []
        var groupIndex: [String: Int] = [:]
        for (variant, problem) in noLogin {
            let key = variant.site + "\u{0}" + problem
            if let index = groupIndex[key] { groups[index].ids.append(variant.id) } else {
                groupIndex[key] = groups.count
                groups.append((variant.site, problem, [variant.id]))
            }
        }
        let sitePaths = Dictionary(manifest.sites.map { ($0.id, $0.path) }, uniquingKeysWith: { first, _ in first })
        for (site, problem, ids) in groups {
            let path = sitePaths[site] ?? JSONPath.root.key("sites")
            let scope = ids.count == 1 ? "variant \(ids[0])" : "variants \(ids.prefix(3).joined(separator: ", "))\(ids.count > 3 ? " and \(ids.count - 3) more" : "")"
            diagnostics.warning(path, "\(scope): \(problem)")
        }
    }

    /// Whole calendar days (UTC, the zone ``date(_:)`` prints in) from `start` to `end`: a
    /// certificate made with `-days 10` a minute ago expires "in 10 days", on the date shown,
    /// not in 9 (9.999 days, truncated).
    static func calendarDays(from start: Date, to end: Date) -> Int {
        func dayNumber(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }
        return dayNumber(end) - dayNumber(start)
    }

    static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.string(from: date)
    }
}
