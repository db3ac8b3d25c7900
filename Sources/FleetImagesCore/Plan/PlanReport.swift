import Foundation

/// `plan` output: human text and a stable JSON shape for scripts. Never a secret: secret
/// inputs appear as HMAC digests only.
///
/// JSON shape (format 1):
/// ```
/// {"format": 1, "fleet": "demo", "manifest": "/abs/fleet.json", "tool_version": "0.1.0",
///  "builder": "inject", "base_image": {"source": "...", "digest": "sha256:..."},
///  "os": {"codename": "bookworm", "name": "Debian GNU/Linux 12 (bookworm)", "init_format": "userconf" | "cloud-init",
///         "set_by_manifest": false},
///  "variants": [{"id": "zrh-lab", "site": "zrh-lab", "matrix": {"board": "pi4"},
///     "region": "eu-central-1", "wifi_ssid": "ZRH-Lab" | null, "wifi_country": "CH" | null,
///     "hostname": "zrh-lab" | "zrh-lab-{serial}", "os": "bookworm", "init_format": "userconf",
///     "user": "fleet" | null, "ssh_keys": ["SHA256:..."], "first_boot_command": ["/usr/local/lib/...", ...] | null,
///     "first_boot_layout": "unit" | "legacy-home-pi" | null,
///     "inputs_digest": "<64 hex>", "decision": "build" | "up-to-date" | null,
///     "files": [{"destination": "/home/pi/claim.pem.crt", "partition": "root", "mode": "0644",
///                "owner": "1000:1000", "source": "certs/zrh-lab/claim.pem.crt",
///                "digest": "sha256:..." | "hmac-sha256:..." | null}]}]}
/// ```
public enum PlanReport {
    public struct Document: Codable, Sendable {
        public var format = 1
        public var fleet: String
        public var manifest: String
        public var toolVersion: String
        public var builder: String
        public var baseImage: Base
        public var os: OS
        public var variants: [VariantEntry]

        enum CodingKeys: String, CodingKey {
            case format, fleet, manifest, builder, variants, os
            case toolVersion = "tool_version"
            case baseImage = "base_image"
        }
    }

    public struct Base: Codable, Sendable {
        public var source: String
        public var digest: String
    }

    public struct OS: Codable, Sendable {
        public var codename: String
        public var name: String
        public var initFormat: String
        public var setByManifest: Bool

        enum CodingKeys: String, CodingKey {
            case codename, name
            case initFormat = "init_format"
            case setByManifest = "set_by_manifest"
        }
    }

    public struct VariantEntry: Codable, Sendable {
        public var id: String
        public var site: String
        public var matrix: [String: String]
        public var region: String
        public var wifiSSID: String?
        public var wifiCountry: String?
        public var hostname: String
        public var os: String
        public var initFormat: String
        public var user: String?
        public var sshKeys: [String]
        public var firstBootCommand: [String]?
        public var firstBootLayout: String?
        public var inputsDigest: String
        public var decision: String?
        /// `K/N` when the plan was asked for shards (`--shard`, `--shards`).
        public var shard: String?
        public var files: [FileEntryJSON]

        enum CodingKeys: String, CodingKey {
            case id, site, matrix, region, hostname, decision, files, os, user, shard
            case initFormat = "init_format"
            case sshKeys = "ssh_keys"
            case firstBootCommand = "first_boot_command"
            case firstBootLayout = "first_boot_layout"
            case wifiSSID = "wifi_ssid"
            case wifiCountry = "wifi_country"
            case inputsDigest = "inputs_digest"
        }
    }

    public struct FileEntryJSON: Codable, Sendable {
        public var destination: String
        public var partition: String
        public var mode: String
        public var owner: String
        public var source: String
        public var digest: String?
    }

