import Foundation
import Subprocess

/// The `packer-docker` builder: runs packer-builder-arm (the seed project's builder) in a real
/// Docker engine, one container per variant, several at once.
///
/// Made once per run by ``prepare(manifest:state:settings:)``, which checks the Docker CLI and
/// daemon, makes sure the pinned builder image is present (pulling it if not) and resolves its
/// digest, which every build records. Per variant it renders a private build context
/// (``PackerTemplateRenderer``) into `<work>/stage` (mode 0700; the runner removes the work folder,
/// so claim keys live there only for the build), then runs
///
///     docker create --rm --name fleet-images-<run>-<variant> --label fleet-images.run=<run>
///       --label fleet-images.variant=<variant> <docker_args…> -v <context>:/build
///       -v <state>/cache/packer:/build/.packer_cache <image id> build -machine-readable <template>
///     docker start --attach fleet-images-<run>-<variant>
///
/// (the two halves of `docker run`), streaming the output into the variant's log and showing Packer's `==>` lines as the phase.
/// Container starts are spaced by a shared ``DockerStartGate``. On cancellation or timeout the
/// container is stopped (`docker stop -t <grace>`), killed and removed, and the builder checks
/// that no container with the run's and variant's labels remains: killing the `docker start`
/// client does not stop its container.
///
/// In base mode (`builder.mode: base`) one Packer run of the template (its scripts, none of the
/// variants' files) makes the fleet's shared base once, kept under `<state>/cache/packer-base/`
/// by the digest of its inputs, and the ``InjectBuilder`` writes each variant's files into a copy.
public struct PackerDockerBuilder: ImageBuilder {
    public struct Settings: Sendable {
        /// Time between two container starts (see ``DockerStartGate``).
        public var startInterval: Duration = .seconds(5)
        /// `docker stop -t`: how long Packer may clean up (unmount, detach loop devices) before
        /// SIGKILL. packer-builder-arm's cleanup unmounts every partition and detaches the loop
        /// device; on a loaded host with several builds stopping at once that takes tens of seconds.
        public var stopGraceSeconds = 60
        /// Pull the image when it is not on the machine.
        public var pullIfMissing = true
        /// The builder image's `docker_args`; nil takes the manifest's.
        public var dockerArgs: [String]?
        /// Variables for the `docker` client on top of the inherited environment (`DOCKER_HOST`).
        public var dockerEnvironment: [String: String] = [:]
        /// Where `builder.variables` given as `{"env": …}` are read; nil reads the process's.
        public var environment: [String: String]?
        /// Where the host's binfmt_misc registrations are read (``HostBinfmt``).
        public var binfmtDirectory = HostBinfmt.defaultDirectory

        public init() {}
    }

    public var kind: BuilderKind { .packerDocker }
    /// The pinned repository digest (`name@sha256:…`) when the manifest pins one, else the local
    /// image id (`sha256:…`, what `docker image inspect --format '{{.Id}}'` prints).
    public let imageDigest: String?
    /// The local image id; containers run exactly this image.
    public let imageID: String
    /// Names and labels every container of this run (`fleet-images.run=<runToken>`): random, so
    /// two fleets on one Docker host never collide.
    public let runToken: String
    public let docker: DockerCLI
    public let renderer: PackerTemplateRenderer
    public let settings: Settings
    public let dockerArgs: [String]
    /// Shared Packer download cache, mounted into every container.
    public let packerCacheDirectory: String
    /// Base mode's cache of built bases.
    public let baseCacheDirectory: String
    public let mode: BuilderSpec.PackerMode
    /// The state's HMAC key (``StateSecretKey``): secret inputs of base mode's cache key.
    let secretKey: [UInt8]
    let gate: DockerStartGate
    let baseImages = PackerBaseImageCache()

