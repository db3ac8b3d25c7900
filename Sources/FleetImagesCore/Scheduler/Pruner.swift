import Foundation

/// `fleet-images prune`: deletes old images and their sidecars, keeps their provenance rows
/// (marked `pruned`), and never touches the image a variant's `latest` points at. Holds the run
/// lock and the output folder's lock, so it never races a build; records runs left running by a
/// process that died as interrupted, as `build` does.
public struct Pruner: Sendable {
    public var manifest: Manifest
    public var state: StateLocation
    /// Keep at least this many newest images per variant (the latest always stays).
    public var keep: Int
    /// Only delete images older than this many seconds (nil: age does not matter).
    public var olderThanSeconds: Int?
    public var dryRun: Bool

    public init(manifest: Manifest, state: StateLocation, keep: Int, olderThanSeconds: Int?, dryRun: Bool) {
        self.manifest = manifest
        self.state = state
        self.keep = keep
        self.olderThanSeconds = olderThanSeconds
        self.dryRun = dryRun
    }

    public struct Removal: Sendable, Equatable {
        public var variant: String
        public var folder: String
        public var bytes: UInt64
    }

    public func run(now: Date = Date()) async throws -> [Removal] {
        try state.create()
        let lock = try await RunLock(path: state.lockPath)
        defer { withExtendedLifetime(lock) {} }
        let output = manifest.directory + "/" + manifest.output.directory
        let outputLock = try await OutputLock(path: output)
        defer { withExtendedLifetime(outputLock) {} }
        try state.protectDatabase(group: manifest.output.group.flatMap { getgrnam($0)?.pointee.gr_gid })
        let store = try ProvenanceStore.open(at: state.databasePath, checkIntegrity: true)
        _ = try store.recoverInterrupted()
        let fm = FileManager.default
        var removals: [Removal] = []
        for variant in ((try? fm.contentsOfDirectory(atPath: output)) ?? []).sorted() where !variant.hasPrefix(".") {
            let variantFolder = output + "/" + variant
            let latest = (try? fm.destinationOfSymbolicLink(atPath: variantFolder + "/latest")).map { ($0 as NSString).lastPathComponent }
            // Folder names start with the UTC build time, so name order is age order. An image folder
            // holds the raw image or, with `output.keep_raw: false`, only its compressed copy.
            func imageFile(_ folder: String) -> String? {
                [".img", ".img.xz", ".img.zst"].map { variantFolder + "/" + folder + "/" + variant + $0 }.first { fm.fileExists(atPath: $0) }
            }
            let folders = ((try? fm.contentsOfDirectory(atPath: variantFolder)) ?? [])
                .filter { !$0.hasPrefix(".") && $0 != "latest" && imageFile($0) != nil }
                .sorted(by: >)
            for (index, folder) in folders.enumerated() where index >= keep && folder != latest {
                let path = variantFolder + "/" + folder
                if let olderThanSeconds {
                    let modified = imageFile(folder).flatMap { (try? fm.attributesOfItem(atPath: $0)[.modificationDate]) as? Date } ?? now
                    if now.timeIntervalSince(modified) < TimeInterval(olderThanSeconds) { continue }
                }
                let bytes = (try? fm.contentsOfDirectory(atPath: path))?.reduce(UInt64(0)) { total, name in
                    total + ((try? fm.attributesOfItem(atPath: path + "/" + name)[.size] as? NSNumber)?.uint64Value ?? 0)
                } ?? 0
                removals.append(Removal(variant: variant, folder: path, bytes: bytes))
                if dryRun { continue }
                let image = path + "/" + variant + ".img"
                for build in try store.builds(filter: BuildFilter(scope: .allHistory, variantIDs: [variant])) where build.artifactPath == image {
                    if let id = build.id { _ = try store.markPruned(buildID: id) }
                }
                try fm.removeItem(atPath: path)
            }
        }
        return removals
    }
}
