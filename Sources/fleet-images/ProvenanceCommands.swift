import ArgumentParser
import FleetImagesCore
import Foundation

/// Options of the commands that read the provenance database.
struct StateOptions: ParsableArguments {
    @OptionGroup var manifestOptions: ManifestOptions
    @Option(help: "State folder. Default: .fleet-images beside the manifest.") var state: String?
    @Flag(help: "Print JSON (the stable shape documented in the README).") var json = false

    /// The manifest (for its folder and variant ids) and the store, opened read-only: these
    /// commands never create, migrate, recover or otherwise write the database (only `build` and
    /// `prune` do), so a damaged file stays as it is and an archived read-only copy can be read.
    /// No store when nothing was ever recorded.
    func open() throws -> (manifest: Manifest?, variantIDs: [String]?, store: ProvenanceStore?) {
        try Self.open(manifestPath: manifestOptions.manifest, state: state)
    }

    static func open(manifestPath: String, state: String?) throws -> (manifest: Manifest?, variantIDs: [String]?, store: ProvenanceStore?) {
        let (manifest, diagnostics) = ManifestReader.read(path: manifestPath)
        var variantIDs: [String]?
        if let manifest {
            let (overlays, _) = Overlay.scan(manifest: manifest)
            variantIDs = Expansion.expand(manifest, overlays: overlays).variants.map(\.id)
        } else if state == nil {
            Output.diagnostics(diagnostics)
            throw Exit.badInput
        }
        let directory = manifest?.directory ?? FileManager.default.currentDirectoryPath
        let location = StateLocation(manifestDirectory: directory, override: state)
        do {
            try location.refuseUnsafe()
            return (manifest, variantIDs, try ProvenanceStore.openReadOnly(at: location.databasePath))
        } catch {
            Output.error("error: \(error)")
            throw Exit.badInput
        }
    }
}

extension FleetImages {
    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List builds: by default the latest of every variant in the manifest.",
            discussion: "Variants never built are listed as such. ls, runs and show only read the database (a read-only copy works). Builds left 'running' by a process that died are recorded as interrupted by the next build or prune, which hold the run lock.")

        @OptionGroup var options: StateOptions
        @Flag(help: "Every build, newest first, not just the latest per variant.") var all = false
        @Option(help: "Only builds of this run.") var run: Int64?
        @Option(help: "Only builds with this status: succeeded, failed, interrupted, running, up-to-date, pruned.") var status: String?
        @Option(help: "Only sites matching this shell pattern.") var site: String?
        @Option(help: "Only builds started within this long, e.g. 7d or 12h.") var since: String?

        func validate() throws {
            if let status, BuildStatus(rawValue: status) == nil {
                throw ValidationError("--status must be one of \(BuildStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let since, Names.parseDuration(since) == nil { throw ValidationError("--since \(since): write a duration like 12h or 7d") }
        }

        func run() async throws {
            let (_, variantIDs, store) = try options.open()
            let filter = BuildFilter(
                scope: all || run != nil ? .allHistory : .latestPerVariant, runID: run,
                statuses: status.flatMap(BuildStatus.init(rawValue:)).map { [$0] }, siteGlob: site,
                since: since.flatMap(Names.parseDuration).map { Date().addingTimeInterval(-TimeInterval($0)) })
            let filtered = all || run != nil || status != nil || site != nil || since != nil
            do {
                let builds = try store?.builds(filter: filter) ?? []
                let ids = filtered ? nil : variantIDs
                print(options.json ? try ProvenanceReport.json(builds: builds, manifestVariantIDs: ids)
                                   : ProvenanceReport.table(builds: builds, manifestVariantIDs: ids), terminator: "")
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
        }
    }

    struct Runs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recent runs and their outcome, newest first.")

        @OptionGroup var options: StateOptions
        @Option(help: "How many runs.") var limit: Int = 20

        func run() async throws {
            let (_, _, store) = try options.open()
            do {
                let runs = try store?.runs(limit: limit) ?? []
                print(options.json ? try ProvenanceReport.json(runs: runs) : ProvenanceReport.runsTable(runs: runs), terminator: "")
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Everything recorded about one build: its latest for a variant id, or a build id.")

        @OptionGroup var options: StateOptions
        @Argument(help: "A variant id (its latest build) or a numeric build id.") var build: String

        func run() async throws {
            let (manifest, _, store) = try options.open()
            do {
                let record = try store.flatMap { store in try Int64(build).flatMap { try store.build(id: $0) } ?? store.latestBuild(variantID: build) }
                guard let store, let record, let id = record.id else {
                    Output.error("error: no build recorded for \"\(build)\"; `fleet-images ls` lists what there is")
                    throw Exit.failed
                }
                let inputs = try store.inputs(buildID: id)
                let run = try store.run(id: record.runID)
                if options.json {
                    print(try ProvenanceReport.json(build: record, inputs: inputs, run: run))
                } else {
                    let publicKey = manifest.map { $0.directory + "/" + $0.signing.publicKey.value }
                    print(ProvenanceReport.showText(build: record, inputs: inputs, run: run, publicKeyPath: publicKey), terminator: "")
                }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
        }
    }
}

extension FleetImages {
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete old images and their files; keep their provenance rows (marked pruned).",
            discussion: "Never deletes the image a variant's `latest` points at. Takes the run lock, so it never races a build.")

        @OptionGroup var manifestOptions: ManifestOptions
        @Option(help: "State folder. Default: .fleet-images beside the manifest.") var state: String?
        @Option(help: "Keep this many newest images per variant.") var keep: Int = 3
        @Option(help: "Only delete images older than this, e.g. 30d.") var olderThan: String?
        @Flag(help: "Say what would be deleted, delete nothing.") var dryRun = false

        func validate() throws {
            guard keep >= 1 else { throw ValidationError("--keep must be at least 1: the latest image is always kept") }
            if let olderThan, Names.parseDuration(olderThan) == nil { throw ValidationError("--older-than \(olderThan): write a duration like 30d") }
        }

        func run() async throws {
            let manifest: Manifest
            do { manifest = try ManifestAccess.read(manifestOptions.manifest) } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            let pruner = Pruner(manifest: manifest, state: StateLocation(manifestDirectory: manifest.directory, override: state),
                                keep: keep, olderThanSeconds: olderThan.flatMap(Names.parseDuration), dryRun: dryRun)
            do {
                let removals = try await pruner.run()
                for removal in removals {
                    print("\(dryRun ? "would delete" : "deleted") \(removal.folder) (\(removal.bytes) bytes)")
                }
                print("\(removals.count) image\(removals.count == 1 ? "" : "s") \(dryRun ? "would be " : "")pruned")
            } catch let error as RunLock.Failure {
                Output.error("error: \(error)")
                throw Exit.locked
            } catch let error as OutputLock.Failure {
                Output.error("error: \(error)")
                if case .held = error { throw Exit.locked }
                throw Exit.failed
            } catch let error as StateLocationError {
                Output.error("error: \(error)")
                throw Exit.badInput
            } catch {
                Output.error("error: \(error)")
                throw Exit.failed
            }
        }
    }
}
