/// Expands a manifest into its variants: a pure function of the manifest (and of the overlay
/// files found beside it, passed in so that this stays free of file-system access).
///
/// Precedence, lowest first: `defaults`, then the site, then each matrix axis value in axis-name
/// order. Objects (`iot`, `claim`, `wifi`, `user`, `ssh`, `first_boot`) merge field by field
/// (`first_boot.command` and `first_boot.layout` count as one field); `files` accumulate, and a later
/// entry with the same destination replaces an earlier one. Variants come out in manifest site
/// order, and within a site in matrix order (axes sorted by name, values in the order written).
public enum Expansion {
    /// - Parameter overlays: per site id, the files of its `variants/<site-id>/` tree (added after the manifest's files).
    public static func expand(_ manifest: Manifest, overlays: [String: [FileEntry]] = [:]) -> (variants: [Variant], diagnostics: [Diagnostic]) {
        var diagnostics = Diagnostics()
        var variants: [Variant] = []
        var reported = Set<Diagnostic>()
        var idOrigins: [String: JSONPath] = [:]

        let combinations = cartesianProduct(manifest.matrix)
        for site in manifest.sites {
            for combination in combinations {
                var settings = manifest.defaults.overlaid(by: site.settings)
                for value in combination { settings = settings.overlaid(by: value.settings) }
                let axes = zip(manifest.matrix, combination).map { Variant.AxisValue(axis: $0.name, value: $1.value) }
                let id = ([site.id] + axes.map(\.value)).joined(separator: "-")
                var local = Diagnostics()
                if let variant = resolve(id: id, site: site, axes: axes, settings: settings, manifest: manifest,
                                         overlay: overlays[site.id] ?? [], diagnostics: &local) {
                    if let earlier = idOrigins[id] {
                        local.error(site.path.key("id"), "variant id \"\(id)\" is produced twice (also by \(earlier)); rename a site or an axis value")
                    } else {
                        idOrigins[id] = site.path
                        variants.append(variant)
                    }
                }
                // A site missing a value fails once, not once per matrix combination.
                for item in local.items where reported.insert(item).inserted {
                    diagnostics.append(contentsOf: [item])
                }
            }
        }
        return (variants, diagnostics.items)
    }

    static func cartesianProduct(_ axes: [MatrixAxis]) -> [[MatrixAxis.Value]] {
        var result: [[MatrixAxis.Value]] = [[]]
        for axis in axes {
            result = result.flatMap { prefix in axis.values.map { prefix + [$0] } }
        }
        return result
    }

