import Foundation
import Testing
@testable import FleetImagesCore

/// `builder.variables`: values for the Packer template's user variables. Read and checked like
/// every other setting, written into a private var-file of the build context (never onto a
/// command line), masked by Packer as `sensitive-variables`, recorded by name and digest only.
@Suite("Packer template variables")
struct PackerVariablesTests {
    static let hash = "$y$j9T$ZmxlZXQtaW1hZ2VzLXQ$Pa5Sw0rDhAsHfOrThEtEsTsOnLyAbCdEfGhIj012345"

    /// A packer-docker fleet whose template declares `pi_password_hash` and `image_label`.
    static func fleet(variables: [String: Any], template declared: [String] = ["pi_password_hash", "image_label"]) throws -> TestFleet {
        let fleet = try TestFleet(sites: ["alpha"])
        let declarations = declared.map { "\"\($0)\": \"\"" }.joined(separator: ", ")
        try fleet.write("variants/common/template.json", """
        {
          "variables": { \(declarations) },
          "sensitive-variables": ["image_label_secret_part"],
          "builders": [{
            "type": "arm", "file_urls": ["replaced"], "file_checksum_type": "sha256",
            "image_path": "out.img", "image_size": "1G", "image_type": "dos",
            "image_partitions": [
              {"name": "bootfs", "type": "c", "start_sector": "8192", "filesystem": "vfat", "size": "256M", "mountpoint": "/boot/firmware"},
              {"name": "rootfs", "type": "83", "start_sector": "532480", "filesystem": "ext4", "size": "0", "mountpoint": "/"}
            ]
          }],
          "provisioners": [{"type": "shell", "inline": ["echo {{user `image_label`}}"]}]
        }
        """)
        try fleet.write("secrets/pi.hash", hash + "\n", mode: 0o600)
        try fleet.writeManifest(sites: ["alpha"]) { manifest in
            manifest["builder"] = ["type": "packer-docker", "image": "example/packer-builder-arm@sha256:" + String(repeating: "a", count: 64),
                                   "template": "variants/common/template.json", "variables": variables]
        }
        return fleet
    }

    static func errors(_ outcome: FleetLoader.Outcome) -> [String] {
        outcome.diagnostics.filter { $0.severity == .error }.map(\.description)
    }

    @Test("plain, environment and file values are read, in name order")
    func reads() throws {
        let fleet = try Self.fleet(variables: ["image_label": "nightly", "pi_password_hash": ["file": "secrets/pi.hash"]])
        let outcome = fleet.load()
        #expect(Self.errors(outcome).isEmpty, "\(Self.errors(outcome))")
        let variables = try #require(outcome.manifest).builder.variables
        #expect(variables.map(\.name) == ["image_label", "pi_password_hash"])
        #expect(variables[0].value == .plain("nightly") && !variables[0].isSecret)
        #expect(variables[1].value == .file("secrets/pi.hash") && variables[1].isSecret)
        #expect(variables[1].path.description == "builder.variables.pi_password_hash.file")
    }

