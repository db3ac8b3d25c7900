import Foundation

/// `fleet-images build`: expand, plan, decide what is up to date, build at most N variants at
/// once, sign, record, place. One variant's failure does not stop the others (unless
/// `failFast`); cancellation (SIGINT/SIGTERM in the CLI) stops launching, cancels running
/// builders, and records the run and its unfinished builds as interrupted. Nothing reaches the
/// output folder until it is complete, signed and recorded: each image is placed by one rename.
public struct BuildRunner: Sendable {
    public var options: BuildOptions
    /// Makes the builder for a manifest, once per run before any build starts (the packer-docker
    /// builder checks Docker and resolves its image's digest here); tests pass their own.
    public var makeBuilder: @Sendable (Manifest, StateLocation) async throws -> any ImageBuilder
    /// Finds out what the base image runs (``DeviceOSResolver``); tests whose base image is a
    /// stand-in file pass the OS it stands for.
    public var detectOS: @Sendable (Manifest, StateLocation, [Variant], @escaping @Sendable (String) -> Void) async throws -> DeviceOS
    public var events: @Sendable (BuildEvent) -> Void

    public init(options: BuildOptions,
                makeBuilder: (@Sendable (Manifest, StateLocation) async throws -> any ImageBuilder)? = nil,
                detectOS: (@Sendable (Manifest, StateLocation, [Variant], @escaping @Sendable (String) -> Void) async throws -> DeviceOS)? = nil,
                events: @escaping @Sendable (BuildEvent) -> Void = { _ in }) {
        self.options = options
        let environment = options.environment
        self.makeBuilder = makeBuilder ?? { manifest, state in
            try await BuildRunner.defaultBuilder(manifest, state: state, environment: environment)
        }
        self.detectOS = detectOS ?? BuildRunner.defaultOSDetection
        self.events = events
    }

    public static func defaultOSDetection(_ manifest: Manifest, state: StateLocation, variants: [Variant],
                                          log: @escaping @Sendable (String) -> Void) async throws -> DeviceOS {
        try await DeviceOSResolver(manifest: manifest, cacheDirectory: state.cacheDirectory + "/base").resolve(for: variants, log: log)
    }

    /// The manifest's builder; `environment` is where the manifest's `env` sources are read.
    public static func defaultBuilder(_ manifest: Manifest, state: StateLocation, environment: [String: String]) async throws -> any ImageBuilder {
        switch manifest.builder.kind {
        case .inject:
            return InjectBuilder()
        case .packerDocker:
            var settings = PackerDockerBuilder.Settings()
            settings.environment = environment
            return try await PackerDockerBuilder.prepare(manifest: manifest, state: state, settings: settings)
        }
    }

