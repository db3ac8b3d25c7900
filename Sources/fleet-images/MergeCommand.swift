import ArgumentParser
import FleetImagesCore
import Foundation

extension FleetImages {
    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring the records of shard builds (build --shard K/N elsewhere) into this state's database.",
            discussion: """
            Each SHARD_STATE is the state folder of one shard (or its provenance.sqlite), as its build left it. \
            Its runs, builds and inputs are merged in one transaction: all shards or none. Merging the same shard \
            again changes nothing; merging it after it ran again brings only what changed. Every run keeps the host \
            it ran on; image, signature and provenance paths are moved into this fleet's output folder, where the \
            shards' images are to be brought (this command does not copy images); build logs are copied into this state.

            Refused, with nothing written (exit 2): a shard of another fleet, one written by a fleet-images with \
            another schema, one whose secrets were digested under another state key (give every shard this state's \
            secret.key before it builds), one a build is still running in. This state must already have its \
            secret.key: the shards' inputs digests are made under it.

            Signatures are not touched: every image stays signed by the key of the host that built it, and each \
            build's record names that key's fingerprint (`fleet-images show`).
            """)

        @Argument(help: "State folders of the shards (or their provenance.sqlite).") var shardStates: [String]
        @OptionGroup var manifestOptions: ManifestOptions
        @Option(help: "State folder to merge into. Default: .fleet-images beside the manifest.") var state: String?
        @Option(help: "Wait this long for the state's lock, e.g. 30m (default: fail at once).") var waitLock: String?
        @Flag(help: "Print what was merged as JSON.") var json = false

        func validate() throws {
            guard !shardStates.isEmpty else { throw ValidationError("name at least one shard state folder") }
            if let waitLock, Names.parseDuration(waitLock) == nil { throw ValidationError("--wait-lock \(waitLock): write a duration like 30m") }
        }

        func run() async throws {
            let manifest: Manifest
            do { manifest = try ManifestAccess.read(manifestOptions.manifest) } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            let location = StateLocation(manifestDirectory: manifest.directory, override: state)
            let keyPath = location.directory + "/" + StateSecretKey.fileName
            let key: [UInt8]
            do {
                try location.refuseUnsafe()
                guard FileManager.default.fileExists(atPath: keyPath) else {
                    throw BadInput(description: "\(keyPath): no state key. The shards digested their secrets under one shared key; put that key here (mode 0600) before merging (see the README, Shards)")
                }
                key = try StateSecretKey.loadOrCreate(inDirectory: location.directory)
            } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            let target = MergeTarget(fleet: manifest.fleet, stateKeyID: StateSecretKey.identity(of: key),
                                     outputDirectory: URL(fileURLWithPath: manifest.directory + "/" + manifest.output.directory).standardizedFileURL.path,
                                     logDirectory: location.logDirectory)
            // Every shard is read and checked before anything here is written.
            let shards: ShardStates
            do { shards = try ShardStates.read(shardStates, for: target) } catch {
                Output.error("error: \(error)")
                throw Exit.badInput
            }
            let lock: RunLock
            do { lock = try await RunLock(path: location.lockPath, waitSeconds: waitLock.flatMap(Names.parseDuration) ?? 0) } catch {
                Output.error("error: \(error)")
                throw Exit.locked
            }
            defer { withExtendedLifetime(lock) {} }
            let results: [ShardMergeResult]
            do {
                try location.protectDatabase(group: manifest.output.group.flatMap { getgrnam($0)?.pointee.gr_gid })
                let store = try ProvenanceStore.open(at: location.databasePath, checkIntegrity: true)
                results = try store.merge(shards, into: target)
                // Where the images were brought together, the report page shows the whole fleet now.
                if FileManager.default.fileExists(atPath: target.outputDirectory) {
                    do { try RunReport.write(manifest: manifest, store: store) } catch {
                        Output.error("warning: the run report \(target.outputDirectory)/\(RunReport.fileName) was not written: \(error)")
                    }
                }
                try store.close()
            } catch let refusal as MergeRefusal {
                Output.error("error: \(refusal)")
                throw Exit.badInput
            } catch {
                Output.error("error: \(error)")
                throw Exit.failed
            }
            if json {
                print(Self.json(results))
                return
            }
            for result in results {
                var line = "\(result.directory): runs \(result.runsAdded) added, \(result.runsUpdated) updated, \(result.runsUnchanged) unchanged; "
                    + "builds \(result.buildsAdded) added, \(result.buildsUpdated) updated, \(result.buildsUnchanged) unchanged"
                if result.runsEndedAsInterrupted > 0 {
                    line += "; \(result.runsEndedAsInterrupted) run\(result.runsEndedAsInterrupted == 1 ? "" : "s") left running by a process that is gone, recorded interrupted"
                }
                print(line)
            }
            if results.allSatisfy(\.changedNothing) { print("nothing to merge: every shard's records were already here") }
        }

        static func json(_ results: [ShardMergeResult]) -> String {
            let objects: [[String: Any]] = results.map {
                ["shard": $0.directory,
                 "runs": ["added": $0.runsAdded, "updated": $0.runsUpdated, "unchanged": $0.runsUnchanged,
                          "ended_as_interrupted": $0.runsEndedAsInterrupted],
                 "builds": ["added": $0.buildsAdded, "updated": $0.buildsUpdated, "unchanged": $0.buildsUnchanged]]
            }
            let data = (try? JSONSerialization.data(withJSONObject: ["shards": objects], options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }
}
