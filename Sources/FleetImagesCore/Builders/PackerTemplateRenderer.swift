import Foundation

/// Turns the repository's Packer template (`builder.template`, the seed's `raspios-lite.json`
/// shape) into one build context: for a variant, or for the fleet's shared base (base mode).
///
/// What fleet-images decides, whatever the template says:
/// - where the base comes from: `file_urls` is `base_image.source` (a URL as is; a repository
///   path mounted read-only at `/fleet-images/base/<name>`), the checksum is `base_image.sha256`
///   (`file_checksum`) or `base_image.checksum_url` (`file_checksum_url`), and the source's
///   format (`.img`, `.xz`, `.gz`, `.zst`, `.zip`) sets `file_unarchive_cmd` and
///   `file_target_extension` (``unarchiving(_:)``);
/// - the qemu binary: from `base_image.arch` (`arm64` → `qemu-aarch64-static`, `armhf` →
///   `qemu-arm-static`; the seed named `qemu-arm-static` for an arm64 image, which fails with
///   "Exec format error");
/// - the files: one `file` provisioner per ``ContentItem`` (what `plan` shows), between
///   fleet-images' `prepare` and `finish` chroot scripts (``PackerChrootScript``). The template's
///   own `file` provisioners are replaced; each must name a destination the variant writes, so
///   nothing the template meant is silently lost. In base mode no file goes in: the inject
///   builder writes them all per variant.
///
/// The template's other provisioners (the `shell` one running `set_os.sh`) follow, their scripts
/// copied into `scripts/`. Missing `image_build_method`, `image_type` and `image_chroot_env` get
/// the seed's values. The result is checked against ``PackerArmFields`` and printed with sorted
/// keys (``PackerJSON``), so the same inputs give the same bytes.
public struct PackerTemplateRenderer: Sendable {
    public enum Target: Sendable {
        /// One variant: its id and content.
        case variant(id: String, items: [ContentItem])
        /// The fleet's shared base: the template's scripts only.
        case base
    }

    /// A value of `builder.variables`, read from where the manifest says (never printed).
    public struct Variable: Sendable {
        public var name: String
        public var value: Secret
        public var secret: Bool

        public init(name: String, value: Secret, secret: Bool) {
            self.name = name
            self.value = value
            self.secret = secret
        }
    }

    public var manifest: Manifest
    /// The parsed template.
    public var template: JSONValue
    /// Absolute path of the template (its folder resolves the template's script paths).
    public var templatePath: String
    /// The template variables the manifest sets: they go into ``varFileName`` (mode 0600, in the
    /// build context; Packer reads it with `-var-file`), the secret ones are added to the
    /// template's `sensitive-variables` so that Packer masks them in its output.
    public var variables: [Variable] = []

    /// The var-file in the build context, when the manifest sets variables.
    public static let varFileName = "fleet-images.vars.json"

    /// Where a repository base image is mounted in the container.
    public static let baseMountFolder = "/fleet-images/base"
    public static let topLevelKeys: Set<String> = ["variables", "sensitive-variables", "builders", "provisioners", "post-processors", "description", "min_packer_version"]
    public static let seedChrootEnvironment = ["PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"]

    public init(manifest: Manifest, template: JSONValue, templatePath: String) {
        self.manifest = manifest
        self.template = template
        self.templatePath = templatePath
    }

    /// Reads and parses the manifest's template, and the values of `builder.variables` from
    /// `environment` and the manifest's folder.
    public static func load(manifest: Manifest, environment: [String: String]) throws -> PackerTemplateRenderer {
        var renderer = try load(manifest: manifest)
        let resolver = SecretResolver(manifest: manifest, environment: environment)
        for variable in manifest.builder.variables {
            switch resolver.packerVariable(variable) {
            case .success(let value):
                guard String(validating: value.unsafeBytes, as: UTF8.self) != nil else {
                    throw PackerDockerError.template("the value of \(variable.name) is not UTF-8 text; Packer variables are strings", path: variable.path.description)
                }
                renderer.variables.append(Variable(name: variable.name, value: value, secret: variable.isSecret))
            case .failure(let problem):
                throw PackerDockerError.template(problem.description, path: variable.path.description)
            }
        }
        return renderer
    }

