@testable import FleetImagesCore
import Foundation
import Testing

/// The inputs digest is a SHA-256 of the canonical description's JSON text. It was written by
/// `JSONEncoder` (sorted keys, slashes unescaped); the hand-written writer must give the same
/// bytes, or every recorded build would look out of date (and two tool builds would disagree).
@Suite struct PlannerCanonicalJSONTests {
    static func encoderBytes(_ value: Planner.CanonicalVariant) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// Byte for byte (Swift's `String ==` would call a precomposed and a decomposed "é" equal);
    /// a difference is shown as text.
    static func expectSameBytes(_ value: Planner.CanonicalVariant) throws {
        let written = value.json(), encoded = try encoderBytes(value)
        let same = written == encoded
        #expect(same, "\(String(decoding: written, as: UTF8.self))\n  is not what JSONEncoder writes:\n\(String(decoding: encoded, as: UTF8.self))")
    }

    /// Every ASCII byte (controls, quote, backslash, slash, DEL), and non-ASCII text of 2, 3 and 4 UTF-8 bytes.
    static let awkward = String(decoding: Array(0...0x7F as ClosedRange<UInt8>), as: UTF8.self) + "/é e\u{301} 日本🚀\u{2028}\u{FEFF}\u{85}"

    static func item(_ destination: String, _ source: ContentItem.Source, digest: String?) -> Planner.CanonicalItem {
        Planner.CanonicalItem(ContentItem(destination: destination, partition: .root, pathInPartition: destination, mode: 0o100640,
                                          uid: 0, gid: 4_294_967_295, source: source), digest: digest)
    }

    static func variant(wifi: [String]?, full: Bool) -> Planner.CanonicalVariant {
        let base = Planner.BaseIdentity(source: "base/" + awkward, digest: "sha256:00ff", arch: "arm64",
                                        boot: full ? 1 : nil, root: full ? 2 : nil, bootMount: "/boot/firmware")
        let builder = full
            ? Planner.BuilderIdentity(kind: "packer-docker", image: "mkaczanowski/packer-builder-arm@sha256:ab", template: "packer/t.json",
                                      dockerArgs: ["--cap-add", "SYS_ADMIN", awkward], mode: "per-site",
                                      templateFolder: ["set_os.sh": "aa", "B": "bb", "a": "cc", "ä": "dd", "aa": "ee", "a/b": "ff", "Z": awkward],
                                      variables: ["wifi_psk": "hmac-sha256:11", "region": "sha256:22"])
            : Planner.BuilderIdentity(kind: "inject")
        return Planner.CanonicalVariant(
            tool: "0.9.0", fleet: "demo", base: base, os: ["bookworm", "userconf"], builder: builder,
            id: "zrh-lab", site: "zrh-lab", axes: full ? [.init(axis: "board", value: "pi4"), .init(axis: "z", value: awkward)] : [],
            region: "eu-central-2", iot: ["a-ats.iot.eu-central-2.amazonaws.com", "c.credentials.iot", "Role", "Template"],
            wifi: wifi, hostname: "zrh-lab-{serial}",
            items: [
                item("/etc/fleet-images/claim.pem.crt", .file("certs/zrh/claim.pem.crt", secret: false), digest: "abc"),
                item("/etc/" + awkward, .generated(name: awkward, bytes: [1, 2], secret: true), digest: nil),
                item("/etc/hosts", .hostsEntry(hostname: "zrh-lab"), digest: nil),
                item("/boot/firmware/cmdline.txt", .kernelParameter(key: "cfg80211.ieee80211_regdom", value: "CH"), digest: nil),
                item("/var/lib/x", .directory, digest: nil),
                item("/etc/systemd/system/multi-user.target.wants/a.service", .symlink(target: "/etc/systemd/system/a.service"), digest: "d"),
            ])
    }

    @Test(arguments: [false, true]) func theWriterGivesTheEncodersBytes(full: Bool) throws {
        for wifi in [nil, ["Lab \"Wi-Fi\"", "CH", "hidden"], [Self.awkward, "", "visible"]] as [[String]?] {
            let value = Self.variant(wifi: wifi, full: full)
            try Self.expectSameBytes(value)
        }
    }

    /// The demo-shaped fleet of the other planner tests: its real items, described both ways.
    @Test func realPlansDescribeTheSame() throws {
        let fleet = try TestFleet()
        try fleet.writeManifest()
        let outcome = fleet.load()
        let manifest = try #require(outcome.manifest)
        let plan = try Planner(manifest: manifest, environment: [:], secretKey: Digest.randomBytes(32)).plan(outcome.variants, os: .testBookworm)
        #expect(!plan.variants.isEmpty)
        for planned in plan.variants {
            let items = planned.items.map { Planner.CanonicalItem($0, digest: planned.inputs.first?.digest) }
            var value = Self.variant(wifi: planned.variant.wifi.map { [$0.ssid, $0.country] }, full: true)
            value.items = items
            value.id = planned.variant.id
            #expect(items.count > 5)
            try Self.expectSameBytes(value)
        }
    }
}