    static func resolve(id: String, site: SiteEntry, axes: [Variant.AxisValue], settings: SiteSettings, manifest: Manifest,
                        overlay: [FileEntry], diagnostics: inout Diagnostics) -> Variant? {
        func required(_ value: Located<String>?, _ key: String) -> Located<String>? {
            if value == nil {
                diagnostics.error(site.path.key(key), "required; set it in this site or in \"defaults\"")
            }
            return value
        }
        let region = required(settings.region, "region")
        let data = required(settings.iot.dataEndpoint, "iot.data_endpoint")
        let credential = required(settings.iot.credentialEndpoint, "iot.credential_endpoint")
        let roleAlias = required(settings.iot.roleAlias, "iot.role_alias")
        let template = required(settings.iot.provisioningTemplate, "iot.provisioning_template")
        let certificate = required(settings.claim.certificate, "claim.certificate")
        let privateKey = required(settings.claim.privateKey, "claim.private_key")

        if let region {
            if let data, let problem = Names.checkDataEndpoint(data.value, region: region.value) {
                diagnostics.error(data.path, problem + regionOrigin(region, site: site))
            }
            if let credential, let problem = Names.checkCredentialEndpoint(credential.value, region: region.value) {
                diagnostics.error(credential.path, problem + regionOrigin(region, site: site))
            }
        }

        var wifi: Variant.Wifi?
        let w = settings.wifi
        if w.ssid != nil || w.psk != nil || w.country != nil || w.hidden != nil {
            if w.ssid == nil { diagnostics.error(site.path.key("wifi.ssid"), "required when Wi-Fi is configured; set it in this site or in \"defaults\"") }
            if w.country == nil { diagnostics.error(site.path.key("wifi.country"), "required with Wi-Fi: the two-letter regulatory country (e.g. CH), without it the radio may stay off") }
            if w.psk == nil { diagnostics.error(site.path.key("wifi.psk_env"), "no passphrase: set \"psk_env\" or \"psk_file\" in this site or in \"defaults\"") }
            if let ssid = w.ssid, let country = w.country, let psk = w.psk {
                wifi = Variant.Wifi(ssid: ssid.value, country: country.value, psk: psk.value, pskPath: psk.path, hidden: w.hidden?.value ?? false)
            }
        }

        var hostname = id
        if let pattern = settings.hostname {
            // {serial} stays in the pattern: the device replaces it at first boot.
            var values = ["site": site.id, "fleet": manifest.fleet, "serial": Variant.serialPlaceholder]
            for axis in axes { values[axis.axis] = axis.value }
            switch substitute(pattern.value, values: values) {
            case .success(let text): hostname = text
            case .failure(let problem):
                diagnostics.error(pattern.path, problem.text)
                return nil
            }
            // A Raspberry Pi's serial is 16 hex digits; the name must be valid with it in place.
            let onDevice = hostname.replacingOccurrences(of: Variant.serialPlaceholder, with: Self.exampleSerial)
            if !Names.isSafeName(onDevice) {
                let shown = hostname == onDevice ? "\"\(hostname)\"" : "\"\(onDevice)\" (with a 16-digit serial)"
                diagnostics.error(pattern.path, "gives the hostname \(shown) for \(id), which is not a valid host name; use lower-case letters, digits and dashes, at most 63")
            }
        } else if !Names.isSafeName(hostname) {
            diagnostics.error(site.path.key("hostname"), "the default hostname would be the variant id \"\(hostname)\" (\(hostname.count) characters), which is not a valid host name; set \"hostname\" to a shorter pattern")
        }

        let files = mergeFiles(settings.files + overlay)

        var user: Variant.User?
        if settings.user.name != nil || settings.user.passwordHash != nil {
            if let name = settings.user.name {
                user = Variant.User(name: name.value, passwordHash: settings.user.passwordHash?.value,
                                    namePath: name.path, passwordHashPath: settings.user.passwordHash?.path)
            } else {
                diagnostics.error(site.path.key("user.name"), "required with a password hash: the login name (Raspberry Pi OS renames its UID-1000 user to it); set it in this site or in \"defaults\"")
            }
        }

        var ssh: Variant.SSH?
        if settings.ssh.authorizedKeys != nil || settings.ssh.passwordAuthentication != nil {
            let keys = settings.ssh.authorizedKeys.map { list in
                list.value.enumerated().map { Variant.SSH.Key(file: $0.element, path: list.path.index($0.offset)) }
            } ?? []
            // Without keys, password logins are the only way in over SSH; with keys, they are off unless asked for.
            ssh = Variant.SSH(authorizedKeys: keys, passwordAuthentication: settings.ssh.passwordAuthentication?.value ?? keys.isEmpty)
        }

        var firstBoot: Variant.FirstBoot?
        let f = settings.firstBoot
        if let command = f.command {
            firstBoot = Variant.FirstBoot(mode: .unit(command: command.value, retrySeconds: f.retrySeconds?.value ?? Self.defaultRetrySeconds), path: command.path)
        } else if let legacy = f.legacyLayout {
            firstBoot = Variant.FirstBoot(mode: .legacyHomePi, path: legacy.path)
        } else if let retry = f.retrySeconds {
            diagnostics.error(retry.path, "\"retry\" without \"command\": give first_boot.command (here, in this site or in \"defaults\") or remove \"retry\"")
        }

        guard let region, let data, let credential, let roleAlias, let template, let certificate, let privateKey else { return nil }
        return Variant(
            id: id, site: site.id, axes: axes, region: region.value,
            iot: .init(dataEndpoint: data.value, credentialEndpoint: credential.value, roleAlias: roleAlias.value, provisioningTemplate: template.value),
            claim: .init(certificate: certificate.value, privateKey: privateKey.value, certificatePath: certificate.path, privateKeyPath: privateKey.path),
            wifi: wifi, hostname: hostname, files: files,
            user: user, ssh: ssh, timezone: settings.timezone?.value, keyboard: settings.keyboard?.value,
            locale: settings.locale?.value, firstBoot: firstBoot)
    }

