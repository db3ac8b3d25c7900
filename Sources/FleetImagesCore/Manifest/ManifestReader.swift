import Foundation

/// Reads `fleet.json` into a ``Manifest``, strictly: unknown keys, wrong types and malformed
/// values are all collected as diagnostics with their JSON paths; nothing is thrown for them.
public enum ManifestReader {
    static let topLevelKeys = [
        "$schema", "format", "fleet", "base_image", "builder", "output", "signing",
        "allow_inline_psk", "defaults", "sites", "matrix",
    ]
    static let siteSettingKeys = [
        "region", "iot", "claim", "wifi", "hostname", "files",
        "user", "ssh", "timezone", "keyboard", "locale", "first_boot",
    ]
    /// 64 MiB: a 10,000-site manifest is a few MiB; more is not a manifest.
    static let manifestSizeLimit = 64 << 20
    /// `first_boot.layout`'s one value: the seed project's `/home/pi` files started by `/etc/rc.local`.
    static let legacyLayout = "legacy-home-pi"

    /// Reads and checks the manifest at `path`. Returns the manifest when its shape is sound
    /// (possibly with warnings), or nil with the errors.
    public static func read(path: String) -> (manifest: Manifest?, diagnostics: [Diagnostic]) {
        let (manifest, diagnostics) = readCollecting(path: path)
        return (manifest, diagnostics.items)
    }

    static func readCollecting(path: String) -> (manifest: Manifest?, diagnostics: Diagnostics) {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        // Through InputFile: a FIFO or device in the manifest's place is refused, never waited on.
        switch InputFile.read(url.path, shown: path, what: "the manifest", limit: manifestSizeLimit) {
        case .success(let bytes):
            return readCollecting(data: Data(bytes), filePath: url.path)
        case .failure(let problem):
            var text = problem.description
            if text.hasPrefix("the manifest \(path) ") { text = String(text.dropFirst("the manifest \(path) ".count)) }
            return (nil, Diagnostics(single: Diagnostic(.error, at: path, "cannot read the manifest: it \(text); pass --manifest PATH or run from the folder holding fleet.json")))
        }
    }

    /// Reads a manifest from bytes; `filePath` fixes the folder relative paths start from.
    public static func read(data: Data, filePath: String) -> (manifest: Manifest?, diagnostics: [Diagnostic]) {
        let (manifest, diagnostics) = readCollecting(data: data, filePath: filePath)
        return (manifest, diagnostics.items)
    }

    /// Like ``read(data:filePath:)``, also returning the input files the manifest names.
    static func readCollecting(data: Data, filePath: String) -> (manifest: Manifest?, diagnostics: Diagnostics) {
        let bytes = [UInt8](data)
        if let problem = encodingProblem(bytes) {
            return (nil, Diagnostics(single: Diagnostic(.error, at: filePath, problem)))
        }
        let root: JSONValue
        var diagnostics = Diagnostics()
        do {
            let parsed = try JSONParser.parse(bytes)
            root = parsed.value
            for duplicate in parsed.duplicates {
                diagnostics.error(duplicate.path, "given twice in one object (line \(duplicate.first.line), column \(duplicate.first.column) and line \(duplicate.repeated.line), column \(duplicate.repeated.column)); JSON tools disagree on which one counts (jq and Python take the last), so keep exactly one")
            }
        } catch {
            return (nil, Diagnostics(single: Diagnostic(.error, at: filePath, "not valid JSON: \(error)")))
        }
        let manifest = read(root: root, filePath: filePath, diagnostics: &diagnostics)
        checkSerialPlaceholders(root, at: .root, key: nil, diagnostics: &diagnostics)
        return (diagnostics.hasErrors ? nil : manifest, diagnostics)
    }