    /// Runs the batch. Throws ``BuildRunError`` when the run cannot start; otherwise returns the
    /// summary (also when interrupted: check its status).
    public func run() async throws -> BuildSummary {
        let started = Date()
        // Earlier runs' claim-check results, if this state folder has them (nothing is created here:
        // a bad manifest must leave no trace).
        let manifestDirectory = (URL(fileURLWithPath: options.manifestPath).standardizedFileURL.path as NSString).deletingLastPathComponent
        let early = StateLocation(manifestDirectory: manifestDirectory, override: options.statePath)
        do { try early.refuseUnsafe() } catch { throw BuildRunError.badInput([], "\(error)") }
        var claimCache: ClaimCheckCache?
        if FileManager.default.fileExists(atPath: early.directory + "/" + StateSecretKey.fileName),
           let key = try? StateSecretKey.loadOrCreate(inDirectory: early.directory) {
            claimCache = ClaimCheckCache(path: early.claimCachePath, secretKey: key)
        }
        let outcome = FleetLoader.load(manifestPath: options.manifestPath, environment: options.environment, only: options.only,
                                       shard: options.shard, claimCache: claimCache)
        for warning in outcome.diagnostics where warning.severity == .warning { events(.note(warning.description)) }
        guard let manifest = outcome.manifest, !outcome.hasErrors else {
            throw BuildRunError.badInput(outcome.diagnostics.filter { $0.severity == .error }, nil)
        }
        if let shard = options.shard {
            events(.note("shard \(shard): \(outcome.variants.count) of the fleet's \(outcome.allVariantIDs.count) variants"))
            // A fleet smaller than its shard count leaves a slice with nothing, which is not a failure.
            // The run is still recorded (0 planned), so the merged record shows that every shard ran.
        }
        try? claimCache?.save()
        // The manifest's bytes as read now: edits made during the run do not affect it.
        let manifestDigest = (try? Digest.sha256Hex(fileAt: manifest.filePath)) ?? ""
        let state = StateLocation(manifestDirectory: manifest.directory, override: options.statePath)
        do { try state.create() } catch {
            throw BuildRunError.failed("cannot create the state folder \(state.directory): \(error.localizedDescription)")
        }
        let builder: any ImageBuilder
        do { builder = try await makeBuilder(manifest, state) } catch let error as BuildRunError { throw error } catch is CancellationError {
            throw CancellationError()
        } catch let error as PackerDockerError where error.isInputProblem {
            throw BuildRunError.badInput([], "\(error)")
        } catch {
            throw BuildRunError.unavailable("\(error)")
        }
        if builder.kind == .inject {
            do { try ToolAvailability.require([.debugfs, .mcopy]) } catch {
                throw BuildRunError.unavailable("\(error)")
            }
        }

        let lock: RunLock
        do { lock = try await RunLock(path: state.lockPath, waitSeconds: options.waitLockSeconds) } catch {
            throw BuildRunError.locked("\(error)")
        }
        defer { withExtendedLifetime(lock) {} }
        // What the base image runs decides the first-boot format; an OS fleet-images does not know,
        // or a variant the image cannot serve, is bad input: nothing is built, and the output folder
        // is not touched. (Under the state's lock: the answer is cached in the state folder.)
        var os = DeviceOS.unresolved
        // A base image that cannot be used (wrong digest, not a disk image) fails every variant that
        // needs building, recorded with the reason, as any other build failure is.
        var baseFailure: BuildFailure?
        do {
            // An empty shard needs nothing from the base image: it is not read.
            if !outcome.variants.isEmpty { os = try await detectOS(manifest, state, outcome.variants, { [events] in events(.note($0)) }) }
        } catch let error as DeviceOSError {
            throw BuildRunError.badInput([], error.description)
        } catch is CancellationError {
            throw CancellationError()
        } catch let missing as ToolMissing {
            throw BuildRunError.unavailable(missing.description)
        } catch let failure as BuildFailure {
            baseFailure = failure
        } catch {
            baseFailure = BuildFailure("base image: \(Self.oneLine("\(error)"))")
        }
        let osProblems = DeviceOSResolver.problems(outcome.variants, os: os)
        if !osProblems.isEmpty { throw BuildRunError.badInput(osProblems, nil) }

        // The output folder too: another state folder's run may be writing to it.
        let outputDirectory = manifest.directory + "/" + manifest.output.directory
        var outputLock: OutputLock?
        if !options.dryRun || FileManager.default.fileExists(atPath: outputDirectory) {
            do { outputLock = try await OutputLock(path: outputDirectory, waitSeconds: options.waitLockSeconds) } catch let error as OutputLock.Failure {
                if case .held = error { throw BuildRunError.locked("\(error)") }
                throw BuildRunError.failed("\(error)")
            }
        }
        defer { withExtendedLifetime(outputLock) {} }
        // With the lock held no other run is alive: whatever is left in work/ belongs to a run that
        // died (kill -9, power loss) and may hold claim keys. Remove it before anything else.
        Self.removeStaleWork(in: state.workDirectory, events: events)
        Self.removeStalePlacements(in: outputDirectory, events: events)

        var store: ProvenanceStore
        let secretKey: [UInt8]
        do {
            // The integrity check reads the whole file before anything writes to it: a damaged
            // database is refused as it is, never "recovered" into something worse.
            try state.protectDatabase(group: manifest.output.group.flatMap { getgrnam($0)?.pointee.gr_gid })
            store = try ProvenanceStore.open(at: state.databasePath, checkIntegrity: true)
            secretKey = try StateSecretKey.loadOrCreate(inDirectory: state.directory)
            let recovered = try store.recoverInterrupted(isProcessAlive: ProvenanceStore.processExists)
            if recovered > 0 { events(.note("marked \(recovered) run\(recovered == 1 ? "" : "s") left running by a process that died as interrupted")) }
        } catch {
            throw BuildRunError.failed("\(error)")
        }

        let plan: Plan
        do { plan = try Planner(manifest: manifest, environment: options.environment, secretKey: secretKey).plan(outcome.variants, os: os) } catch {
            throw BuildRunError.badInput([], "\(error)")
        }

        // Decide: up to date means a recorded successful build with the same inputs digest whose
        // image is still there with its recorded size. No image is re-hashed here.
        var toBuild: [PlannedVariant] = []
        var results: [String: VariantResult] = [:]
        var reuse: [String: Int64] = [:]
        let earlier = options.force ? [:] : (try? store.latestSuccessfulBuilds(plan.variants.map { ($0.variant.id, $0.inputsDigest) })) ?? [:]
        for planned in plan.variants {
            if let previous = earlier[planned.variant.id], let path = previous.artifactPath, let id = previous.id,
               Self.hasOutputs(previous, asked: manifest.output),
               Self.latestIsOn(image: path, variant: planned.variant.id, dryRun: options.dryRun, events: events) {
                results[planned.variant.id] = VariantResult(variant: planned.variant.id, status: .upToDate, image: path, sha256: previous.artifactSHA256, buildID: id)
                reuse[planned.variant.id] = id
            } else {
                toBuild.append(planned)
            }
        }

        events(.planned(total: plan.variants.count, building: toBuild.count))
        if options.dryRun {
            for planned in toBuild {
                results[planned.variant.id] = VariantResult(variant: planned.variant.id, status: .wouldBuild)
            }
            return BuildSummary(runID: nil, status: .succeeded, variants: plan.variants.compactMap { results[$0.variant.id] },
                                durationSeconds: Date().timeIntervalSince(started))
        }

        // Room kept back so that the end of this run can be recorded even if the state disk fills.
        let (reserve, reserveProblem) = SpaceReserve.ensure(inDirectory: state.directory)
        if let reserveProblem {
            events(.note("warning: no room for the space reserve of the records (\(reserveProblem)): if the state disk fills, this run's end may go unrecorded"))
        }
        store.reserve = reserve
        defer {
            if reserve?.released == true {
                events(.note("warning: the state disk \(state.directory) is full: its space reserve was used to finish the records; free space there (the next build makes the reserve again)"))
            }
        }

        let runID: Int64
        do {
            runID = try store.beginRun(RunStart(commandLine: options.commandLine, manifestPath: manifest.filePath, manifestSHA256: manifestDigest,
                                                toolVersion: FleetImagesVersion.current, parallelism: options.parallel, plannedCount: plan.variants.count,
                                                fleet: manifest.fleet, stateKeyID: StateSecretKey.identity(of: secretKey),
                                                shard: options.shard?.description))
            let reused = reuse.sorted(by: { $0.key < $1.key })
            _ = try store.recordUpToDate(runID: runID, reusing: reused.map(\.value))
            for (variant, _) in reused { events(.finished(results[variant]!)) }
        } catch {
            throw BuildRunError.failed("\(error)")
        }

        var interrupted = false
        // Records that could not be written; never ignored (the run then exits 1).
        var unrecorded: [String] = []
        if !toBuild.isEmpty {
            let context: BuildContext
            do {
                if let baseFailure { throw baseFailure }
                context = try await prepare(manifest: manifest, state: state, store: store, runID: runID, builder: builder)
            } catch is CancellationError {
                interrupted = true
                context = BuildContext.unavailable
            } catch let missing as ToolMissing {
                // A missing decompressor is the machine's problem, not the fleet's: exit 69.
                do { try store.finishRun(id: runID, status: .failed, counts: RunCounts(planned: plan.variants.count, upToDate: reuse.count)) } catch {
                    throw BuildRunError.unavailable("\(missing.description) (and the run could not be recorded as failed: \(Self.oneLine("\(error)")))")
                }
                throw BuildRunError.unavailable(missing.description)
            } catch {
                // Without a base image or signing key nothing can be built: every variant fails with
                // the reason, and the failure is recorded so that `ls` and `runs` show it.
                let message = Self.oneLine("\(error)")
                for planned in toBuild {
                    let v = planned.variant
                    var buildID: Int64?
                    do {
                        let id = try store.beginBuild(runID: runID, BuildStart(
                            variantID: v.id, site: v.site, matrix: Dictionary(uniqueKeysWithValues: v.axes.map { ($0.axis, $0.value) }),
                            builder: builder.kind.rawValue, builderImageDigest: builder.imageDigest, inputsDigest: planned.inputsDigest), inputs: [])
                        buildID = id
                        // A failed update leaves the row running: it is finished (or reported) with the others below.
                        try? store.finishBuild(id: id, .failed(message))
                    } catch {
                        unrecorded.append("\(v.id): \(error)")
                    }
                    let result = VariantResult(variant: v.id, status: .failed, error: message, buildID: buildID)
                    results[v.id] = result
                    events(.finished(result))
                }
                context = BuildContext.unavailable
            }
            if context.ready {
                let built = await schedule(toBuild, context: context)
                for result in built { results[result.variant] = result }
                interrupted = Task.isCancelled && !built.allSatisfy { $0.status == .built || $0.status == .failed }
            }
        }
        if interrupted {
            for planned in toBuild where results[planned.variant.id] == nil {
                results[planned.variant.id] = VariantResult(variant: planned.variant.id, status: .interrupted, error: "not started: the run was interrupted")
            }
        }

        let ordered = plan.variants.compactMap { results[$0.variant.id] }
        // A build whose end could not be recorded when it ended (a full state disk: its work folder
        // is gone now, so there may be room) is recorded now, as what it was: finishing the run
        // would otherwise call it interrupted.
        // (An up-to-date result names the build it reuses, of an earlier run: nothing to finish.)
        for result in ordered where result.status != .upToDate {
            guard let id = result.buildID else { continue }
            let row: BuildRecord?
            do { row = try store.build(id: id) } catch {
                unrecorded.append("\(result.variant): \(error)")
                continue
            }
            guard row?.status == .running else { continue }
            let outcome: BuildOutcome = result.status == .interrupted ? .interrupted(result.error ?? "interrupted")
                                                                      : .failed(result.error ?? "failed")
            do { try store.finishBuild(id: id, outcome) } catch {
                unrecorded.append("\(result.variant): \(error)")
            }
        }
        let failed = ordered.contains { $0.status == .failed }
        var status: BuildSummary.Status = interrupted ? .interrupted : failed ? .failed : .succeeded
        do {
            try store.finishRun(id: runID, status: interrupted ? .interrupted : failed ? .failed : .succeeded,
                                counts: RunCounts(planned: plan.variants.count, built: ordered.filter { $0.status == .built }.count,
                                                  upToDate: ordered.filter { $0.status == .upToDate }.count,
                                                  failed: ordered.filter { $0.status == .failed }.count,
                                                  skipped: ordered.filter { $0.status == .skipped || $0.status == .interrupted }.count))
        } catch {
            unrecorded.append("run \(runID): \(error)")
        }
        // The page people look at, `<output>/index.html`, from the records as they now stand.
        if FileManager.default.fileExists(atPath: outputDirectory) {
            do { try RunReport.write(manifest: manifest, store: store) } catch {
                events(.note("warning: the run report \(outputDirectory)/\(RunReport.fileName) was not written: \(error)"))
            }
        }
        if !unrecorded.isEmpty {
            // Never ignored: the records are incomplete, so the run is not a success (exit 1).
            for problem in unrecorded { events(.note("error: cannot record \(Self.oneLine(problem))")) }
            if status == .succeeded { status = .failed }
        }
        return BuildSummary(runID: runID, status: status, variants: ordered, durationSeconds: Date().timeIntervalSince(started))
    }

