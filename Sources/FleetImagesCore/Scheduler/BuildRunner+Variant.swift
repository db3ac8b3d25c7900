import Foundation

/// What every variant build of one run shares: resolved once, used by all.
struct BuildContext: Sendable {
    var ready: Bool
    var manifest: Manifest!
    var state: StateLocation!
    var store: ProvenanceStore!
    var runID: Int64
    var builder: (any ImageBuilder)!
    var base: BaseImageResolver.Resolved!
    var signingKey: SigningKey!
    var padding: RSAPadding
    var outputDirectory: String
    var outputGroup: gid_t?
    var timeoutSeconds: Int
    /// Threads each image's compression uses: the cores shared among the builds running at once.
    var compressionThreads = 1

    static let unavailable = BuildContext(ready: false, runID: 0, padding: .pkcs1, outputDirectory: "", timeoutSeconds: 0)
}

extension BuildRunner {
    /// Resolves the base image and loads the signing key, once per run.
    func prepare(manifest: Manifest, state: StateLocation, store: ProvenanceStore, runID: Int64, builder: any ImageBuilder) async throws -> BuildContext {
        let events = self.events
        let base = try await BaseImageResolver(manifest: manifest, cacheDirectory: state.cacheDirectory + "/base")
            .resolve(log: { events(.note($0)) })
        var passphrase: Secret?
        if let source = manifest.signing.passphrase {
            switch SecretResolver(manifest: manifest, environment: options.environment).signingPassphrase(source.value) {
            case .success(let secret): passphrase = secret
            case .failure(let problem): throw BuildFailure("\(source.path): \(problem)")
            }
        }
        let key = try SigningKey.load(contentsOf: manifest.directory + "/" + manifest.signing.privateKey.value, passphrase: passphrase)
        var group: gid_t?
        if let name = manifest.output.group {
            guard let entry = getgrnam(name) else { throw BuildFailure("output.group \"\(name)\" is not a group on this machine") }
            group = entry.pointee.gr_gid
        }
        let output = manifest.directory + "/" + manifest.output.directory
        try Self.makePrivateDirectory(output, group: group)
        try Self.makePrivateDirectory(state.workDirectory, group: nil, mode: 0o700)
        try Self.makePrivateDirectory(state.logDirectory + "/run-\(runID)", group: nil)
        return BuildContext(ready: true, manifest: manifest, state: state, store: store, runID: runID, builder: builder, base: base,
                            signingKey: key, padding: RSAPadding(rawValue: manifest.signing.rsaPadding) ?? .pkcs1,
                            outputDirectory: output, outputGroup: group,
                            timeoutSeconds: options.timeoutSeconds ?? manifest.builder.timeoutSeconds,
                            compressionThreads: max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, options.parallel)))
    }

    /// Keeps at most `parallel` builds in flight; with `failFast` the first failure cancels the rest.
    func schedule(_ variants: [PlannedVariant], context: BuildContext) async -> [VariantResult] {
        let limit = max(1, options.parallel)
        let failFast = options.failFast
        return await withTaskGroup(of: VariantResult.self) { group in
            var results: [VariantResult] = []
            var pending = variants[...]
            var stopLaunching = false
            func launch() {
                guard !stopLaunching, !Task.isCancelled, let next = pending.popFirst() else { return }
                group.addTask { await self.buildOne(next, context: context) }
            }
            for _ in 0..<limit { launch() }
            while let result = await group.next() {
                results.append(result)
                if failFast && result.status == .failed && !stopLaunching {
                    stopLaunching = true
                    group.cancelAll()
                }
                launch()
            }
            for planned in pending {
                results.append(VariantResult(variant: planned.variant.id, status: Task.isCancelled ? .interrupted : .skipped,
                                             error: Task.isCancelled ? "not started: the run was interrupted" : "not started: --fail-fast stopped the run"))
            }
            return results
        }
    }

    func buildOne(_ planned: PlannedVariant, context: BuildContext) async -> VariantResult {
        let variant = planned.variant
        let started = Date()
        let events = self.events
        let logPath = context.state.logDirectory + "/run-\(context.runID)/\(variant.id).log"
        let work = context.state.workDirectory + "/run-\(context.runID)-\(variant.id)"
        func result(_ status: VariantResult.Status, error: String? = nil, image: String? = nil, sha: String? = nil, id: Int64? = nil) -> VariantResult {
            let r = VariantResult(variant: variant.id, status: status, image: image, sha256: sha,
                                  durationSeconds: Date().timeIntervalSince(started), error: error, log: logPath, buildID: id)
            events(.finished(r))
            return r
        }
        events(.started(variant: variant.id))
        let log: BuildLog
        do {
            log = try BuildLog(path: logPath, echo: { events(.phase(variant: variant.id, $0)) })
        } catch {
            return result(.failed, error: "\(error)")
        }
        let store = context.store!
        let buildID: Int64
        do {
            buildID = try store.beginBuild(runID: context.runID, BuildStart(
                variantID: variant.id, site: variant.site, matrix: Dictionary(uniqueKeysWithValues: variant.axes.map { ($0.axis, $0.value) }),
                builder: context.builder.kind.rawValue, builderImageDigest: context.builder.imageDigest,
                inputsDigest: planned.inputsDigest, startedAt: started, logPath: logPath), inputs: inputRecords(planned, context: context))
        } catch {
            log("cannot record the build: \(error)")
            return result(.failed, error: "\(error)")
        }
        let keepWork = options.keepWork
        func removeWork() {
            if !keepWork { try? FileManager.default.removeItem(atPath: work) }
        }
        defer { removeWork() }
        do {
            try? FileManager.default.removeItem(atPath: work)
            try Self.makePrivateDirectory(work, group: nil, mode: 0o700)
            log("building \(variant.id) with \(context.builder.kind.rawValue), inputs \(planned.inputsDigest)")
            let job = BuildJob(planned: planned, manifest: context.manifest, baseImagePath: context.base.imagePath, workDirectory: work, log: log)
            let image = try await Self.withTimeout(seconds: context.timeoutSeconds, variant: variant.id) {
                try await context.builder.build(job)
            }
            try Task.checkCancellation()
            let output = context.manifest.output
            log(output.compression.map { "signing, mapping and compressing (\($0.format.rawValue) level \($0.level), \(context.compressionThreads) thread\(context.compressionThreads == 1 ? "" : "s"))" }
                ?? "signing and mapping")
            let written = try ImageOutputs.write(imageAt: image, key: context.signingKey, padding: context.padding,
                                                 compression: output.compression, threads: context.compressionThreads)
            let signature = written.signature
            log("sha256 \(signature.sha256), \(signature.size) bytes (\(written.mappedBytes) in mapped blocks), signed by \(signature.keyFingerprint)")
            if let compressed = written.compressed {
                log("\((compressed.path as NSString).lastPathComponent): \(compressed.size) bytes, sha256 \(compressed.sha256)")
            }
            try Task.checkCancellation()

            // Final place: <output>/<variant>/<UTC time>-<digest prefix>/<variant>.img; `latest` points at it.
            let stamp = Self.folderStamp(started)
            let variantFolder = context.outputDirectory + "/" + variant.id
            // The build id keeps two identical (reproducible) images built in the same second apart.
            let finalFolder = variantFolder + "/" + stamp + "-" + signature.sha256.prefix(12) + "-b\(buildID)"
            let finalImage = finalFolder + "/" + variant.id + ".img"
            // Beside the image now, in the final folder once placed.
            func final(_ path: String) -> String { finalFolder + "/" + (path as NSString).lastPathComponent }
            let artifact = BuildArtifact(path: finalImage, size: Int64(signature.size), sha256: signature.sha256,
                                         signaturePath: finalImage + ".sig", signingKeyFingerprint: signature.keyFingerprint,
                                         compressed: written.compressed.map { ImageOutputs.Compressed(spec: $0.spec, path: final($0.path), size: $0.size, sha256: $0.sha256) },
                                         blockMapPath: final(written.blockMapPath))

            // Provenance next to the image, signed with the same key (DSSE over the in-toto statement).
            guard let run = try store.run(id: context.runID), let build = try store.build(id: buildID) else {
                throw BuildFailure("the run or build row vanished from the database")
            }
            let document = ProvenanceDocument(run: run, build: build, inputs: try store.inputs(buildID: buildID), artifact: artifact, finishedOn: Date())
            let key = context.signingKey!
            let padding = context.padding
            try document.write(to: ProvenanceDocument.path(forImage: image), keyID: signature.keyFingerprint) { try key.sign($0, padding: padding) }

            var published = [image + ".sha256", image + ".sig", written.blockMapPath, ProvenanceDocument.path(forImage: image)]
            if let compressed = written.compressed { published += [compressed.path, compressed.path + ".sha256"] }
            if output.keepRaw {
                published.append(image)
            } else {
                // `keep_raw: false`: everything was made from the raw image; it is not published.
                guard unlink(image) == 0 else { throw BuildFailure("cannot remove \(image) (output.keep_raw is false): \(String(cString: strerror(errno)))") }
            }
            for file in published {
                try Self.restrict(file, group: context.outputGroup)
            }
            // A log that could not be written (a full state disk) fails the build: its record would be incomplete.
            if let problem = log.writeError { throw BuildFailure(problem) }
            try Self.makePrivateDirectory(variantFolder, group: context.outputGroup)
            try Self.restrictDirectory(work, group: context.outputGroup)
            // Place, flip `latest`, and only then record success: a `succeeded` row always has its
            // image in place and `latest` on it. If flipping or recording fails, the placement is
            // undone (as far as it can be) and the build recorded failed with the reason.
            let finalName = (finalFolder as NSString).lastPathComponent
            let previousLatest = try? FileManager.default.destinationOfSymbolicLink(atPath: variantFolder + "/latest")
            try Self.place(work: work, stagedNames: ["stage"], into: finalFolder, group: context.outputGroup)
            do {
                try Self.pointLatest(variantFolder, at: finalName)
                try store.finishBuild(id: buildID, .succeeded(artifact, provenancePath: ProvenanceDocument.path(forImage: finalImage)))
            } catch {
                let undo = Self.undoPlacement(variantFolder: variantFolder, finalName: finalName, previousLatest: previousLatest)
                throw BuildFailure("the image was placed but \(error)" + (undo.map { "; \($0)" } ?? "; the placement was undone"))
            }
            log("done: \(finalImage)")
            return result(.built, image: finalImage, sha: signature.sha256, id: buildID)
        } catch let error where error is CancellationError || (error as? SigningError)?.isCancellation == true {
            // SIGINT/SIGTERM while the image is hashed for signing stops the read with SigningError.cancelled.
            log("interrupted; work files removed, nothing placed")
            removeWork()
            let recorded = Self.recordEnd(store: store, buildID: buildID, .interrupted(), log: log)
            return result(.interrupted, error: "interrupted" + (recorded.map { "; \($0)" } ?? ""), id: buildID)
        } catch {
            let message = Self.oneLine("\(error)")
            log("failed: \(message)")
            // The work folder (a full image copy) goes first: on a full state disk that frees the
            // room the database needs to record the failure.
            removeWork()
            let recorded = Self.recordEnd(store: store, buildID: buildID, .failed(message, exitCode: (error as? BuildFailure)?.exitCode), log: log)
            return result(.failed, error: message + (recorded.map { "; \($0)" } ?? ""), id: buildID)
        }
    }

    /// Records how a build ended; returns what went wrong (for the result's message), nil when recorded.
    /// The runner retries unrecorded ends before it records the end of the run.
    static func recordEnd(store: ProvenanceStore, buildID: Int64, _ outcome: BuildOutcome, log: BuildLog) -> String? {
        do {
            try store.finishBuild(id: buildID, outcome)
            return nil
        } catch {
            log("cannot record the end of build \(buildID): \(error)")
            return "recording it failed: \(oneLine("\(error)"))"
        }
    }

    /// Takes back a placement whose `latest` flip or success record failed: `latest` back on what it
    /// was, then the new folder removed (kept only if `latest` could not be turned back, so that it
    /// never dangles). Returns what could not be undone, or nil.
    static func undoPlacement(variantFolder: String, finalName: String, previousLatest: String?) -> String? {
        let link = variantFolder + "/latest"
        let current = try? FileManager.default.destinationOfSymbolicLink(atPath: link)
        if current == finalName {
            do {
                if let previousLatest { try pointLatest(variantFolder, at: previousLatest) } else if unlink(link) != 0 {
                    throw BuildFailure("cannot remove \(link): \(String(cString: strerror(errno)))")
                }
            } catch {
                return "\(link) still points at \(finalName) (\(error)); the next run repairs it"
            }
        }
        do { try FileManager.default.removeItem(atPath: variantFolder + "/" + finalName) } catch {
            return "cannot remove \(variantFolder)/\(finalName): \(error.localizedDescription)"
        }
        return nil
    }

    func inputRecords(_ planned: PlannedVariant, context: BuildContext) -> [BuildInput] {
        var inputs: [BuildInput] = [
            BuildInput(role: "base-image", name: context.base.source, digest: context.base.sourceSHA256,
                       url: context.base.source.contains("://") ? context.base.source : nil),
        ]
        for input in planned.inputs {
            var certificate: CertificateSummary?
            if input.role == "claim-certificate",
               let info = try? CertificateInfo.load(contentsOf: context.manifest.directory + "/" + input.name) {
                certificate = CertificateSummary(fingerprint: info.sha256Fingerprint, subject: info.subject, notAfter: info.notAfter)
            }
            inputs.append(BuildInput(role: BuildInputRole(input.role), name: input.name, digest: input.digest,
                                     digestKind: DigestKind(algorithm: input.algorithm), certificate: certificate))
        }
        return inputs
    }

    /// Runs `body`, cancelling it after `seconds`.
    static func withTimeout<T: Sendable>(seconds: Int, variant: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            guard let value = first else {
                group.cancelAll()
                throw BuildFailure("timed out after \(seconds) s; the builder was stopped (raise builder.timeout or pass --timeout)")
            }
            return value
        }
    }

    /// Moves the finished files from the work folder into `finalFolder` with one rename of a
    /// folder prepared beside it, so the output never holds a partial set.
    static func place(work: String, stagedNames: [String], into finalFolder: String, group: gid_t?) throws {
        let fm = FileManager.default
        for name in stagedNames { try? fm.removeItem(atPath: work + "/" + name) }
        // A disk-image scratch folder that outlived its operation never travels into the output.
        for name in (try? fm.contentsOfDirectory(atPath: work)) ?? [] where name.hasPrefix(DiskImageScratch.prefix) {
            try? fm.removeItem(atPath: work + "/" + name)
        }
        let incoming = (finalFolder as NSString).deletingLastPathComponent + "/.incoming-" + (finalFolder as NSString).lastPathComponent
        try? fm.removeItem(atPath: incoming)
        if rename(work, incoming) != 0 {
            guard errno == EXDEV else { throw BuildFailure("cannot move \(work) to \(incoming): \(String(cString: strerror(errno)))") }
            // Output on another file system: copy into the hidden folder first, then rename. A failed
            // copy (a full disk) must not leave the hidden folder behind in the output.
            do {
                try fm.createDirectory(atPath: incoming, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o750])
                try restrictDirectory(incoming, group: group)
                for name in try fm.contentsOfDirectory(atPath: work) {
                    _ = try SparseCopy.copy(from: work + "/" + name, to: incoming + "/" + name)
                    try restrict(incoming + "/" + name, group: group)
                }
            } catch {
                try? fm.removeItem(atPath: incoming)
                throw error
            }
        }
        guard rename(incoming, finalFolder) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fm.removeItem(atPath: incoming)
            throw BuildFailure("cannot place \(finalFolder): \(reason)")
        }
    }

    /// Flips `<variant folder>/latest` to `target` atomically (a new symlink renamed over the old).
    static func pointLatest(_ variantFolder: String, at target: String) throws {
        let temporary = variantFolder + "/.latest-\(getpid())"
        unlink(temporary)
        guard symlink(target, temporary) == 0, rename(temporary, variantFolder + "/latest") == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BuildFailure("cannot update \(variantFolder)/latest: \(reason)")
        }
    }

    /// Output files hold claim keys and Wi-Fi passphrases: 0640, never world-readable.
    static func restrict(_ path: String, group: gid_t?) throws {
        guard chmod(path, 0o640) == 0 else { throw BuildFailure("cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
        if let group { _ = chown(path, uid_t.max, group) }
    }

    static func restrictDirectory(_ path: String, group: gid_t?) throws {
        guard chmod(path, 0o750) == 0 else { throw BuildFailure("cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
        if let group { _ = chown(path, uid_t.max, group) }
    }

    static func makePrivateDirectory(_ path: String, group: gid_t?, mode: mode_t = 0o750) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(mode)])
        } catch {
            throw BuildFailure("cannot create \(path): \(error.localizedDescription)")
        }
        chmod(path, mode)
        if let group { _ = chown(path, uid_t.max, group) }
    }

    static func folderStamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }

    static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").first.map(String.init) ?? text
    }
}