    /// - Parameter decisions: per variant id, `build` or `up-to-date`, when the state is known.
    public static func document(_ plan: Plan, decisions: [String: String] = [:], shards: [String: String] = [:]) -> Document {
        let manifest = plan.manifest
        let source: String = switch manifest.baseImage.source {
        case .path(let path): path
        case .url(let url): url
        }
        return Document(
            fleet: manifest.fleet, manifest: manifest.filePath, toolVersion: FleetImagesVersion.current,
            builder: manifest.builder.kind.rawValue, baseImage: Base(source: source, digest: plan.baseImageDigest),
            os: OS(codename: plan.os.codename, name: plan.os.prettyName, initFormat: plan.os.initFormat.rawValue, setByManifest: plan.os.overridden),
            variants: plan.variants.map { planned in
                let v = planned.variant
                var digests: [String: InputDigest] = [:]
                for input in planned.inputs { digests[input.name] = input }
                return VariantEntry(
                    id: v.id, site: v.site, matrix: Dictionary(uniqueKeysWithValues: v.axes.map { ($0.axis, $0.value) }),
                    region: v.region, wifiSSID: v.wifi?.ssid, wifiCountry: v.wifi?.country, hostname: v.hostname,
                    os: plan.os.codename, initFormat: plan.os.initFormat.rawValue, user: v.user?.name,
                    sshKeys: planned.inputs.filter { $0.role == "ssh-authorized-key" }.map(\.digest),
                    firstBootCommand: { if case .unit(let command, _)? = v.firstBoot?.mode { command } else { nil } }(),
                    firstBootLayout: v.firstBoot.map { $0.mode == .legacyHomePi ? "legacy-home-pi" : "unit" },
                    inputsDigest: planned.inputsDigest, decision: decisions[v.id], shard: shards[v.id],
                    files: planned.items.map { item in
                        let (sourceText, key) = describe(item.source)
                        let digest = key.flatMap { digests[$0] }.map { "\($0.algorithm):\($0.digest)" }
                        return FileEntryJSON(destination: item.destination, partition: item.partition.rawValue,
                                             mode: octal(item.mode), owner: "\(item.uid):\(item.gid)", source: sourceText, digest: digest)
                    })
            })
    }

    public static func json(_ plan: Plan, decisions: [String: String] = [:], shards: [String: String] = [:]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(document(plan, decisions: decisions, shards: shards)), as: UTF8.self)
    }

    /// A GitHub Actions matrix with one entry per shard: `{"include": [{"shard": "1/N"}, …]}`.
    public static func githubMatrix(shards count: Int) throws -> String {
        struct Entry: Encodable { var shard: String }
        struct Matrix: Encodable { var include: [Entry] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(Matrix(include: (1...count).map { Entry(shard: "\($0)/\(count)") })), as: UTF8.self)
    }

    public static func text(_ plan: Plan, decisions: [String: String] = [:], shards: [String: String] = [:]) -> String {
        let doc = document(plan, decisions: decisions, shards: shards)
        var lines: [String] = []
        lines.append("fleet \(doc.fleet): \(doc.variants.count) variant\(doc.variants.count == 1 ? "" : "s"), builder \(doc.builder), base \(doc.baseImage.source) (\(doc.baseImage.digest))")
        lines.append("base image runs \(plan.os.summary)")
        for v in doc.variants {
            lines.append("")
            var header = "\(v.id)"
            if let decision = v.decision { header += "  [\(decision)]" }
            if let shard = v.shard { header += "  (shard \(shard))" }
            lines.append(header)
            var facts = ["site \(v.site)"]
            if !v.matrix.isEmpty { facts.append(v.matrix.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) }
            facts.append("region \(v.region)")
            facts.append("hostname \(v.hostname)")
            if let ssid = v.wifiSSID { facts.append("wifi \"\(ssid)\" (\(v.wifiCountry ?? ""))") } else { facts.append("no wifi") }
            lines.append("  " + facts.joined(separator: ", "))
            var device = ["os \(v.os) (\(v.initFormat))"]
            device.append(v.user.map { "user \($0)" } ?? "no user (nobody can log in)")
            device.append(v.sshKeys.isEmpty ? "no ssh keys" : "ssh keys " + v.sshKeys.joined(separator: " "))
            if let command = v.firstBootCommand {
                device.append("first boot: " + command.joined(separator: " "))
            } else if let layout = v.firstBootLayout {
                device.append("first boot: \(layout) layout")
            } else {
                device.append("no first-boot job")
            }
            lines.append("  " + device.joined(separator: ", "))
            lines.append("  inputs \(v.inputsDigest)")
            let width = v.files.map(\.destination.count).max() ?? 0
            for file in v.files {
                let pad = String(repeating: " ", count: width - file.destination.count)
                lines.append("  \(file.destination)\(pad)  \(file.partition.padding(toLength: 4, withPad: " ", startingAt: 0)) \(file.mode) \(file.owner.padding(toLength: 9, withPad: " ", startingAt: 0)) ← \(file.source)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The text shown for a content source, and the input name its digest is filed under.
    static func describe(_ source: ContentItem.Source) -> (String, String?) {
        switch source {
        case .file(let path, _): (path, path)
        case .generated(let name, _, let secret): ("generated \(name)\(secret ? " (holds a secret)" : "")", name)
        case .hostsEntry(let hostname): ("edit: 127.0.1.1 line → \(hostname)", nil)
        case .kernelParameter(let key, let value): ("edit: \(key)=\(value)", nil)
        case .directory: ("directory", nil)
        case .symlink(let target): ("link → \(target)", nil)
        }
    }

    static func octal(_ mode: UInt32) -> String {
        let text = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }
}