    /// Whether `<output>/<variant>/latest` points at the folder of `image` (the recorded build the
    /// run would reuse). When it does not (a run died between placing an image and recording it,
    /// an earlier inputs digest came back, someone moved the link), it is repaired atomically and
    /// the repair reported; false when it cannot be repaired (the variant is then rebuilt).
    static func latestIsOn(image: String, variant: String, dryRun: Bool, events: @Sendable (BuildEvent) -> Void) -> Bool {
        let imageFolder = (image as NSString).deletingLastPathComponent
        let variantFolder = (imageFolder as NSString).deletingLastPathComponent
        let expected = (imageFolder as NSString).lastPathComponent
        let link = variantFolder + "/latest"
        let current = try? FileManager.default.destinationOfSymbolicLink(atPath: link)
        guard current != expected else { return true }
        let was = current.map { "pointed at \($0)" } ?? "was missing"
        if dryRun {
            events(.note("\(variant): \(link) \(was), not at the recorded build \(expected); a build would repair it"))
            return true
        }
        do {
            try pointLatest(variantFolder, at: expected)
            events(.note("\(variant): \(link) \(was), not at the recorded build \(expected); repaired"))
            return true
        } catch {
            events(.note("\(variant): \(link) \(was), not at the recorded build \(expected), and cannot be repaired (\(error)); rebuilding"))
            return false
        }
    }

