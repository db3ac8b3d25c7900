import FleetImagesCore
import Foundation

/// Issue 13.5: what a variant costs on disk. A generated fleet of `sites` sites on the demo base
/// image is built by the real inject builder (in-process `BuildRunner`, signing, recording and
/// placing included) in a folder on the file system under test (`--on DIR`: the wrapper mounts an
/// XFS with reflinks and an ext4 on loop files). Measured with statfs, as the file system itself
/// counts it: the free space one variant takes (the first site is built alone first, so the
/// decompressed base image in the state cache is not counted), against the bytes in which its
/// image differs from the base (4 KiB blocks, a sample of sites) and against the image's apparent
/// size (a full copy); free space is read after `sync` (and, on XFS, after its speculative
/// preallocations are given back). Then a second night with a changed common file rebuilds every variant, and
/// `prune --keep 1` must give the first night's images back: history is bounded by `--keep`.
struct DiskBenchmark {
    var sites = 1000
    var parallel = 2
    var on: String
    var sample = 5
    /// `demo`: the repository's demo base (320 MiB, little data); `pi`: the Raspberry Pi OS-sized
    /// image of the inject benchmark (2.6 GiB, 1.6 GB of data).
    var base = "demo"
    var keep = false

    func run() async throws {
        let label = fileSystemName(on)
        Report.header("disk: \(sites) variants of the \(base) base on \(label) at \(on) (issue 13.5)")
        let baseImage: BenchFleet.Base
        switch base {
        case "demo":
            let path = FileManager.default.currentDirectoryPath + "/base/demo-raspios-bookworm-arm64.img.xz"
            guard Files.exists(path) else { throw BenchError("run from the repository root: no \(path)") }
            baseImage = .file(path: path, sha256: try Digest.sha256Hex(fileAt: path))
        case "pi":
            let image = try PiSizedImage.ensure()
            baseImage = .file(path: image.archive, sha256: image.archiveSHA256)
        default:
            throw BenchError("--base \(base): demo or pi")
        }
        let folder = on + "/fleet-images-bench-disk-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o750])
        defer { if !keep { TemporaryFolder.remove(folder) } else { print("  kept \(folder)") } }
        let fleet = try BenchFleet.make(sites: sites, in: folder, base: baseImage)

        func build(only: String? = nil) async throws -> BuildSummary {
            var options = BuildOptions(manifestPath: fleet.manifestPath, parallel: parallel, commandLine: "fleet-images-bench disk", environment: [:])
            options.only = only
            let summary = try await BuildRunner(options: options).run()
            guard summary.status == .succeeded else {
                throw BenchError("the build failed: \(summary.variants.first { $0.status == .failed }?.error ?? "\(summary.status)")")
            }
            return summary
        }

        let start = settledFreeSpace()
        let firstTime = try await Stopwatch.time { _ = try await build(only: fleet.siteIDs[0]) }
        let afterFirst = settledFreeSpace()
        let restTime = try await Stopwatch.time { _ = try await build() }
        let afterNight1 = settledFreeSpace()
        let state = StateLocation(manifestDirectory: fleet.directory, override: nil)
        let cache = try cachedBase(in: state.cacheDirectory + "/base")
        let perVariant = Double(afterFirst - afterNight1) / Double(sites - 1)
        Report.measurement("set-up: the first site alone (base image verified and decompressed into the cache)", seconds: firstTime,
                           detail: "\(Report.bytes(start - afterFirst)) of the file system, the cached base \(Report.bytes(Files.allocated(cache))) allocated")
        Report.measurement("night 1: the other \(sites - 1) sites, --parallel \(parallel)", seconds: restTime)

        // The bytes each sampled variant's image changed against the base it was cloned from.
        let images = try latestImages(fleet, state: state)
        let picked = stride(from: 0, to: images.count, by: max(1, images.count / sample)).prefix(sample).map { images[$0] }
        var changed: [UInt64] = []
        for image in picked { changed.append(try differingBytes(image, cache)) }
        let meanChanged = Double(changed.reduce(0, +)) / Double(changed.count)
        let apparent = Double(Files.size(images[0]))
        Report.line("per variant (night 1): \(Report.bytes(UInt64(perVariant))) of the file system; the image: \(Report.bytes(UInt64(apparent))) apparent, "
                    + "\(Report.bytes(Files.allocated(images[0]))) allocated (blocks shared with the base counted in full), "
                    + "\(Report.bytes(UInt64(meanChanged))) differing from the base (4 KiB blocks; mean of \(changed.count): \(changed.map { Report.bytes($0) }.joined(separator: ", ")))")
        let ratioChanged = perVariant / meanChanged
        Report.line("ratio disk per variant / its changed bytes: \(Report.ratio(ratioChanged))")
        Report.line("disk per variant / a full copy of the image: \(String(format: "%.3f", 100 * perVariant / apparent)) %")
        if label.hasPrefix("xfs") || label.hasPrefix("btrfs") {
            Report.goal("disk per variant on a reflink file system", value: Report.ratio(ratioChanged) + " its changed bytes", goal: "≤ 2×", met: ratioChanged <= 2)
        }
        Report.line("the fleet of \(sites) on \(label): \(Report.bytes(start - afterNight1)) in all (\(Report.bytes(UInt64(apparent) * UInt64(sites))) as full copies)")

        // Night 2: one common file changes, every variant is rebuilt; prune --keep 1 drops night 1.
        try Files.write(fleet.directory + "/variants/common/config.yaml", "system:\n  rootpath: /greengrass/v2\nservices:\n  aws.greengrass.Nucleus:\n    version: 2.13.0\n")
        let secondTime = try await Stopwatch.time {
            let summary = try await build()
            guard summary.count(.built) == sites else { throw BenchError("night 2 rebuilt \(summary.count(.built)) of \(sites) variants") }
        }
        let afterNight2 = settledFreeSpace()
        guard let manifest = ManifestReader.read(path: fleet.manifestPath).manifest else { throw BenchError("the bench manifest does not read") }
        var removed = 0
        let pruneTime = try await Stopwatch.time {
            removed = try await Pruner(manifest: manifest, state: state, keep: 1, olderThanSeconds: nil, dryRun: false).run().count
        }
        let afterPrune = settledFreeSpace()
        guard removed == sites else { throw BenchError("prune --keep 1 removed \(removed) images, not \(sites)") }
        Report.measurement("night 2: a common file changed, all \(sites) rebuilt", seconds: secondTime,
                           detail: "\(Report.bytes(afterNight1 - afterNight2)) more on the file system")
        Report.measurement("prune --keep 1: \(removed) images of night 1 deleted", seconds: pruneTime,
                           detail: "\(Report.bytes(afterPrune - afterNight2)) given back")
        let kept = Double(start - afterPrune), night1 = Double(start - afterNight1)
        Report.line("after prune the fleet holds \(Report.bytes(start - afterPrune)): \(Report.ratio(kept / night1)) of night 1's (history bounded by --keep)")
    }