    /// Checks Docker, resolves the builder image and loads the template, once per run.
    /// Throws ``PackerDockerError`` (exit 69, or exit 2 for a template problem).
    public static func prepare(manifest: Manifest, state: StateLocation, settings: Settings = Settings()) async throws -> PackerDockerBuilder {
        guard let reference = manifest.builder.image else {
            throw PackerDockerError.template("builder.image is not set", path: manifest.filePath)
        }
        let renderer = try PackerTemplateRenderer.load(manifest: manifest, environment: settings.environment ?? ProcessInfo.processInfo.environment)
        guard let docker = DockerCLI.find(environment: settings.dockerEnvironment) else { throw PackerDockerError.dockerMissing }
        let endpoint = try await daemonEndpoint(docker: docker, environment: settings.dockerEnvironment)
        if !isLocal(endpoint: endpoint) { throw PackerDockerError.remoteDaemon(endpoint: endpoint) }
        let version = try await docker.run(["version", "--format", "{{.Server.Version}}"])
        guard version.succeeded else { throw PackerDockerError.daemonUnreachable(detail: version.output) }
        if case .failure(let problem) = HostBinfmt.check(arch: manifest.baseImage.arch, directory: settings.binfmtDirectory) {
            throw problem
        }

        var inspected = try await inspect(reference, docker: docker)
        if inspected == nil && settings.pullIfMissing {
            let pull = try await docker.run(["pull", reference], grace: .seconds(5))
            guard pull.succeeded else { throw PackerDockerError.imageUnavailable(image: reference, detail: pull.output) }
            inspected = try await inspect(reference, docker: docker)
        }
        guard let (id, repoDigests) = inspected else {
            throw PackerDockerError.imageUnavailable(image: reference, detail: "docker image inspect found no such image")
        }
        var digest = id
        if let at = reference.range(of: "@sha256:") {
            let pinned = String(reference[reference.index(after: at.lowerBound)...])
            guard let match = repoDigests.first(where: { $0.hasSuffix("@" + pinned) }) else {
                throw PackerDockerError.digestMismatch(image: reference, found: repoDigests)
            }
            digest = match
        }
        var token = ""
        for _ in 0..<8 { token += String(UInt8.random(in: 0..<16), radix: 16) }
        return PackerDockerBuilder(
            imageDigest: digest, imageID: id, runToken: token, docker: docker, renderer: renderer, settings: settings,
            dockerArgs: settings.dockerArgs ?? manifest.builder.dockerArgs,
            packerCacheDirectory: state.cacheDirectory + "/packer", baseCacheDirectory: state.cacheDirectory + "/packer-base",
            mode: manifest.builder.packerMode, secretKey: try StateSecretKey.loadOrCreate(inDirectory: state.directory),
            gate: DockerStartGate(interval: settings.startInterval))
    }

    /// The daemon the client talks to: the current context's endpoint (which is DOCKER_HOST
    /// when that is set), or DOCKER_HOST itself for a client without contexts.
    static func daemonEndpoint(docker: DockerCLI, environment: [String: String]) async throws -> String {
        let inspected = try await docker.run(["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"])
        let endpoint = inspected.output.trimmingCharacters(in: .whitespacesAndNewlines)
        if inspected.succeeded, !endpoint.isEmpty, !endpoint.contains("\n") { return endpoint }
        return environment["DOCKER_HOST"] ?? ProcessInfo.processInfo.environment["DOCKER_HOST"] ?? "unix:///var/run/docker.sock"
    }

    /// A daemon on this machine: a Unix socket, a file descriptor, or TCP to a loopback address.
    static func isLocal(endpoint: String) -> Bool {
        if endpoint.hasPrefix("unix://") || endpoint.hasPrefix("fd://") || endpoint.hasPrefix("/") { return true }
        guard endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://"),
              let host = URLComponents(string: endpoint.hasPrefix("tcp://") ? "http://" + endpoint.dropFirst(6) : endpoint)?.host else { return false }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }

    /// `(id, repository digests)` of a local image, or nil when there is none.
    static func inspect(_ reference: String, docker: DockerCLI) async throws -> (String, [String])? {
        let outcome = try await docker.run(["image", "inspect", "--format", "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}", reference])
        guard outcome.succeeded else { return nil }
        let words = outcome.output.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let id = words.first, id.hasPrefix("sha256:") else { return nil }
        return (id, Array(words.dropFirst()))
    }

    /// The container name for one build of this run.
    public func containerName(for label: String) -> String { "fleet-images-\(runToken)-\(label)" }