    /// Reads and parses the manifest's template.
    public static func load(manifest: Manifest) throws -> PackerTemplateRenderer {
        guard let relative = manifest.builder.template else {
            throw PackerDockerError.template("builder.template is not set", path: manifest.filePath)
        }
        let path = manifest.directory + "/" + relative
        // Through InputFile: a FIFO in the template's place is refused, not waited on.
        let data: Data
        switch InputFile.read(path, shown: relative, what: "the Packer template (builder.template)") {
        case .success(let bytes): data = Data(bytes)
        case .failure(let problem): throw PackerDockerError.template("cannot read it: \(problem)", path: path)
        }
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch {
            throw PackerDockerError.template("not valid JSON: \(error); fleet-images reads Packer's JSON templates, not HCL", path: path)
        }
        return PackerTemplateRenderer(manifest: manifest, template: value, templatePath: path)
    }

    /// The names under the template's `"variables"`, or nil when the template cannot be read or
    /// parsed (``load(manifest:)`` reports that).
    public static func declaredVariables(templateAt path: String) -> Set<String>? {
        guard case .success(let bytes) = InputFile.read(path, shown: path, what: "the Packer template"),
              case .object(let top)? = try? JSONValue.parse(Data(bytes)) else { return nil }
        guard case .object(let variables)? = top["variables"] else { return [] }
        return Set(variables.keys)
    }

    /// The qemu user-mode emulator packer-builder-arm copies into the chroot for `arch`.
    public static func qemuBinary(forArch arch: String) -> String? {
        switch arch {
        case "arm64", "aarch64": "/usr/bin/qemu-aarch64-static"
        case "armhf", "armel", "arm", "armv6l", "armv7l": "/usr/bin/qemu-arm-static"
        default: nil
        }
    }