    /// Free space once the file system has settled: written back, and on XFS with its speculative
    /// preallocations (beyond end of file and for copy-on-write, which XFS frees by itself within
    /// minutes) given back at once with `xfs_spaceman prealloc`, so the figures are what stays.
    private func settledFreeSpace() -> UInt64 {
        sync()
        if fileSystemName(on) == "xfs" { _ = try? Shell.run("xfs_spaceman", ["-c", "prealloc -s", on]) }
        sync()
        return Files.freeSpace(on)
    }

    private func fileSystemName(_ path: String) -> String {
        let output = (try? Shell.run("findmnt", ["-n", "-o", "FSTYPE", "--target", path])) ?? "unknown"
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func cachedBase(in directory: String) throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        guard let name = names.filter({ $0.hasSuffix(".img") }).max(by: { Files.size(directory + "/" + $0) < Files.size(directory + "/" + $1) }) else {
            throw BenchError("no decompressed base image in \(directory)")
        }
        return directory + "/" + name
    }

    private func latestImages(_ fleet: BenchFleet, state: StateLocation) throws -> [String] {
        let store = try ProvenanceStore.open(at: state.databasePath)
        defer { try? store.close() }
        var images: [String] = []
        for site in fleet.siteIDs {
            let builds = try store.latestBuilds(variantIDs: [site])
            if let path = builds.first?.artifactPath { images.append(path) }
        }
        guard images.count == fleet.siteIDs.count else { throw BenchError("only \(images.count) of \(fleet.siteIDs.count) variants have an image") }
        return images
    }

    /// Bytes, in whole 4 KiB blocks, in which two files of the same size differ.
    private func differingBytes(_ a: String, _ b: String) throws -> UInt64 {
        guard let left = FileHandle(forReadingAtPath: a), let right = FileHandle(forReadingAtPath: b) else { throw BenchError("cannot open \(a) or \(b)") }
        defer { try? left.close(); try? right.close() }
        let chunk = 1 << 20, block = 4096
        var differing: UInt64 = 0
        while true {
            let x = left.readData(ofLength: chunk), y = right.readData(ofLength: chunk)
            if x.isEmpty && y.isEmpty { break }
            let length = max(x.count, y.count)
            x.withUnsafeBytes { p in
                y.withUnsafeBytes { q in
                    var offset = 0
                    while offset < length {
                        let size = min(block, length - offset)
                        let inX = max(0, min(size, x.count - offset)), inY = max(0, min(size, y.count - offset))
                        if inX != inY || memcmp(p.baseAddress! + offset, q.baseAddress! + offset, inX) != 0 { differing += UInt64(block) }
                        offset += block
                    }
                }
            }
        }
        return differing
    }
}