    public func build(_ job: BuildJob) async throws -> String {
        switch mode {
        case .perVariant:
            return try await buildVariant(job)
        case .base:
            let log = job.log
            let base = try await baseImages.image { try await self.buildBase(note: { log($0) }) }
            log("base image (Packer, shared by the fleet): \(base)")
            var inject = job
            inject.baseImagePath = base
            return try await InjectBuilder().build(inject)
        }
    }

    func buildVariant(_ job: BuildJob) async throws -> String {
        let log = job.log
        let context = try renderer.render(.variant(id: job.variantID, items: job.planned.items))
        let stage = job.workDirectory + "/stage"
        try context.write(to: stage)
        for note in context.notes { log("note: \(note)") }
        log("build context \(stage): \(context.templateFileName), \(context.files.count) files; image_path \(context.imagePath)")
        let built = try await runPacker(context: context, directory: stage, label: job.variantID, log: log)
        guard rename(built, job.imagePath) == 0 else {
            throw BuildFailure("cannot move \(built) to \(job.imagePath): \(String(cString: strerror(errno)))")
        }
        return job.imagePath
    }

    /// Runs one container over a written context; returns the absolute path of the image it made.
    /// A build that failed because packer-builder-arm could not attach a loop device (another
    /// build took the one `losetup --find` offered it: the lookup and the attach are two steps)
    /// runs once more, and its log says so.
    func runPacker(context: PackerBuildContext, directory: String, label: String, log: BuildLog) async throws -> String {
        do {
            try FileManager.default.createDirectory(atPath: packerCacheDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        } catch {
            throw BuildFailure("cannot create the shared Packer cache \(packerCacheDirectory): \(error.localizedDescription)")
        }
        var state = try await runContainer(context: context, directory: directory, label: label, log: log)
        if state.status != 0, let problem = state.monitor.loopDeviceProblem {
            log("packer-builder-arm could not attach a loop device (\(problem.trimmingCharacters(in: .whitespaces))): another build probably took the one it found free; running this build once more")
            state = try await runContainer(context: context, directory: directory, label: label, log: log)
        }
        guard state.status == 0 else {
            throw BuildFailure(state.monitor.failureMessage(status: state.status), exitCode: state.status)
        }
        var produced = directory + "/" + context.imagePath
        if let artifact = state.monitor.artifactFiles.first {
            let relative = artifact.hasPrefix("/build/") ? String(artifact.dropFirst(7)) : artifact
            if !relative.hasPrefix("/") { produced = directory + "/" + relative }
        }
        guard FileManager.default.fileExists(atPath: produced) else {
            throw BuildFailure("packer finished but \(produced) does not exist; check image_path in the template")
        }
        log("packer wrote \(produced)")
        return try await takeOwnership(of: produced, directory: directory, label: label, log: log)
    }

    /// One container run: create, start attached, remove. Returns its exit status (137 when the
    /// client lost it) and what its output said; throws on cancellation (after stopping it and
    /// detaching what it left attached) and when Docker cannot be run at all.
    func runContainer(context: PackerBuildContext, directory: String, label: String, log: BuildLog) async throws -> (status: Int32, monitor: PackerOutputMonitor) {
        let name = containerName(for: label)
        var arguments = ["create", "--rm", "--name", name,
                         "--label", "fleet-images.run=\(runToken)", "--label", "fleet-images.variant=\(label)",
                         "--label", "fleet-images.fleet=\(renderer.manifest.fleet)"]
        arguments += dockerArgs
        // After docker_args, so it wins: the host's binfmt registration (checked in prepare) runs
        // the image's programs; an entrypoint that re-registered it at every start would pull it
        // from under the builds running beside this one.
        arguments += ["-e", "SETUP_QEMU=false"]
        arguments += ["-v", "\(directory):/build", "-v", "\(packerCacheDirectory):\(PackerBuildContext.cacheMountPoint)"]
        for mount in context.readOnlyMounts { arguments += ["-v", "\(mount.host):\(mount.container):ro"] }
        arguments += [imageID] + context.packerArguments

        try await gate.waitForTurn()
        try Task.checkCancellation()
        // `docker create` then `docker start --attach` rather than `docker run`: a `docker run`
        // client killed while the daemon creates the container can leave a container that
        // appears only after the cleanup looked for it. The create always runs to its end (in a
        // task of its own), so afterwards the container either exists under its name or not at all.
        log("docker \(arguments.joined(separator: " "))")
        let docker = self.docker
        let creating = arguments
        let created = await Task { try? await docker.run(creating) }.value
        let monitor = PackerOutputBox()
        guard let created, created.succeeded else {
            await removeContainer(name: name, label: label, stop: false, log: log)
            if Task.isCancelled { throw CancellationError() }
            let output = created?.output ?? "no output"
            log.output(output)
            for line in output.split(separator: "\n") { _ = monitor.consume(String(line)) }
            throw BuildFailure("docker create failed: " + monitor.snapshot().failureMessage(status: created?.status ?? 125))
        }
        if Task.isCancelled {
            await removeContainer(name: name, label: label, stop: true, log: log)
            throw CancellationError()
        }
        log("docker start --attach \(name)")
        // The attached client runs in a task of its own, which cancellation does not reach: on
        // cancellation the container is stopped instead (SIGTERM, then SIGKILL after the grace),
        // and the client keeps streaming until the container has exited, so the log shows
        // Packer's cleanup (unmounting, detaching) as it happens.
        let streaming = Task {
            try await docker.stream(["start", "--attach", name]) { line in
                log.output(line)
                if let phase = monitor.consume(line) { log("packer: \(phase)") }
            }
        }
        let grace = settings.stopGraceSeconds
        let status: Int32?
        do {
            status = try await withTaskCancellationHandler {
                try await streaming.value
            } onCancel: {
                Task {
                    log("stopping container \(name) (docker stop -t \(grace): Packer cleans up, then SIGKILL)")
                    // Repeated: a stop that came before `docker start` started the container found nothing to stop.
                    for _ in 0..<5 {
                        _ = try? await docker.run(["stop", "-t", String(grace), name], grace: .seconds(grace + 10))
                        guard let running = try? await docker.run(["inspect", "--format", "{{.State.Running}}", name]),
                              running.succeeded, running.output.trimmingCharacters(in: .whitespacesAndNewlines) == "true" else { return }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        } catch {
            await stopAndDetach(name: name, label: label, image: directory + "/" + context.imagePath, directory: directory, log: log)
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            throw BuildFailure("cannot run \(docker.executable): \(error)")
        }
        if Task.isCancelled {
            await stopAndDetach(name: name, label: label, image: directory + "/" + context.imagePath, directory: directory, log: log)
            throw CancellationError()
        }
        await removeContainer(name: name, label: label, stop: false, log: log)
        return (status ?? 137, monitor.snapshot())
    }

    /// A build cut short (timeout, SIGTERM): stop the container with the grace packer-builder-arm
    /// needs to unmount and detach, then detach any loop device still backed by the variant's
    /// image (a cleanup cut by SIGKILL leaves them, and the host runs out), saying so.
    func stopAndDetach(name: String, label: String, image: String, directory: String, log: BuildLog) async {
        await removeContainer(name: name, label: label, stop: true, log: log)
        log("container \(name) stopped and removed")
        guard FileManager.default.fileExists(atPath: image) else { return }
        let detached: [String]
        if geteuid() == 0, ToolAvailability.path(named: "losetup") != nil {
            // Loop devices are the kernel's, not the container's: the host's losetup finds them by
            // the image file's inode, which is the same through the bind mount.
            detached = await Task { await Self.detachOnHost(image: image) }.value
        } else {
            guard let found = await detachInContainer(name: name, label: label, image: image, directory: directory, log: log) else { return }
            detached = found
        }
        if !detached.isEmpty {
            log("the stopped build left \(detached.count) loop device(s) attached to its image; detached \(detached.joined(separator: " "))")
        }
    }

    /// As root: `losetup -j IMAGE`, then `losetup -d` each. Returns the devices detached.
    static func detachOnHost(image: String) async -> [String] {
        func run(_ arguments: [String]) async -> (Int32?, String) {
            let result = try? await Subprocess.run(ToolAvailability.executable(named: "losetup"), arguments: Arguments(arguments), input: .none,
                                                   output: .string(limit: 1 << 16), error: .combinedWithOutput)
            guard let result else { return (nil, "") }
            if case .exited(let code) = result.terminationStatus { return (code, result.standardOutput) }
            return (nil, result.standardOutput)
        }
        let (status, listing) = await run(["-n", "-O", "NAME", "-j", image])
        guard status == 0 else { return [] }
        var detached: [String] = []
        for device in listing.split(whereSeparator: \.isWhitespace).map(String.init) where device.hasPrefix("/dev/loop") {
            if await run(["-d", device]).0 == 0 { detached.append(device) }
        }
        return detached
    }

    /// For an operator who is not root: the same in a short container of the builder image with
    /// the operator's docker_args (the /dev access packer-builder-arm had). Returns nil (after a
    /// warning in the log) when that cannot be checked.
    func detachInContainer(name: String, label: String, image: String, directory: String, log: BuildLog) async -> [String]? {
        let relative = String(image.dropFirst(directory.count + 1))
        let script = #"devices=$(losetup -n -O NAME -j "$1") || exit 3; for d in $devices; do losetup -d "$d" && echo "detached $d"; done"#
        let arguments = ["run", "--rm", "--name", name + "-detach", "--network", "none", "--entrypoint", "/bin/sh",
                         "--label", "fleet-images.run=\(runToken)", "--label", "fleet-images.variant=\(label)",
                         "--label", "fleet-images.fleet=\(renderer.manifest.fleet)"]
            + dockerArgs + ["-v", "\(directory):/build", imageID, "-c", script, "detach", "/build/" + relative]
        let docker = self.docker
        let outcome = await Task { try? await docker.run(arguments, grace: .seconds(5)) }.value
        let output = outcome?.output.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard let outcome, outcome.succeeded else {
            await removeContainer(name: name + "-detach", label: label, stop: true, log: log)
            log("WARNING: could not check for loop devices left attached to \(image) (\(output.isEmpty ? "no output" : PackerDockerError.firstLine(output))); as root: losetup -j \(image), then losetup -d each")
            return nil
        }
        return output.split(separator: "\n").filter { $0.hasPrefix("detached ") }.map { String($0.dropFirst("detached ".count)) }
    }

    /// The image Packer made belongs to the container's root (unless the engine is rootless):
    /// an operator who is not root could rename it but not set its mode or sign it in place. It
    /// is handed to the operator by a short container of the same image (`chown`, no network);
    /// where that cannot work (an engine remapping user ids) it is copied into a file the
    /// operator owns (sparse: only data) and the original removed. Returns the path to use.
    func takeOwnership(of produced: String, directory: String, label: String, log: BuildLog) async throws -> String {
        var info = stat()
        guard stat(produced, &info) == 0 else {
            throw BuildFailure("cannot stat \(produced): \(String(cString: strerror(errno)))")
        }
        let uid = geteuid(), gid = getegid()
        if info.st_uid == uid { return produced }
        let relative = String(produced.dropFirst(directory.count + 1))
        let name = containerName(for: label) + "-chown"
        let arguments = ["run", "--rm", "--name", name, "--network", "none", "--entrypoint", "chown",
                         "--label", "fleet-images.run=\(runToken)", "--label", "fleet-images.variant=\(label)",
                         "--label", "fleet-images.fleet=\(renderer.manifest.fleet)",
                         "-v", "\(directory):/build", imageID, "\(uid):\(gid)", "/build/" + relative]
        log("the image belongs to uid \(info.st_uid), not to this user (\(uid)): docker \(arguments.joined(separator: " "))")
        let docker = self.docker
        let outcome = await Task { try? await docker.run(arguments, grace: .seconds(5)) }.value
        try Task.checkCancellation()
        if let outcome, outcome.succeeded, stat(produced, &info) == 0, info.st_uid == uid {
            return produced
        }
        await removeContainer(name: name, label: label, stop: true, log: log)
        log("chown in a container did not work (\(outcome?.output.trimmingCharacters(in: .whitespacesAndNewlines) ?? "no output")); copying the image into a file of this user instead")
        let copy = produced + ".own"
        do {
            let method = try SparseCopy.copy(from: produced, to: copy)
            log("copied \(produced) (\(method.rawValue))")
        } catch {
            unlink(copy)
            throw BuildFailure("the image Packer made (\(produced)) belongs to uid \(info.st_uid) and cannot be read to copy it: \(error). Run fleet-images as the engine's user, or make the engine write files this user can read")
        }
        guard unlink(produced) == 0 || errno == ENOENT else {
            let reason = String(cString: strerror(errno))
            unlink(copy)
            throw BuildFailure("cannot remove \(produced) after copying it: \(reason)")
        }
        return copy
    }

    /// Stops (with `stop`), kills and removes the container, then removes anything still labelled
    /// with this run and label. Runs outside the (possibly cancelled) caller so that it finishes.
    func removeContainer(name: String, label: String, stop: Bool, log: BuildLog) async {
        let docker = self.docker
        let token = runToken
        let grace = settings.stopGraceSeconds
        let remaining: [String] = await Task {
            if stop {
                _ = try? await docker.run(["stop", "-t", String(grace), name], grace: .seconds(grace + 10))
                _ = try? await docker.run(["kill", name])
                _ = try? await docker.run(["rm", "-f", name])
            }
            var left: [String] = []
            for _ in 0..<20 {
                guard let listing = try? await docker.run(["ps", "-aq", "--filter", "label=fleet-images.run=\(token)", "--filter", "label=fleet-images.variant=\(label)"]),
                      listing.succeeded else { continue }
                left = listing.output.split(whereSeparator: \.isWhitespace).map(String.init)
                if left.isEmpty { return [] }
                _ = try? await docker.run(["rm", "-f"] + left)
                try? await Task.sleep(for: .milliseconds(250))
            }
            return left
        }.value
        if !remaining.isEmpty {
            log("WARNING: containers \(remaining.joined(separator: " ")) of this build could not be removed; remove them with `docker rm -f \(remaining.joined(separator: " "))`")
        }
    }

    /// Base mode: the fleet's shared base, from the cache or from one Packer run.
    func buildBase(note: @escaping @Sendable (String) -> Void) async throws -> String {
        let context = try renderer.render(.base)
        var identity = "fleet-images packer base v1\n" + (imageDigest ?? imageID) + "\n" + context.template
        for file in context.files {
            switch file.content {
            case .bytes(let bytes) where file.secret:
                // The var-file: its digest names the cached base, so it is keyed (see StateSecretKey).
                identity += "\(file.path) hmac:\(Digest.hmacSHA256Hex(key: secretKey, message: bytes))\n"
            case .bytes(let bytes): identity += "\(file.path) \(Digest.sha256Hex(bytes))\n"
            case .copy(let source): identity += "\(file.path) \((try? Digest.sha256Hex(fileAt: source)) ?? "missing")\n"
            }
        }
        for mount in context.readOnlyMounts {
            identity += "\(mount.container) \(renderer.manifest.baseImage.sha256 ?? (try? Digest.sha256Hex(fileAt: mount.host)) ?? "")\n"
        }
        let key = Digest.sha256Hex(Array(identity.utf8))
        let cached = baseCacheDirectory + "/" + key + ".img"
        if FileManager.default.fileExists(atPath: cached) {
            note("base image \(key.prefix(12)) is cached: \(cached)")
            return cached
        }
        try BuildRunner.makePrivateDirectory(baseCacheDirectory, group: nil, mode: 0o700)
        let work = baseCacheDirectory + "/.work-" + runToken
        try? FileManager.default.removeItem(atPath: work)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try context.write(to: work)
        let log = try BuildLog(path: baseCacheDirectory + "/" + key + ".log", echo: { note("base: " + $0) })
        note("building the shared base image \(key.prefix(12)) with Packer (log: \(log.path))")
        let built = try await runPacker(context: context, directory: work, label: "base", log: log)
        guard rename(built, cached) == 0 else {
            throw BuildFailure("cannot move the base image to \(cached): \(String(cString: strerror(errno)))")
        }
        chmod(cached, 0o640)
        return cached
    }
}

/// The output monitor shared between the streaming callback and the builder.
final class PackerOutputBox: @unchecked Sendable {
    // @unchecked: `monitor` is only touched under `lock`.
    private let lock = NSLock()
    private var monitor = PackerOutputMonitor()

    func consume(_ line: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return monitor.consume(line)
    }

    func snapshot() -> PackerOutputMonitor {
        lock.lock()
        defer { lock.unlock() }
        return monitor
    }
}