    static func read(root: JSONValue, filePath: String, diagnostics: inout Diagnostics) -> Manifest? {
        guard let top = ObjectReader(root, at: .root, knownKeys: topLevelKeys, diagnostics: &diagnostics) else { return nil }

        if let format = top.integer("format", required: true, diagnostics: &diagnostics), format.value != 1 {
            diagnostics.error(format.path, "format \(format.value) is not known to fleet-images \(FleetImagesVersion.current); this version reads format 1")
        }
        let fleet = top.string("fleet", required: true, diagnostics: &diagnostics)
        if let fleet, !Names.isSafeName(fleet.value) {
            diagnostics.error(fleet.path, "\"\(fleet.value)\" is not a safe name; use lower-case letters, digits and dashes (1–63, no leading or trailing dash)")
        }
        let baseImage = readBaseImage(top, diagnostics: &diagnostics)
        let builder = readBuilder(top, diagnostics: &diagnostics)
        let output = readOutput(top, diagnostics: &diagnostics)
        let signing = readSigning(top, diagnostics: &diagnostics)
        let allowInline = top.bool("allow_inline_psk", diagnostics: &diagnostics)?.value ?? false

        var defaults = SiteSettings()
        if let value = top.value("defaults") {
            defaults = readSiteSettings(value, at: JSONPath.root.key("defaults"), extraKeys: [], allowInlinePSK: allowInline, diagnostics: &diagnostics)?.settings ?? SiteSettings()
        }

        var sites: [SiteEntry] = []
        if let elements = top.array("sites", required: true, diagnostics: &diagnostics) {
            if elements.isEmpty { diagnostics.error(JSONPath.root.key("sites"), "no sites; add at least one") }
            for (value, path) in elements {
                guard let (settings, reader) = readSiteSettings(value, at: path, extraKeys: ["id"], allowInlinePSK: allowInline, diagnostics: &diagnostics) else { continue }
                guard let id = reader.string("id", required: true, diagnostics: &diagnostics) else { continue }
                if !Names.isSafeName(id.value) {
                    diagnostics.error(id.path, "\"\(id.value)\" is not a safe site id; use lower-case letters, digits and dashes (1–63, no leading or trailing dash): it becomes file and container names")
                } else if id.value == "common" {
                    diagnostics.error(id.path, "\"common\" is reserved (variants/common/ holds the shared files); choose another site id")
                }
                sites.append(SiteEntry(id: id.value, settings: settings, path: path))
            }
            var firstSeen: [String: JSONPath] = [:]
            for site in sites {
                if let earlier = firstSeen[site.id] {
                    diagnostics.error(site.path.key("id"), "site id \"\(site.id)\" is used twice (also at \(earlier)); site ids must be unique")
                } else {
                    firstSeen[site.id] = site.path
                }
            }
        }

        let matrix = readMatrix(top, allowInlinePSK: allowInline, diagnostics: &diagnostics)

        // What the FAT boot partition cannot hold depends on where it is mounted, known only now.
        if let bootMount = baseImage?.bootMount {
            let entries = defaults.files + sites.flatMap(\.settings.files) + matrix.flatMap { $0.values.flatMap(\.settings.files) }
            for entry in entries {
                if let problem = ImagePath.bootPartitionProblem(entry.destination, bootMount: bootMount) {
                    diagnostics.error(entry.path.key("destination"), problem)
                }
            }
        }

        guard let fleet, let baseImage, let builder, let signing, !diagnostics.hasErrors else { return nil }
        let directory = (filePath as NSString).deletingLastPathComponent
        return Manifest(
            filePath: filePath, directory: directory, fleet: fleet.value, baseImage: baseImage,
            builder: builder, output: output, signing: signing, allowInlinePSK: allowInline,
            defaults: defaults, sites: sites, matrix: matrix)
    }

