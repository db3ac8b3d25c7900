import FleetImagesCore
import Foundation

/// Issue 14.1: the signing pass that also writes the block map and the compressed copy, against
/// `xz -T2` and `zstd -T2` compressing the same image at the same level in the same run (and the
/// signing pass alone, what a build paid before). Sizes are compared too: the same level should
/// give the same size (xz: the same bytes).
struct CompressBenchmark {
    /// `demo`: the repository's demo base (320 MiB, mostly holes); `pi`: the Raspberry Pi
    /// OS-sized image of the inject benchmark (2.6 GiB, 1.5 GB of data; minutes per format).
    var image = "demo"
    var threads = 2
    var keep = false

    func run() throws {
        Report.header("compress: one read signs, maps and compresses, vs xz -T\(threads) / zstd -T\(threads) on the same image (issue 14.1)")
        let folder = try TemporaryFolder.make("compress")
        defer { if !keep { TemporaryFolder.remove(folder) } else { print("  kept \(folder)") } }
        let repository = FileManager.default.currentDirectoryPath
        let keyPath = repository + "/keys/demo-signing.key.pem"
        guard Files.exists(keyPath) else { throw BenchError("run from the repository root: no \(keyPath)") }
        let key = try SigningKey.load(contentsOf: keyPath, passphrase: nil)
        let source: String
        switch image {
        case "demo":
            source = folder + "/demo.img"
            try Shell.run("xz", ["-dc", repository + "/base/demo-raspios-bookworm-arm64.img.xz"], stdoutPath: source)
            try Shell.run("fallocate", ["--dig-holes", source])
        case "pi":
            source = try PiSizedImage.ensure().raw
        default:
            throw BenchError("--image \(image): demo or pi")
        }
        Report.line("image: \(source): \(Report.bytes(Files.size(source))), \(Report.bytes(Files.allocated(source))) of data; \(Shell.version("xz")); \(Shell.version("zstd"))")

        // A copy beside the scratch folder's outputs: the sidecars are written next to the image.
        let work = folder + "/site.img"
        try Shell.run("cp", ["--sparse=always", source, work])
        let signOnly = try Stopwatch.time { _ = try ImageSigning.sign(imageAt: work, key: key, padding: .pkcs1) }
        Report.measurement("anchor: the signing pass alone (SHA-256 + signature)", seconds: signOnly)
        for format in CompressionSpec.Format.allCases {
            let spec = CompressionSpec(format: format)
            try? FileManager.default.removeItem(atPath: spec.path(forImageAt: work))
            var written: ImageOutputs.Written?
            let ours = try Stopwatch.time {
                written = try ImageOutputs.write(imageAt: work, key: key, padding: .pkcs1, compression: spec, threads: threads)
            }
            let compressed = written!.compressed!
            let cliOutput = folder + "/cli." + format.fileExtension
            let tool = format == .xz ? "xz" : "zstd"
            let cli = try Stopwatch.time {
                try Shell.run(tool, ["-T\(threads)", "-\(spec.level)", "-c", work], stdoutPath: cliOutput)
            }
            let cliSize = Files.size(cliOutput)
            Report.measurement("\(spec): fleet-images sign + bmap + compress in one read", seconds: ours,
                               detail: "\(Report.bytes(compressed.size)), \(Report.bytes(written!.mappedBytes)) mapped")
            Report.measurement("\(spec): \(tool) -T\(threads) -\(spec.level) -c alone", seconds: cli, detail: Report.bytes(cliSize))
            Report.line("ratio \(spec) time one read / \(tool) alone: \(Report.ratio(ours / cli)) (goal ≤ 1: the signing pass comes free); size: \(Report.ratio(Double(compressed.size) / Double(cliSize)))"
                        + (format == .xz ? (try Digest.sha256Hex(fileAt: cliOutput) == compressed.sha256 ? ", the same bytes" : ", DIFFERENT bytes") : ""))
            try FileManager.default.removeItem(atPath: cliOutput)
        }
    }
}