    /// How packer-builder-arm unpacks a base archive named `name`, for every format the inject
    /// builder accepts (``BaseImageResolver``): `file_target_extension` and `file_unarchive_cmd`.
    ///
    /// The builder (`StepExtractAndCopyImage`) copies the download into a temporary folder, runs
    /// the command there with `$ARCHIVE_PATH` and `$TMP_DIR` replaced (exec, no shell), removes the
    /// archive if it is still there and wants exactly one file left, the image. It skips unpacking
    /// only for the extensions `img` and `iso`, so a raw image (or a name with no known archive
    /// suffix, which the inject builder also reads as raw) gets `img` and no command. Its image
    /// (Ubuntu) has `xz`, `gzip` and libarchive's `bsdcat`/`bsdtar` but no `zstd` or `unzip`, hence:
    /// `.zst` through `bsdcat`, `.zip` through `bsdtar`, extracting its one `.img` member (any
    /// case, any folder; a zip with none or several is refused, as the inject builder refuses it).
    public static func unarchiving(_ name: String) -> (command: [String]?, targetExtension: String) {
        let lower = name.lowercased()
        if lower.hasSuffix(".xz") { return (["xz", "-d", "$ARCHIVE_PATH"], "xz") }
        if lower.hasSuffix(".gz") { return (["gzip", "-d", "$ARCHIVE_PATH"], "gz") }
        if lower.hasSuffix(".zst") {
            return (["/bin/sh", "-c", #"bsdcat -- "$1" >"${1%.*}" && rm -f -- "$1""#, "unarchive", "$ARCHIVE_PATH"], "zst")
        }
        if lower.hasSuffix(".zip") {
            let script = #"set -e; n=$(bsdtar -t -f "$1" | grep -ci '\.img$' || true); "#
                + #"if [ "$n" != 1 ]; then echo "the zip holds $n .img files; it must hold exactly one" >&2; exit 1; fi; "#
                + #"bsdtar -x -O -f "$1" '*.[iI][mM][gG]' >"$2/base.img"; rm -f -- "$1""#
            return (["/bin/sh", "-c", script, "unarchive", "$ARCHIVE_PATH", "$TMP_DIR"], "zip")
        }
        return (nil, "img")
    }

    public func render(_ target: Target) throws -> PackerBuildContext {
        let path = templatePath
        func fail(_ message: String) -> PackerDockerError { .template(message, path: path) }
        guard case .object(var top) = template else { throw fail("the template is not a JSON object") }
        for key in top.keys.sorted() where !Self.topLevelKeys.contains(key) {
            let hint = Suggestion.closest(to: key, among: Self.topLevelKeys.sorted()).map { "; did you mean \"\($0)\"?" } ?? ""
            throw fail("\"\(key)\" is not a key of a Packer JSON template\(hint)")
        }
        guard case .array(let builders)? = top["builders"], builders.count == 1, case .object(var builder) = builders[0],
              PackerJSON.string(builder["type"]) == "arm" else {
            throw fail("\"builders\" must hold exactly one builder of \"type\": \"arm\" (packer-builder-arm)")
        }
        var notes: [String] = []
        var mounts: [PackerBuildContext.Mount] = []
        let variantID: String
        switch target {
        case .variant(let id, _): variantID = id
        case .base: variantID = "base"
        }

        // The base archive.
        let base = manifest.baseImage
        let sourceName: String
        switch base.source {
        case .url(let url):
            builder["file_urls"] = .array([.string(url)])
            sourceName = url.split(separator: "?").first.map(String.init) ?? url
        case .path(let relative):
            let name = (relative as NSString).lastPathComponent
            let inside = Self.baseMountFolder + "/" + name
            mounts.append(.init(host: manifest.directory + "/" + relative, container: inside))
            builder["file_urls"] = .array([.string(inside)])
            sourceName = name
        }
        if let sha = base.sha256 {
            builder["file_checksum"] = .string(sha)
            builder["file_checksum_type"] = .string("sha256")
            builder["file_checksum_url"] = nil
        } else if let url = base.checksumURL {
            builder["file_checksum_url"] = .string(url)
            builder["file_checksum_type"] = .string("sha256")
            builder["file_checksum"] = nil
        }
        let unpacking = Self.unarchiving(sourceName)
        builder["file_unarchive_cmd"] = unpacking.command.map { .array($0.map { .string($0) }) }
        builder["file_target_extension"] = .string(unpacking.targetExtension)

        // The qemu binary follows the base image's architecture.
        guard let qemu = Self.qemuBinary(forArch: base.arch) else {
            throw fail("no qemu binary is known for base_image.arch \"\(base.arch)\"")
        }
        if let given = PackerJSON.string(builder["qemu_binary_source_path"]), given != qemu {
            notes.append("qemu_binary_source_path \(given) replaced by \(qemu): base_image.arch is \(base.arch) (in packer-builder-arm's container, with DONT_SETUP_QEMU=1, the host's binfmt_misc entry runs the image's programs instead)")
        }
        builder["qemu_binary_source_path"] = .string(qemu)
        builder["qemu_binary_destination_path"] = .string(qemu)

        // The seed's values where the template has none.
        if builder["image_build_method"] == nil { builder["image_build_method"] = .string("reuse") }
        if builder["image_type"] == nil { builder["image_type"] = .string("dos") }
        if builder["image_chroot_env"] == nil { builder["image_chroot_env"] = .array(Self.seedChrootEnvironment.map { .string($0) }) }
        if let given = PackerJSON.strings(builder["image_chroot_env"]), given != Self.seedChrootEnvironment {
            notes.append("image_chroot_env has no effect in packer-builder-arm's container: its entrypoint sets DONT_SETUP_QEMU=1, and then provisioners run with the container's environment; set variables in the shell provisioner's environment_vars instead")
        }

        // Where the image is written, relative to /build.
        var imagePath = PackerJSON.string(builder["image_path"]) ?? "\(variantID).img"
        if imagePath.hasPrefix("/build/") { imagePath = String(imagePath.dropFirst("/build/".count)) }
        while imagePath.hasPrefix("./") { imagePath = String(imagePath.dropFirst(2)) }
        if imagePath.hasPrefix("/") || imagePath.split(separator: "/").contains("..") || imagePath.isEmpty {
            throw fail("image_path \"\(imagePath)\" must be a path inside the build context (relative, no \"..\")")
        }
        if imagePath.hasPrefix("files/") || imagePath.hasPrefix("scripts/") || imagePath.hasPrefix(".packer_cache") {
            throw fail("image_path \"\(imagePath)\" is inside a folder fleet-images fills; choose another name")
        }
        builder["image_path"] = .string(imagePath)

        let problems = PackerArmFields.problems(in: builder)
        if !problems.isEmpty {
            throw fail("the arm builder: " + problems.joined(separator: "; "))
        }
        top["builders"] = .array([.object(builder)])

        // Provisioners.
        var files: [PackerBuildContext.File] = []
        var provisioners: [JSONValue] = []
        let templateProvisioners: [JSONValue]
        switch top["provisioners"] {
        case .array(let list)?: templateProvisioners = list
        case nil: templateProvisioners = []
        default: throw fail("\"provisioners\" is not an array")
        }
        var written: Set<String> = []
        if case .variant(let id, let items) = target {
            let (contextFiles, generated, destinations) = fileProvisioners(variantID: id, items: items)
            files += contextFiles
            provisioners += generated
            written = destinations
        }
        var scriptNames: Set<String> = [PackerChrootScript.prepareName, PackerChrootScript.finishName]
        let templateFolder = (templatePath as NSString).deletingLastPathComponent
        for (index, entry) in templateProvisioners.enumerated() {
            guard case .object(var provisioner) = entry, let type = PackerJSON.string(provisioner["type"]) else {
                throw fail("provisioners[\(index)] has no \"type\"")
            }
            if type == "file" {
                guard case .variant = target else {
                    notes.append("provisioners[\(index)] (file) left out of the base: the inject builder writes every variant's files")
                    continue
                }
                let destination = PackerJSON.string(provisioner["destination"]) ?? ""
                guard written.contains(destination) else {
                    throw fail("provisioners[\(index)] copies a file to \"\(destination)\", which the manifest does not put into the image; fleet-images writes the files of the manifest (claim, parameters, Wi-Fi, `files`): add it to `files` in the manifest")
                }
                continue
            }
            for key in ["script", "scripts"] where provisioner[key] != nil {
                let sources: [String]
                if key == "script" {
                    guard let one = PackerJSON.string(provisioner[key]) else { throw fail("provisioners[\(index)].script is not a string") }
                    sources = [one]
                } else {
                    guard let list = PackerJSON.strings(provisioner[key]) else { throw fail("provisioners[\(index)].scripts is not an array of strings") }
                    sources = list
                }
                var renamed: [String] = []
                for source in sources {
                    let name = (source as NSString).lastPathComponent
                    guard !scriptNames.contains(name) else {
                        throw fail("provisioners[\(index)]: two scripts named \(name); fleet-images puts every script into one scripts/ folder, so give them distinct names")
                    }
                    scriptNames.insert(name)
                    let host = source.hasPrefix("/") ? source : templateFolder + "/" + source
                    guard FileManager.default.fileExists(atPath: host) else {
                        throw fail("provisioners[\(index)]: the script \(source) does not exist (looked for \(host))")
                    }
                    files.append(.init(path: "scripts/" + name, content: .copy(URL(fileURLWithPath: host).standardizedFileURL.path), mode: 0o755, secret: false))
                    renamed.append("scripts/" + name)
                }
                provisioner[key] = key == "script" ? .string(renamed[0]) : .array(renamed.map { .string($0) })
            }
            provisioners.append(.object(provisioner))
        }
        top["provisioners"] = .array(provisioners)

        // The manifest's variables: values in a private var-file, secret names masked.
        var varFile: String?
        if !variables.isEmpty {
            let declared: Set<String>
            if case .object(let given)? = top["variables"] { declared = Set(given.keys) } else { declared = [] }
            if let missing = variables.first(where: { !declared.contains($0.name) }) {
                throw fail("builder.variables sets \"\(missing.name)\", which the template does not declare; declare it in the template's \"variables\"")
            }
            var sensitive = Set(PackerJSON.strings(top["sensitive-variables"]) ?? [])
            for variable in variables where variable.secret { sensitive.insert(variable.name) }
            if !sensitive.isEmpty { top["sensitive-variables"] = .array(sensitive.sorted().map { .string($0) }) }
            var values: [String: JSONValue] = [:]
            for variable in variables { values[variable.name] = .string(variable.value.unsafeString) }
            files.append(.init(path: Self.varFileName, content: .bytes(Array(PackerJSON.render(.object(values)).utf8)),
                               mode: 0o600, secret: true))
            varFile = Self.varFileName
        }

        let templateName = (templatePath as NSString).lastPathComponent
        return PackerBuildContext(templateFileName: templateName, template: PackerJSON.render(.object(top)), files: files,
                                  imagePath: imagePath, readOnlyMounts: mounts, notes: notes, varFileName: varFile)
    }

    /// `prepare`, one `file` provisioner per destination (the last write wins, as in the inject
    /// builder), `finish`. Returns the context files, the provisioners and the destinations written.
    func fileProvisioners(variantID: String, items: [ContentItem]) -> ([PackerBuildContext.File], [JSONValue], Set<String>) {
        var last: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            switch item.source {
            case .file, .generated: last[item.destination] = index
            case .hostsEntry, .kernelParameter, .directory, .symlink: break
            }
        }
        let copied = items.enumerated().filter { last[$0.element.destination] == $0.offset }.map(\.element)
        let edits = items.filter {
            switch $0.source {
            case .hostsEntry, .kernelParameter, .directory, .symlink: true
            case .file, .generated: false
            }
        }
        var files: [PackerBuildContext.File] = []
        var provisioners: [JSONValue] = []
        var directories: [String] = []
        for item in copied {
            let folder = (item.destination as NSString).deletingLastPathComponent
            if !directories.contains(folder) { directories.append(folder) }
        }
        files.append(.init(path: "scripts/" + PackerChrootScript.prepareName,
                           content: .bytes(Array(PackerChrootScript.prepare(variantID: variantID, directories: directories).utf8)),
                           mode: 0o755, secret: false))
        provisioners.append(.object(["type": .string("shell"), "script": .string("scripts/" + PackerChrootScript.prepareName)]))
        let width = String(copied.count).count
        for (index, item) in copied.enumerated() {
            let number = String(index + 1)
            let prefix = String(repeating: "0", count: max(0, max(2, width) - number.count)) + number
            let name: String
            let content: PackerBuildContext.Content
            switch item.source {
            case .file(let relative, _):
                name = (relative as NSString).lastPathComponent
                content = .copy(manifest.directory + "/" + relative)
            case .generated(let generatedName, let bytes, _):
                name = generatedName
                content = .bytes(bytes)
            case .hostsEntry, .kernelParameter, .directory, .symlink:
                continue
            }
            let path = "files/\(prefix)-\(name)"
            files.append(.init(path: path, content: content, mode: item.isSecret ? 0o600 : 0o644, secret: item.isSecret))
            provisioners.append(.object(["type": .string("file"), "source": .string(path), "destination": .string(item.destination)]))
        }
        files.append(.init(path: "scripts/" + PackerChrootScript.finishName,
                           content: .bytes(Array(PackerChrootScript.finish(variantID: variantID, files: copied, edits: edits).utf8)),
                           mode: 0o755, secret: false))
        provisioners.append(.object(["type": .string("shell"), "script": .string("scripts/" + PackerChrootScript.finishName)]))
        return (files, provisioners, Set(items.map(\.destination)))
    }
}
