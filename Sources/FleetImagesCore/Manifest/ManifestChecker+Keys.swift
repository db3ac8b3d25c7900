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
            let days = Int(facts.notAfter.timeIntervalSince(now) / day)
            diagnostics.warning(claim.certificatePath, "claim certificate \(claim.certificate) expires on \(Self.date(facts.notAfter)) (in \(days) day\(days == 1 ? "" : "s")); devices first booted after that cannot enrol")
        }
        if facts.notBefore > now {
            diagnostics.warning(claim.certificatePath, "claim certificate \(claim.certificate) is not valid before \(Self.date(facts.notBefore))")
        }
        if !facts.keyMatches {
            diagnostics.error(claim.privateKeyPath, "\(claim.privateKey) is not the private key of \(claim.certificate); the device could not authenticate with them")
        }
    }

    static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.string(from: date)
    }
}