    /// What `{serial}` becomes on a Raspberry Pi: 16 lower-case hex digits (`/proc/cpuinfo`'s `Serial`).
    static let exampleSerial = "10000000abcdef01"
    /// The contract's default pause between first-boot attempts: 5 minutes.
    static let defaultRetrySeconds = 300

    static func regionOrigin(_ region: Located<String>, site: SiteEntry) -> String {
        " (region \(region.value) from \(region.path))"
    }

    /// Later entries replace earlier ones with the same destination, keeping the first one's place.
    static func mergeFiles(_ entries: [FileEntry]) -> [FileEntry] {
        var result: [FileEntry] = []
        var index: [String: Int] = [:]
        for entry in entries {
            if let position = index[entry.destination] {
                result[position] = entry
            } else {
                index[entry.destination] = result.count
                result.append(entry)
            }
        }
        return result
    }

    /// Replaces `{name}` placeholders; an unknown name or an unclosed brace is a problem.
    static func substitute(_ pattern: String, values: [String: String]) -> Result<String, PatternError> {
        var output = ""
        var rest = Substring(pattern)
        while let open = rest.firstIndex(of: "{") {
            output += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                return .failure(PatternError(text: "\"\(pattern)\" has a \"{\" without its \"}\""))
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard let value = values[name] else {
                let known = values.keys.sorted().map { "{\($0)}" }.joined(separator: ", ")
                return .failure(PatternError(text: "unknown placeholder {\(name)} in \"\(pattern)\"; known here: \(known)"))
            }
            output += value
            rest = rest[rest.index(after: close)...]
        }
        if rest.contains("}") { return .failure(PatternError(text: "\"\(pattern)\" has a \"}\" without its \"{\"")) }
        output += rest
        return .success(output)
    }

    struct PatternError: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }
}

extension SiteSettings {
    /// These settings with every field that `other` sets taken from `other`.
    public func overlaid(by other: SiteSettings) -> SiteSettings {
        var merged = self
        merged.region = other.region ?? region
        merged.iot.dataEndpoint = other.iot.dataEndpoint ?? iot.dataEndpoint
        merged.iot.credentialEndpoint = other.iot.credentialEndpoint ?? iot.credentialEndpoint
        merged.iot.roleAlias = other.iot.roleAlias ?? iot.roleAlias
        merged.iot.provisioningTemplate = other.iot.provisioningTemplate ?? iot.provisioningTemplate
        merged.claim.certificate = other.claim.certificate ?? claim.certificate
        merged.claim.privateKey = other.claim.privateKey ?? claim.privateKey
        merged.wifi.ssid = other.wifi.ssid ?? wifi.ssid
        merged.wifi.country = other.wifi.country ?? wifi.country
        merged.wifi.psk = other.wifi.psk ?? wifi.psk
        merged.wifi.hidden = other.wifi.hidden ?? wifi.hidden
        merged.hostname = other.hostname ?? hostname
        merged.files = files + other.files
        merged.user.name = other.user.name ?? user.name
        merged.user.passwordHash = other.user.passwordHash ?? user.passwordHash
        merged.ssh.authorizedKeys = other.ssh.authorizedKeys ?? ssh.authorizedKeys
        merged.ssh.passwordAuthentication = other.ssh.passwordAuthentication ?? ssh.passwordAuthentication
        merged.timezone = other.timezone ?? timezone
        merged.keyboard = other.keyboard ?? keyboard
        merged.locale = other.locale ?? locale
        // `command` and `layout` are two answers to one question: a layer giving either replaces both.
        if other.firstBoot.command != nil || other.firstBoot.legacyLayout != nil {
            merged.firstBoot.command = other.firstBoot.command
            merged.firstBoot.legacyLayout = other.firstBoot.legacyLayout
        }
        merged.firstBoot.retrySeconds = other.firstBoot.retrySeconds ?? firstBoot.retrySeconds
        return merged
    }
}