    /// `{serial}` is resolved on the device at first boot, and only the hostname is rewritten
    /// there; anywhere else it would reach the image literally.
    static func checkSerialPlaceholders(_ value: JSONValue, at path: JSONPath, key: String?, diagnostics: inout Diagnostics) {
        switch value {
        case .string(let text) where text.contains(Variant.serialPlaceholder) && key != "hostname":
            diagnostics.error(path, "{serial} is only resolved in \"hostname\" (at first boot, from the device's serial number); it cannot be used here")
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                checkSerialPlaceholders(element, at: path.index(index), key: key, diagnostics: &diagnostics)
            }
        case .object(let fields):
            for name in fields.keys.sorted() {
                checkSerialPlaceholders(fields[name]!, at: path.key(name), key: name, diagnostics: &diagnostics)
            }
        default:
            break
        }
    }

    // MARK: - Sections

    static func readBaseImage(_ top: ObjectReader, diagnostics: inout Diagnostics) -> BaseImageSpec? {
        let path = JSONPath.root.key("base_image")
        guard let value = top.value("base_image") else {
            diagnostics.error(path, "required; describe the base image: {\"source\": …, \"sha256\": …, \"arch\": \"arm64\"}")
            return nil
        }
        guard let reader = ObjectReader(value, at: path, knownKeys: ["source", "sha256", "checksum_url", "arch", "partitions", "os"], diagnostics: &diagnostics) else { return nil }
        var sourceValue: BaseImageSpec.Source?
        if let source = reader.string("source", required: true, diagnostics: &diagnostics) {
            if source.value.contains("://") {
                if Names.isHTTPURL(source.value) {
                    sourceValue = .url(source.value)
                } else {
                    diagnostics.error(source.path, "\"\(source.value)\": only http and https URLs are supported; or give a path relative to the manifest")
                }
            } else if let problem = Names.checkRelativePath(source.value) {
                diagnostics.error(source.path, problem)
            } else {
                sourceValue = .path(source.value)
                diagnostics.reference(source.value, at: source.path)
            }
        }
        let sha = reader.string("sha256", diagnostics: &diagnostics)
        if let sha, !Names.isSHA256Hex(sha.value) {
            diagnostics.error(sha.path, "not a SHA-256 digest; expected 64 lower-case hex digits (as `sha256sum` prints)")
        }
        let checksumURL = reader.string("checksum_url", diagnostics: &diagnostics)
        if let checksumURL, !Names.isHTTPURL(checksumURL.value) {
            diagnostics.error(checksumURL.path, "\"\(checksumURL.value)\" is not an http(s) URL")
        }
        switch (sha, checksumURL) {
        case (nil, nil):
            diagnostics.error(path.key("sha256"), "required: give the base image's \"sha256\" or a \"checksum_url\", so a corrupted or swapped download is never used")
        case (.some, .some):
            diagnostics.error(path.key("checksum_url"), "give either \"sha256\" or \"checksum_url\", not both")
        default:
            break
        }
        if case .path = sourceValue, checksumURL != nil, sha == nil {
            diagnostics.error(path.key("checksum_url"), "a local base image needs \"sha256\"; \"checksum_url\" is for downloads")
        }
        let arch = reader.string("arch", required: true, diagnostics: &diagnostics)
        if let arch, !["arm64", "armhf"].contains(arch.value) {
            diagnostics.error(arch.path, "\"\(arch.value)\" is not supported; use \"arm64\" (Raspberry Pi OS 64-bit) or \"armhf\" (32-bit)")
        }
        var boot: Int?, root: Int?, bootMount = "/boot/firmware"
        if let partitions = reader.value("partitions"),
           let p = ObjectReader(partitions, at: path.key("partitions"), knownKeys: ["boot", "root", "boot_mount"], diagnostics: &diagnostics) {
            for key in ["boot", "root"] {
                if let number = p.integer(key, diagnostics: &diagnostics) {
                    if !(1...128).contains(number.value) {
                        diagnostics.error(number.path, "partition number \(number.value) is out of range; partitions are numbered from 1 as Linux does (mmcblk0p1 = 1)")
                    } else if key == "boot" { boot = number.value } else { root = number.value }
                }
            }
            if let boot, boot == root {
                diagnostics.error(path.key("partitions").key("root"), "boot and root are both partition \(boot); they must differ")
            }
            if let mount = p.string("boot_mount", diagnostics: &diagnostics) {
                if let problem = Names.checkImagePath(mount.value) {
                    diagnostics.error(mount.path, problem)
                } else {
                    bootMount = mount.value
                }
            }
        }
        let os = reader.value("os").flatMap { readOSOverride($0, at: path.key("os"), diagnostics: &diagnostics) }
        guard let sourceValue, let arch else { return nil }
        return BaseImageSpec(source: sourceValue, sha256: sha?.value, checksumURL: checksumURL?.value, arch: arch.value,
                             bootPartition: boot, rootPartition: root, bootMount: bootMount, os: os)
    }

    static let knownCodenames = ["bookworm", "trixie"]

    /// `base_image.os`: `{"codename": "bookworm" | "trixie", "init_format": "userconf" | "cloud-init"}`.
    static func readOSOverride(_ value: JSONValue, at path: JSONPath, diagnostics: inout Diagnostics) -> Located<OSOverride>? {
        guard let r = ObjectReader(value, at: path, knownKeys: ["codename", "init_format"], diagnostics: &diagnostics) else { return nil }
        var codename: String?
        if let text = r.string("codename", required: true, diagnostics: &diagnostics) {
            if knownCodenames.contains(text.value) { codename = text.value } else {
                let hint = Suggestion.closest(to: text.value, among: knownCodenames).map { "; did you mean \"\($0)\"?" } ?? ""
                diagnostics.error(text.path, "unknown Raspberry Pi OS release \"\(text.value)\"; fleet-images knows \"bookworm\" and \"trixie\"\(hint)")
            }
        }
        var format: InitFormat?
        var formatOK = true
        if let text = r.string("init_format", diagnostics: &diagnostics) {
            format = InitFormat(rawValue: text.value)
            if format == nil {
                formatOK = false
                diagnostics.error(text.path, "unknown first-boot format \"\(text.value)\"; use \"userconf\" (userconf.txt on the boot partition) or \"cloud-init\" (a NoCloud seed)")
            }
        }
        guard let codename, formatOK else { return nil }
        return Located(OSOverride(codename: codename, initFormat: format), at: path)
    }

    static func readBuilder(_ top: ObjectReader, diagnostics: inout Diagnostics) -> BuilderSpec? {
        let path = JSONPath.root.key("builder")
        guard let value = top.value("builder") else {
            diagnostics.error(path, "required; use {\"type\": \"inject\"} for the embedded builder")
            return nil
        }
        guard let reader = ObjectReader(value, at: path, knownKeys: ["type", "timeout", "image", "template", "docker_args", "mode", "variables"], diagnostics: &diagnostics) else { return nil }
        var kind: BuilderKind?
        if let type = reader.string("type", required: true, diagnostics: &diagnostics) {
            kind = BuilderKind(rawValue: type.value)
            if kind == nil {
                let hint = Suggestion.closest(to: type.value, among: BuilderKind.allCases.map(\.rawValue)).map { "; did you mean \"\($0)\"?" } ?? ""
                diagnostics.error(type.path, "unknown builder \"\(type.value)\"; use \"inject\" or \"packer-docker\"\(hint)")
            }
        }
        var timeout = 2 * 3600
        if let text = reader.string("timeout", diagnostics: &diagnostics) {
            if let seconds = Names.parseDuration(text.value) { timeout = seconds } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not a duration; write e.g. \"90s\", \"45m\" or \"2h\"")
            }
        }
        let image = reader.string("image", diagnostics: &diagnostics)
        let template = reader.string("template", diagnostics: &diagnostics)
        let dockerArgs = reader.stringArray("docker_args", diagnostics: &diagnostics)
        var mode = BuilderSpec.PackerMode.perVariant
        if let text = reader.string("mode", diagnostics: &diagnostics) {
            if let parsed = BuilderSpec.PackerMode(rawValue: text.value) { mode = parsed } else {
                diagnostics.error(text.path, "unknown mode \"\(text.value)\"; use \"per-variant\" or \"base\"")
            }
        }
        if kind == .inject {
            for key in ["image", "template", "docker_args", "mode", "variables"] where reader.has(key) {
                diagnostics.error(path.key(key), "only for the packer-docker builder; remove it or set \"type\": \"packer-docker\"")
            }
        }
        if kind == .packerDocker {
            if image == nil { diagnostics.error(path.key("image"), "required for packer-docker: the packer-builder-arm image, pinned by digest (name@sha256:…)") }
            if template == nil { diagnostics.error(path.key("template"), "required for packer-docker: the Packer template, e.g. variants/common/raspios-lite.json") }
            if let image, !image.value.contains("@sha256:") {
                if image.value.hasSuffix(":latest") || !image.value.split(separator: "/").last!.contains(":") {
                    diagnostics.error(image.path, "\"\(image.value)\" is not pinned; `:latest` changes under you. Pin it by digest: \(image.value.split(separator: ":").first!)@sha256:… (see `docker image inspect --format '{{index .RepoDigests 0}}'`)")
                } else {
                    diagnostics.warning(image.path, "\"\(image.value)\" is pinned by tag only; a digest (name@sha256:…) makes builds reproducible")
                }
            }
            if let template {
                if let problem = Names.checkRelativePath(template.value) { diagnostics.error(template.path, problem) } else {
                    diagnostics.reference(template.value, at: template.path)
                }
            }
        }
        let variables = kind == .packerDocker ? readPackerVariables(reader, diagnostics: &diagnostics) : []
        guard let kind else { return nil }
        return BuilderSpec(kind: kind, timeoutSeconds: timeout, image: image?.value, template: template?.value,
                           dockerArgs: dockerArgs?.value ?? BuilderSpec.defaultDockerArgs, packerMode: mode,
                           variables: variables)
    }

    /// `builder.variables`: `{"name": "value" | {"env": "NAME"} | {"file": "path"}}`.
    static func readPackerVariables(_ builder: ObjectReader, diagnostics: inout Diagnostics) -> [PackerVariable] {
        let path = builder.path.key("variables")
        guard let value = builder.value("variables") else { return [] }
        guard case .object(let entries) = value else {
            diagnostics.error(path, "expected an object of the template's variables, e.g. {\"pi_password_hash\": {\"file\": \"secrets/pi.hash\"}}, found \(value.typeName)")
            return []
        }
        var variables: [PackerVariable] = []
        for name in entries.keys.sorted() {
            let here = path.key(name)
            guard PackerVariable.isName(name) else {
                diagnostics.error(here, "\"\(name)\" is not a Packer variable name; use letters, digits, _ and -, starting with a letter or _")
                continue
            }
            switch entries[name]! {
            case .string(let text):
                variables.append(PackerVariable(name: name, value: .plain(text), path: here))
            case .object:
                guard let source = ObjectReader(entries[name]!, at: here, knownKeys: ["env", "file"], diagnostics: &diagnostics) else { continue }
                let env = source.string("env", diagnostics: &diagnostics)
                let file = relativePath(source, "file", required: false, diagnostics: &diagnostics)
                if let env, file != nil {
                    diagnostics.error(env.path, "give either \"env\" or \"file\", not both")
                } else if let env {
                    if Names.isEnvironmentName(env.value) {
                        variables.append(PackerVariable(name: name, value: .environment(env.value), path: env.path))
                    } else {
                        diagnostics.error(env.path, "\"\(env.value)\" is not an environment variable name")
                    }
                } else if let file {
                    variables.append(PackerVariable(name: name, value: .file(file.value), path: file.path))
                } else if !source.has("file") {
                    diagnostics.error(here, "a secret variable needs \"env\" (an environment variable) or \"file\" (a file beside the manifest)")
                }
            default:
                diagnostics.error(here, "expected a string, or {\"env\": NAME} or {\"file\": PATH} for a secret, found \(entries[name]!.typeName)")
            }
        }
        return variables
    }

    static func readOutput(_ top: ObjectReader, diagnostics: inout Diagnostics) -> OutputSpec {
        var output = OutputSpec(directory: "build/images", group: nil)
        guard let value = top.value("output"),
              let reader = ObjectReader(value, at: JSONPath.root.key("output"), knownKeys: ["directory", "group", "compress", "compress_level", "keep_raw"],
                                        diagnostics: &diagnostics) else { return output }
        if let directory = reader.string("directory", diagnostics: &diagnostics) {
            if let problem = Names.checkRelativePath(directory.value) { diagnostics.error(directory.path, problem) } else { output.directory = directory.value }
        }
        if let group = reader.string("group", diagnostics: &diagnostics) {
            if group.value.isEmpty || group.value.contains(where: { $0 == ":" || $0 == "/" || $0.isWhitespace }) {
                diagnostics.error(group.path, "\"\(group.value)\" is not a group name")
            } else {
                output.group = group.value
            }
        }
        let level = reader.integer("compress_level", diagnostics: &diagnostics)
        if let compress = reader.string("compress", diagnostics: &diagnostics) {
            if compress.value == "none" {
                if let level { diagnostics.error(level.path, "\"compress\" is \"none\": there is nothing to set a level for; remove \"compress_level\" or choose \"xz\" or \"zstd\"") }
            } else if let format = CompressionSpec.Format(rawValue: compress.value) {
                if let level, !format.levels.contains(level.value) {
                    diagnostics.error(level.path, "\(format.rawValue) levels are \(format.levels.lowerBound) to \(format.levels.upperBound) (default \(format.defaultLevel)); \(level.value) is out of range")
                } else {
                    output.compression = CompressionSpec(format: format, level: level?.value)
                }
            } else {
                diagnostics.error(compress.path, "unknown compression \"\(compress.value)\"; use \"none\", \"xz\" or \"zstd\"")
            }
        } else if let level {
            diagnostics.error(level.path, "\"compress_level\" needs \"compress\": \"xz\" or \"zstd\"")
        }
        if let keepRaw = reader.bool("keep_raw", diagnostics: &diagnostics) {
            if !keepRaw.value && output.compression == nil {
                diagnostics.error(keepRaw.path, "\"keep_raw\": false needs \"compress\": \"xz\" or \"zstd\" (without a compressed copy nothing would be left)")
            } else {
                output.keepRaw = keepRaw.value
            }
        }
        return output
    }

    static func readSigning(_ top: ObjectReader, diagnostics: inout Diagnostics) -> SigningSpec? {
        let path = JSONPath.root.key("signing")
        guard let value = top.value("signing") else {
            diagnostics.error(path, "required; every image is signed. Make a key with `fleet-images keygen --out keys/fleet-signing` and add {\"private_key\": \"keys/fleet-signing.key.pem\", \"public_key\": \"keys/fleet-signing.pub.pem\"}")
            return nil
        }
        guard let reader = ObjectReader(value, at: path, knownKeys: ["private_key", "public_key", "passphrase_env", "passphrase_file", "rsa_padding"], diagnostics: &diagnostics) else { return nil }
        let privateKey = relativePath(reader, "private_key", required: true, diagnostics: &diagnostics)
        let publicKey = relativePath(reader, "public_key", required: true, diagnostics: &diagnostics)
        var passphrase: Located<SigningSpec.Passphrase>?
        if let env = reader.string("passphrase_env", diagnostics: &diagnostics) {
            if Names.isEnvironmentName(env.value) { passphrase = Located(.environment(env.value), at: env.path) } else {
                diagnostics.error(env.path, "\"\(env.value)\" is not an environment variable name")
            }
        }
        if let file = relativePath(reader, "passphrase_file", required: false, diagnostics: &diagnostics) {
            if passphrase != nil {
                diagnostics.error(file.path, "give either \"passphrase_env\" or \"passphrase_file\", not both")
            }
            passphrase = Located(.file(file.value), at: file.path)
        }
        var padding = "pkcs1"
        if let text = reader.string("rsa_padding", diagnostics: &diagnostics) {
            if ["pkcs1", "pss"].contains(text.value) { padding = text.value } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not an RSA padding; use \"pkcs1\" (default) or \"pss\"")
            }
        }
        guard let privateKey, let publicKey else { return nil }
        return SigningSpec(privateKey: privateKey, publicKey: publicKey, passphrase: passphrase, rsaPadding: padding)
    }

    static func readMatrix(_ top: ObjectReader, allowInlinePSK: Bool, diagnostics: inout Diagnostics) -> [MatrixAxis] {
        let path = JSONPath.root.key("matrix")
        guard let value = top.value("matrix") else { return [] }
        guard case .object(let axes) = value else {
            diagnostics.error(path, "expected an object of axes, e.g. {\"board\": [\"pi4\", \"pi5\"]}, found \(value.typeName)")
            return []
        }
        var result: [MatrixAxis] = []
        for name in axes.keys.sorted() {
            let axisPath = path.key(name)
            if !Names.isAxisName(name) {
                diagnostics.error(axisPath, "\"\(name)\" is not a valid axis name; use a lower-case letter then letters, digits or underscores")
            }
            if ["site", "fleet"].contains(name) {
                diagnostics.error(axisPath, "\"\(name)\" is reserved for the {\(name)} placeholder; choose another axis name")
            }
            guard case .array(let elements) = axes[name]! else {
                diagnostics.error(axisPath, "expected an array of values, found \(axes[name]!.typeName)")
                continue
            }
            if elements.isEmpty { diagnostics.error(axisPath, "empty axis; give at least one value or remove the axis") }
            var values: [MatrixAxis.Value] = []
            for (index, element) in elements.enumerated() {
                let valuePath = axisPath.index(index)
                var text: Located<String>?
                var settings = SiteSettings()
                switch element {
                case .string(let plain):
                    text = Located(plain, at: valuePath)
                case .object:
                    guard let (read, reader) = readSiteSettings(element, at: valuePath, extraKeys: ["value", "set"], allowInlinePSK: allowInlinePSK, settingsKey: "set", diagnostics: &diagnostics) else { continue }
                    text = reader.string("value", required: true, diagnostics: &diagnostics)
                    settings = read
                default:
                    diagnostics.error(valuePath, "expected a string or {\"value\": …, \"set\": {…}}, found \(element.typeName)")
                }
                guard let text else { continue }
                if !Names.isSafeName(text.value) {
                    diagnostics.error(text.path, "\"\(text.value)\" is not a safe axis value; use lower-case letters, digits and dashes: it becomes part of variant ids")
                }
                if values.contains(where: { $0.value == text.value }) {
                    diagnostics.error(text.path, "value \"\(text.value)\" appears twice on axis \"\(name)\"")
                }
                values.append(MatrixAxis.Value(value: text.value, settings: settings, path: valuePath))
            }
            result.append(MatrixAxis(name: name, values: values))
        }
        return result
    }

    // MARK: - Site settings

    /// Reads a site-settings object. With `settingsKey` (matrix values), the settings sit in a
    /// nested object under that key and the outer object holds only `extraKeys`.
    static func readSiteSettings(_ value: JSONValue, at path: JSONPath, extraKeys: [String], allowInlinePSK: Bool,
                                 settingsKey: String? = nil, diagnostics: inout Diagnostics) -> (settings: SiteSettings, reader: ObjectReader)? {
        let outerKeys = settingsKey == nil ? siteSettingKeys + extraKeys : extraKeys
        guard let outer = ObjectReader(value, at: path, knownKeys: outerKeys, diagnostics: &diagnostics) else { return nil }
        var reader = outer
        if let settingsKey {
            guard let nested = outer.value(settingsKey) else { return (SiteSettings(), outer) }
            guard let inner = ObjectReader(nested, at: path.key(settingsKey), knownKeys: siteSettingKeys, diagnostics: &diagnostics) else { return nil }
            reader = inner
        }
        var settings = SiteSettings()
        let here = reader.path
        if let region = reader.string("region", diagnostics: &diagnostics) {
            if Names.isRegion(region.value) { settings.region = region } else {
                diagnostics.error(region.path, "\"\(region.value)\" is not an AWS region name; expected the form eu-central-1, us-east-1, ap-southeast-2")
            }
        }
        if let iot = reader.value("iot"), let r = ObjectReader(iot, at: here.key("iot"), knownKeys: ["data_endpoint", "credential_endpoint", "role_alias", "provisioning_template"], diagnostics: &diagnostics) {
            settings.iot.dataEndpoint = r.string("data_endpoint", diagnostics: &diagnostics)
            settings.iot.credentialEndpoint = r.string("credential_endpoint", diagnostics: &diagnostics)
            settings.iot.roleAlias = awsName(r, "role_alias", diagnostics: &diagnostics)
            settings.iot.provisioningTemplate = awsName(r, "provisioning_template", diagnostics: &diagnostics)
        }
        if let claim = reader.value("claim"), let r = ObjectReader(claim, at: here.key("claim"), knownKeys: ["certificate", "private_key"], diagnostics: &diagnostics) {
            settings.claim.certificate = relativePath(r, "certificate", required: false, diagnostics: &diagnostics)
            settings.claim.privateKey = relativePath(r, "private_key", required: false, diagnostics: &diagnostics)
        }
        if let wifi = reader.value("wifi"), let r = ObjectReader(wifi, at: here.key("wifi"), knownKeys: ["ssid", "country", "psk_env", "psk_file", "psk", "hidden"], diagnostics: &diagnostics) {
            settings.wifi = readWifi(r, allowInlinePSK: allowInlinePSK, diagnostics: &diagnostics)
        }
        if let hostname = reader.string("hostname", diagnostics: &diagnostics) {
            settings.hostname = hostname
        }
        if let files = reader.array("files", diagnostics: &diagnostics) {
            settings.files = files.compactMap { readFile($0.0, at: $0.1, diagnostics: &diagnostics) }
        }
        if let user = reader.value("user"), let r = ObjectReader(user, at: here.key("user"), knownKeys: ["name", "password_hash_file", "password_hash_env"], diagnostics: &diagnostics) {
            settings.user = readUser(r, diagnostics: &diagnostics)
        }
        if let ssh = reader.value("ssh"), let r = ObjectReader(ssh, at: here.key("ssh"), knownKeys: ["authorized_keys", "password_authentication"], diagnostics: &diagnostics) {
            settings.ssh = readSSH(r, diagnostics: &diagnostics)
        }
        if let text = reader.string("timezone", diagnostics: &diagnostics) {
            if Names.isTimezone(text.value) { settings.timezone = text } else {
                let hint = text.value.uppercased() == "UTC" ? "; for UTC write \"Etc/UTC\"" : ""
                diagnostics.error(text.path, "\"\(text.value)\" is not a time zone name; write Area/City as in /usr/share/zoneinfo, e.g. \"Europe/Zurich\"\(hint)")
            }
        }
        if let text = reader.string("keyboard", diagnostics: &diagnostics) {
            if Names.isKeyboardLayout(text.value) { settings.keyboard = text } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not an XKB keyboard layout; write 2 to 8 lower-case letters, e.g. \"ch\", \"de\" or \"us\" (several joined by commas)")
            }
        }
        if let text = reader.string("locale", diagnostics: &diagnostics) {
            if Names.isLocale(text.value) { settings.locale = text } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not a locale name; write language_COUNTRY with an optional .UTF-8, e.g. \"de_CH.UTF-8\" or \"en_GB.UTF-8\"")
            }
        }
        if let firstBoot = reader.value("first_boot"), let r = ObjectReader(firstBoot, at: here.key("first_boot"), knownKeys: ["command", "retry", "layout"], diagnostics: &diagnostics) {
            settings.firstBoot = readFirstBoot(r, diagnostics: &diagnostics)
        }
        return (settings, outer)
    }

    static func readUser(_ r: ObjectReader, diagnostics: inout Diagnostics) -> UserSettings {
        var user = UserSettings()
        if let name = r.string("name", diagnostics: &diagnostics) {
            if name.value == "root" {
                diagnostics.error(name.path, "the login user cannot be root (Raspberry Pi OS renames its UID-1000 user to this name); choose another name, e.g. \"fleet\"")
            } else if Names.isLinuxUserName(name.value) {
                user.name = name
            } else {
                diagnostics.error(name.path, "\"\(name.value)\" is not a Linux user name; use a lower-case letter or _ then up to 31 lower-case letters, digits, _ or -")
            }
        }
        var sources: [Located<PasswordHashSource>] = []
        if let env = r.string("password_hash_env", diagnostics: &diagnostics) {
            if Names.isEnvironmentName(env.value) { sources.append(Located(.environment(env.value), at: env.path)) } else {
                diagnostics.error(env.path, "\"\(env.value)\" is not an environment variable name")
            }
        }
        if let file = relativePath(r, "password_hash_file", required: false, diagnostics: &diagnostics) {
            sources.append(Located(.file(file.value), at: file.path))
        }
        if sources.count > 1 {
            diagnostics.error(sources[1].path, "give either \"password_hash_env\" or \"password_hash_file\", not both")
        }
        user.passwordHash = sources.first
        return user
    }

    static func readSSH(_ r: ObjectReader, diagnostics: inout Diagnostics) -> SSHSettings {
        var ssh = SSHSettings()
        let errorsBefore = diagnostics.errors.count
        if let keys = r.stringArray("authorized_keys", diagnostics: &diagnostics) {
            for (index, file) in keys.value.enumerated() {
                let path = keys.path.index(index)
                if let problem = Names.checkRelativePath(file) {
                    diagnostics.error(path, problem)
                } else {
                    diagnostics.reference(file, at: path)
                }
            }
            // A list with a bad element is not used: the paths of the others would shift.
            if diagnostics.errors.count == errorsBefore { ssh.authorizedKeys = keys }
        }
        ssh.passwordAuthentication = r.bool("password_authentication", diagnostics: &diagnostics)
        return ssh
    }

    static func readFirstBoot(_ r: ObjectReader, diagnostics: inout Diagnostics) -> FirstBootSettings {
        var firstBoot = FirstBootSettings()
        if r.fields.isEmpty {
            diagnostics.error(r.path, "empty; give \"command\" (and optionally \"retry\"), or \"layout\": \"\(legacyLayout)\"")
        }
        let errorsBefore = diagnostics.errors.count
        if let command = r.stringArray("command", diagnostics: &diagnostics) {
            if let program = command.value.first {
                if let problem = Names.checkImagePath(program) {
                    diagnostics.error(command.path.index(0), problem.replacingOccurrences(of: "e.g. /etc/motd", with: "e.g. /usr/local/lib/fleet-images/provision.sh"))
                }
                for (index, argument) in command.value.enumerated().dropFirst()
                where argument.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                    diagnostics.error(command.path.index(index), "an argument contains a control character (newline, tab, NUL…); a systemd unit cannot carry it")
                }
                if diagnostics.errors.count == errorsBefore { firstBoot.command = command }
            } else {
                diagnostics.error(command.path, "empty; give the program's absolute path in the image, then its arguments, e.g. [\"/usr/local/lib/fleet-images/provision.sh\"]")
            }
        }
        if let text = r.string("retry", diagnostics: &diagnostics) {
            if let seconds = Names.parseDuration(text.value) { firstBoot.retrySeconds = Located(seconds, at: text.path) } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not a duration; write e.g. \"90s\", \"5m\" or \"1h\"")
            }
        }
        if let layout = r.string("layout", diagnostics: &diagnostics) {
            if layout.value != legacyLayout {
                diagnostics.error(layout.path, "unknown layout \"\(layout.value)\"; the only one is \"\(legacyLayout)\" (the seed's /home/pi files started from /etc/rc.local, kept for old fleets); or give \"command\"")
            } else if r.has("command") {
                diagnostics.error(layout.path, "give either \"command\" (a root-owned first-boot unit runs it) or \"layout\": \"\(legacyLayout)\", not both")
            } else if r.has("retry") {
                diagnostics.error(r.path.key("retry"), "\"retry\" is for \"command\"; the legacy layout runs once from /etc/rc.local and never retries")
            } else {
                firstBoot.legacyLayout = Located(true, at: layout.path)
            }
        }
        return firstBoot
    }

    static func readWifi(_ r: ObjectReader, allowInlinePSK: Bool, diagnostics: inout Diagnostics) -> WifiSettings {
        var wifi = WifiSettings()
        if let ssid = r.string("ssid", diagnostics: &diagnostics) {
            let length = ssid.value.utf8.count
            if !(1...32).contains(length) {
                diagnostics.error(ssid.path, "SSID is \(length) bytes; an SSID is 1 to 32 bytes")
            } else {
                wifi.ssid = ssid
            }
        }
        if let country = r.string("country", diagnostics: &diagnostics) {
            if Names.isCountryCode(country.value) { wifi.country = country } else {
                let upper = country.value.uppercased()
                let hint = Names.isCountryCode(upper) ? "; write it in upper case: \"\(upper)\"" : ""
                diagnostics.error(country.path, "\"\(country.value)\" is not an ISO 3166-1 two-letter country code (e.g. CH, DE, US)\(hint); it sets the Wi-Fi regulatory domain")
            }
        }
        var sources: [Located<PSKSource>] = []
        if let env = r.string("psk_env", diagnostics: &diagnostics) {
            if Names.isEnvironmentName(env.value) { sources.append(Located(.environment(env.value), at: env.path)) } else {
                diagnostics.error(env.path, "\"\(env.value)\" is not an environment variable name")
            }
        }
        if let file = relativePath(r, "psk_file", required: false, diagnostics: &diagnostics) {
            sources.append(Located(.file(file.value), at: file.path))
        }
        if let inline = r.value("psk") {
            let path = r.path.key("psk")
            if !allowInlinePSK {
                diagnostics.error(path, "an inline passphrase ends up in version control; use \"psk_env\" or \"psk_file\" (or set \"allow_inline_psk\": true at the top level)")
            } else if case .string(let text) = inline {
                if let problem = WifiRules.checkPassphrase(Secret(text)) {
                    diagnostics.error(path, problem)
                } else {
                    sources.append(Located(.inline(Secret(text)), at: path))
                }
            } else {
                diagnostics.error(path, "expected a string, found \(inline.typeName)")
            }
        }
        if sources.count > 1 {
            diagnostics.error(sources[1].path, "give only one of \"psk_env\", \"psk_file\" and \"psk\"")
        }
        wifi.psk = sources.first
        wifi.hidden = r.bool("hidden", diagnostics: &diagnostics)
        return wifi
    }

    static func readFile(_ value: JSONValue, at path: JSONPath, diagnostics: inout Diagnostics) -> FileEntry? {
        guard let r = ObjectReader(value, at: path, knownKeys: ["source", "destination", "mode", "owner"], diagnostics: &diagnostics) else { return nil }
        let source = relativePath(r, "source", required: true, diagnostics: &diagnostics)
        let destination = r.string("destination", required: true, diagnostics: &diagnostics)
        let destinationProblem = destination.flatMap { ImagePath.destinationProblem($0.value, bootMount: nil) }
        if let destination, let destinationProblem {
            diagnostics.error(destination.path, destinationProblem)
        }
        var mode: UInt32 = 0o644
        if let text = r.string("mode", diagnostics: &diagnostics) {
            if let parsed = Names.parseMode(text.value) { mode = parsed } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not a file mode; write octal digits as a string, e.g. \"0644\" or \"0755\"")
            }
        }
        var uid: UInt32 = 0, gid: UInt32 = 0
        if let text = r.string("owner", diagnostics: &diagnostics) {
            if let parsed = Names.parseOwner(text.value) { (uid, gid) = parsed } else {
                diagnostics.error(text.path, "\"\(text.value)\" is not an owner; write numeric \"uid:gid\", e.g. \"1000:1000\" for the pi user or \"0:0\" for root")
            }
        }
        guard let source, let destination, destinationProblem == nil else { return nil }
        return FileEntry(source: source.value, destination: destination.value, mode: mode, uid: uid, gid: gid,
                         ownerGiven: r.has("owner") || r.has("mode"), path: path)
    }

    // MARK: - Helpers

    static func relativePath(_ r: ObjectReader, _ key: String, required: Bool, diagnostics: inout Diagnostics) -> Located<String>? {
        guard let text = r.string(key, required: required, diagnostics: &diagnostics) else { return nil }
        if let problem = Names.checkRelativePath(text.value) {
            diagnostics.error(text.path, problem)
            return nil
        }
        diagnostics.reference(text.value, at: text.path)
        return text
    }

    /// Greengrass role aliases and provisioning template names: AWS allows letters, digits and `=,@-_` (1–128).
    static func awsName(_ r: ObjectReader, _ key: String, diagnostics: inout Diagnostics) -> Located<String>? {
        guard let text = r.string(key, diagnostics: &diagnostics) else { return nil }
        let allowed = text.value.utf8.allSatisfy { Names.isAlnum($0) || "=,@-_.".utf8.contains($0) }
        guard allowed, (1...128).contains(text.value.utf8.count) else {
            diagnostics.error(text.path, "\"\(text.value)\" is not a valid AWS IoT name; use 1–128 letters, digits and = , @ - _ .")
            return nil
        }
        return text
    }

    /// An empty file, or one that is not UTF-8, is said to be so (rather than failing as JSON).
    static func encodingProblem(_ bytes: [UInt8]) -> String? {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return bytes.isEmpty
                ? "the manifest is empty (0 bytes); write the fleet's manifest into it (see the README's manifest section, or start from examples/matrix/fleet.json)"
                : "the manifest holds only white space; write the fleet's manifest into it (see the README's manifest section)"
        }
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) || (bytes.count >= 2 && (bytes[0] == 0 || bytes[1] == 0)) {
            return "the manifest is UTF-16 or UTF-32 text; save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)"
        }
        if String(validating: bytes, as: UTF8.self) != nil { return nil }
        // Not UTF-8: find where, for the message.
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0, line = 1, column = 1
        loop: while true {
            let before = offset
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
                if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput:
                break loop
            case .error:
                let byte = before < bytes.count ? bytes[before] : 0
                return "the manifest is not UTF-8 text: byte 0x\(String(byte, radix: 16, uppercase: true)) at line \(line), column \(column) (byte offset \(before)) is not valid UTF-8; save the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)"
            }
        }
        return nil
    }
}