    static func removeStaleWork(in directory: String, events: @Sendable (BuildEvent) -> Void) {
        guard let leftovers = try? FileManager.default.contentsOfDirectory(atPath: directory), !leftovers.isEmpty else { return }
        for name in leftovers { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
        events(.note("removed \(leftovers.count) work folder\(leftovers.count == 1 ? "" : "s") left by an earlier run that did not finish"))
    }

    /// A run killed between the two renames of `place` leaves a hidden `.incoming-*` folder or a
    /// `.latest-*` link in a variant's output folder; neither is ever a finished image.
    static func removeStalePlacements(in output: String, events: @Sendable (BuildEvent) -> Void) {
        let fm = FileManager.default
        for variant in (try? fm.contentsOfDirectory(atPath: output)) ?? [] where !variant.hasPrefix(".") {
            let folder = output + "/" + variant
            for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(".incoming-") || name.hasPrefix(".latest-") {
                try? fm.removeItem(atPath: folder + "/" + name)
                events(.note("removed \(folder)/\(name), left by an earlier run that did not finish"))
            }
        }
    }

    /// Whether a recorded build's files are what the manifest's `output` asks for, in place with
    /// their recorded sizes: the raw image (unless `keep_raw` is false) and the compressed copy
    /// (when `compress` is set, in the same format and level). A build made before compression
    /// was asked for, or with another format or level, is built again (reproducibly: the same image).
    static func hasOutputs(_ build: BuildRecord, asked output: OutputSpec) -> Bool {
        if output.keepRaw {
            guard let path = build.artifactPath, let size = build.artifactSize, fileSize(path) == UInt64(size) else { return false }
        }
        if let compression = output.compression {
            guard build.compression == compression.description, let image = build.artifactPath, let path = build.compressedPath,
                  path == compression.path(forImageAt: image),
                  let size = build.compressedSize, fileSize(path) == UInt64(size) else { return false }
        }
        return true
    }

    static func fileSize(_ path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return UInt64(info.st_size)
    }
}
