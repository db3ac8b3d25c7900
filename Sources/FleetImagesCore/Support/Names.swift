import Foundation

/// Checks for the small grammars of the manifest: names, AWS regions and endpoints, durations,
/// modes, owners and paths. Hand-written rather than regular expressions: they run once per site
/// and value, and a 10,000-site manifest must validate in well under a second.
public enum Names {
    /// Lower-case letters, digits and inner dashes, 1–63 characters: safe as a file name, a
    /// container name and a DNS label.
    public static func isSafeName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        for byte in bytes where !(isLowerAlnum(byte) || byte == UInt8(ascii: "-")) { return false }
        return bytes.first != UInt8(ascii: "-") && bytes.last != UInt8(ascii: "-")
    }

    /// Axis names: a lower-case letter, then letters, digits or underscores (they appear in `{placeholders}`).
    public static func isAxisName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, (1...32).contains(bytes.count), isLower(first) else { return false }
        return bytes.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "_") }
    }

    /// The shape of an AWS region name (`eu-central-1`, `us-gov-west-1`, `cn-north-1`), not a
    /// closed list: new regions appear every year.
    public static func isRegion(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts.count <= 4 else { return false }
        guard parts[0].count == 2, parts[0].utf8.allSatisfy(isLower) else { return false }
        guard let number = parts.last, !number.isEmpty, number.count <= 2, number.utf8.allSatisfy(isDigit) else { return false }
        for middle in parts.dropFirst().dropLast() where middle.isEmpty || !middle.utf8.allSatisfy(isLower) {
            return false
        }
        return true
    }

    static func awsDomain(region: String) -> String {
        region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
    }

    /// `<prefix>-ats.iot.<region>.amazonaws.com`: the prefix is the account's endpoint id.
    public static func checkDataEndpoint(_ endpoint: String, region: String) -> String? {
        let suffix = "-ats.iot.\(region).\(awsDomain(region: region))"
        guard endpoint.hasSuffix(suffix) else {
            return "\"\(endpoint)\" is not an IoT data endpoint of \(region); expected <prefix>\(suffix) (see `aws iot describe-endpoint --endpoint-type iot:Data-ATS`)"
        }
        let prefix = endpoint.dropLast(suffix.count)
        guard !prefix.isEmpty, prefix.utf8.allSatisfy(isLowerAlnum) else {
            return "\"\(endpoint)\": the endpoint prefix must be lower-case letters and digits"
        }
        return nil
    }

    /// `<prefix>.credentials.iot.<region>.amazonaws.com`.
    public static func checkCredentialEndpoint(_ endpoint: String, region: String) -> String? {
        let suffix = ".credentials.iot.\(region).\(awsDomain(region: region))"
        guard endpoint.hasSuffix(suffix) else {
            return "\"\(endpoint)\" is not an IoT credential endpoint of \(region); expected <prefix>\(suffix) (see `aws iot describe-endpoint --endpoint-type iot:CredentialProvider`)"
        }
        let prefix = endpoint.dropLast(suffix.count)
        guard !prefix.isEmpty, prefix.utf8.allSatisfy(isLowerAlnum) else {
            return "\"\(endpoint)\": the endpoint prefix must be lower-case letters and digits"
        }
        return nil
    }

    /// `90s`, `30m`, `2h`, `7d` → seconds.
    public static func parseDuration(_ text: String) -> Int? {
        guard let unit = text.last, text.count >= 2, let number = Int(text.dropLast()), number > 0 else { return nil }
        switch unit {
        case "s": return number
        case "m": return number * 60
        case "h": return number * 3600
        case "d": return number * 86400
        default: return nil
        }
    }

    /// `"0644"` or `"644"` → 0o644.
    public static func parseMode(_ text: String) -> UInt32? {
        guard (3...4).contains(text.count), text.utf8.allSatisfy({ (48...55).contains($0) }) else { return nil }
        return UInt32(text, radix: 8)
    }

    /// `"1000:1000"` → (1000, 1000).
    public static func parseOwner(_ text: String) -> (uid: UInt32, gid: UInt32)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]) else { return nil }
        return (uid, gid)
    }

    public static func isSHA256Hex(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { isDigit($0) || (97...102).contains($0) }
    }

    public static func isHTTPURL(_ text: String) -> Bool {
        (text.hasPrefix("https://") || text.hasPrefix("http://")) && !text.contains(" ")
    }

    /// An environment variable name: letters, digits and underscores, not starting with a digit.
    public static func isEnvironmentName(_ text: String) -> Bool {
        guard let first = text.utf8.first, !isDigit(first) else { return false }
        return text.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") }
    }

    /// A relative path that stays inside the manifest folder: not absolute, no `..` that climbs out.
    /// Returns the problem, or nil when the path is acceptable.
    public static func checkRelativePath(_ path: String) -> String? {
        if path.isEmpty { return "empty path" }
        if path.hasPrefix("/") { return "\"\(path)\" is absolute; give a path relative to the manifest's folder" }
        if path.hasPrefix("~") { return "\"\(path)\": `~` is not expanded; give a path relative to the manifest's folder" }
        var depth = 0
        for component in path.split(separator: "/") {
            if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
            if depth < 0 { return "\"\(path)\" leaves the manifest's folder; keep inputs inside it" }
        }
        return nil
    }

    /// An absolute path inside the image (see ``ImagePath/syntaxProblem(_:)``).
    public static func checkImagePath(_ path: String) -> String? {
        ImagePath.syntaxProblem(path)
    }

    /// A Linux login name as `useradd` takes it by default: `[a-z_][a-z0-9_-]{0,31}`.
    public static func isLinuxUserName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, (1...32).contains(bytes.count), isLower(first) || first == UInt8(ascii: "_") else { return false }
        return bytes.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// The shape of a tz database name as `/usr/share/zoneinfo` holds it: `Area/City` (`Europe/Zurich`,
    /// `America/Argentina/Buenos_Aires`, `Etc/GMT+1`): components of letters, digits and `_+-`,
    /// each starting with a letter, at least two of them.
    public static func isTimezone(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, text.utf8.count <= 128 else { return false }
        return parts.allSatisfy { part in
            guard let first = part.utf8.first, isAlnum(first), !isDigit(first) else { return false }
            return part.utf8.allSatisfy { isAlnum($0) || "_+-".utf8.contains($0) }
        }
    }

    /// An XKB layout (`ch`, `de`, `us`) or several joined by commas (`us,de`): `[a-z]{2,8}` each.
    public static func isKeyboardLayout(_ text: String) -> Bool {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        return parts.count <= 4 && parts.allSatisfy { (2...8).contains($0.utf8.count) && $0.utf8.allSatisfy(isLower) }
    }

    /// A glibc locale name: `ll_CC`, optionally `.UTF-8`, optionally `@modifier` (`de_CH.UTF-8`, `ca_ES.UTF-8@valencia`).
    public static func isLocale(_ text: String) -> Bool {
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let modifier = rest[rest.index(after: at)...]
            guard (1...16).contains(modifier.utf8.count), modifier.utf8.allSatisfy(isLower) else { return false }
            rest = rest[..<at]
        }
        if rest.hasSuffix(".UTF-8") { rest = rest.dropLast(6) }
        let parts = rest.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        let language = parts[0], country = parts[1]
        return (2...3).contains(language.utf8.count) && language.utf8.allSatisfy(isLower)
            && country.utf8.count == 2 && country.utf8.allSatisfy { (65...90).contains($0) }
    }

    /// A two-letter ISO 3166-1 alpha-2 code in upper case. The list of assigned codes is short and
    /// stable; an unassigned pair like `XX` is refused because the kernel's regulatory database
    /// would fall back to the world domain silently.
    public static func isCountryCode(_ text: String) -> Bool {
        text.utf8.count == 2 && iso3166.contains(text)
    }

    private static let iso3166: Set<String> = Set("""
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
    KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT \
    MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG \
    UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })

    static func isLower(_ byte: UInt8) -> Bool { (97...122).contains(byte) }
    static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }
    static func isLowerAlnum(_ byte: UInt8) -> Bool { isLower(byte) || isDigit(byte) }
    static func isAlnum(_ byte: UInt8) -> Bool { isLowerAlnum(byte) || (65...90).contains(byte) }
}