    @Test("bad names, shapes and sources are errors at their path", arguments: [
        (#"{"9lives": "x"}"#, "builder.variables.9lives: \"9lives\" is not a Packer variable name"),
        (#"{"image_label": 3}"#, "builder.variables.image_label: expected a string, or {\"env\": NAME} or {\"file\": PATH} for a secret, found"),
        (#"{"image_label": {"env": "A", "file": "secrets/pi.hash"}}"#, "builder.variables.image_label.env: give either \"env\" or \"file\", not both"),
        (#"{"image_label": {"env": "not a name"}}"#, "builder.variables.image_label.env: \"not a name\" is not an environment variable name"),
        (#"{"image_label": {}}"#, "builder.variables.image_label: a secret variable needs \"env\""),
        (#"{"image_label": {"value": "x"}}"#, "builder.variables.image_label.value: unknown key \"value\""),
        (#"{"pi_password_hash": {"env": "FLEET_TEST_UNSET_HASH"}}"#, "builder.variables.pi_password_hash.env: environment variable FLEET_TEST_UNSET_HASH is not set"),
        (#"{"pi_password_hash": {"file": "secrets/missing.hash"}}"#, "builder.variables.pi_password_hash.file: file of a template variable secrets/missing.hash does not exist"),
        (#"{"pi_pasword_hash": "x"}"#, "builder.variables.pi_pasword_hash: the template variants/common/template.json declares no variable \"pi_pasword_hash\" (did you mean \"pi_password_hash\"?)"),
    ])
    func badInput(variables json: String, expected: String) throws {
        let variables = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let fleet = try Self.fleet(variables: variables)
        let errors = Self.errors(fleet.load())
        #expect(errors.contains { $0.contains(expected) }, "\(errors)")
    }

    @Test("variables belong to packer-docker: the inject builder refuses them")
    func injectRefuses() throws {
        let fleet = try TestFleet(sites: ["alpha"])
        try fleet.writeManifest(sites: ["alpha"]) { $0["builder"] = ["type": "inject", "variables": ["a": "b"]] }
        #expect(Self.errors(fleet.load()).contains { $0.contains("builder.variables: only for the packer-docker builder") })
    }

    @Test("the values go into a 0600 var-file named on Packer's command line; secret names are masked, values never in the template")
    func rendered() throws {
        let fleet = try Self.fleet(variables: ["image_label": "nightly", "pi_password_hash": ["env": "FLEET_TEST_HASH"]])
        let environment = ["FLEET_TEST_HASH": Self.hash]
        let outcome = fleet.load(environment: environment)
        let manifest = try #require(outcome.manifest)
        let renderer = try PackerTemplateRenderer.load(manifest: manifest, environment: environment)
        let plan = try Planner(manifest: manifest, environment: environment, secretKey: Array(repeating: 1, count: 32)).plan(outcome.variants, os: .testBookworm)
        for target in [PackerTemplateRenderer.Target.base, .variant(id: "alpha", items: plan.variants[0].items)] {
            let context = try renderer.render(target)
            #expect(context.varFileName == PackerTemplateRenderer.varFileName)
            #expect(context.packerArguments == ["build", "-machine-readable", "-var-file=fleet-images.vars.json", "template.json"])
            let varFile = try #require(context.files.first { $0.path == PackerTemplateRenderer.varFileName })
            #expect(varFile.mode == 0o600 && varFile.secret)
            guard case .bytes(let bytes) = varFile.content else { Issue.record("not generated"); continue }
            let values = try PackerDockerTemplateTests.object(String(decoding: bytes, as: UTF8.self))
            #expect(values == ["image_label": .string("nightly"), "pi_password_hash": .string(Self.hash)])
            let top = try PackerDockerTemplateTests.object(context.template)
            #expect(PackerJSON.strings(top["sensitive-variables"]) == ["image_label_secret_part", "pi_password_hash"])
            #expect(!context.template.contains(Self.hash))
            let listing = context.listing(relativeTo: fleet.directory)
            #expect(!listing.contains(Self.hash) && listing.contains("fleet-images.vars.json (600): generated, secret"))
        }
        // Without variables: no var-file, Packer's arguments as before.
        let plain = try Self.fleet(variables: [:])
        let bare = try PackerTemplateRenderer.load(manifest: try #require(plain.load().manifest), environment: [:]).render(.base)
        #expect(bare.varFileName == nil && bare.packerArguments == ["build", "-machine-readable", "template.json"])
        #expect(!bare.files.contains { $0.path == PackerTemplateRenderer.varFileName })
    }

    @Test("a variable the template does not declare is refused when rendering too (a template edited after validate)")
    func renderRefusesUndeclared() throws {
        let fleet = try Self.fleet(variables: ["image_label": "nightly"])
        let manifest = try #require(fleet.load().manifest)
        var renderer = try PackerTemplateRenderer.load(manifest: manifest, environment: [:])
        guard case .object(var top) = renderer.template else { throw CancellationError() }
        top["variables"] = .object([:])
        renderer.template = .object(top)
        #expect(throws: PackerDockerError.self) { try renderer.render(.base) }
    }

    @Test("the plan records each variable by name and digest (an HMAC for a secret); a changed value changes the inputs digest")
    func planned() throws {
        let fleet = try Self.fleet(variables: ["image_label": "nightly", "pi_password_hash": ["env": "FLEET_TEST_HASH"]])
        let key = Array(repeating: UInt8(9), count: 32)
        func plan(_ hash: String, label: String = "nightly") throws -> PlannedVariant {
            try fleet.writeManifest(sites: ["alpha"]) { manifest in
                manifest["builder"] = ["type": "packer-docker", "image": "example/packer-builder-arm@sha256:" + String(repeating: "a", count: 64),
                                       "template": "variants/common/template.json",
                                       "variables": ["image_label": label, "pi_password_hash": ["env": "FLEET_TEST_HASH"]]]
            }
            let environment = ["FLEET_TEST_HASH": hash]
            let outcome = fleet.load(environment: environment)
            let manifest = try #require(outcome.manifest)
            return try Planner(manifest: manifest, environment: environment, secretKey: key).plan(outcome.variants, os: .testBookworm).variants[0]
        }
        let first = try plan(Self.hash)
        let variables = first.inputs.filter { $0.role == "packer-variable" }
        #expect(variables.map(\.name) == ["image_label", "pi_password_hash"])
        #expect(variables.map(\.algorithm) == ["sha256", "hmac-sha256"])
        #expect(variables[1].digest == Digest.hmacSHA256Hex(key: key, message: Array(Self.hash.utf8)))
        #expect(variables[1].digest != Digest.sha256Hex(Array(Self.hash.utf8)))
        #expect(try plan(Self.hash).inputsDigest == first.inputsDigest)
        #expect(try plan(Self.hash.replacingOccurrences(of: "012345", with: "543210")).inputsDigest != first.inputsDigest)
        #expect(try plan(Self.hash, label: "weekly").inputsDigest != first.inputsDigest)
    }
}
