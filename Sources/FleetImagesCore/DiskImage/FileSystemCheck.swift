import Foundation

/// Read-only consistency checks of the file systems in an image, by the standard checkers
/// (`e2fsck -fn`, `fsck.fat -n`): a built image is checked before it is signed.
public enum FileSystemCheck {
    /// Runs `e2fsck -fn 'image?offset=N'`; returns its report, throws `.fileSystemCheckFailed` with it
    /// when it finds a problem.
    @discardableResult
    public static func ext4(imageAt path: String, offset: UInt64) async throws -> String {
        guard !path.contains("?") else {
            throw DiskImageError.invalidPath(path: path, reason: "e2fsck cannot open an image whose path contains '?'")
        }
        let outcome = try await DiskImageProcess.run(.e2fsck, ["-f", "-n", "\(path)?offset=\(offset)"], image: path)
        guard outcome.succeeded else {
            throw DiskImageError.fileSystemCheckFailed(
                tool: "e2fsck", image: "\(path) (ext4 at byte \(offset))",
                output: "exit status \(outcome.exitCode.map(String.init) ?? "none")\n" + outcome.output)
        }
        return outcome.output
    }

    /// Copies the partition's bytes to a temporary file (fsck.fat takes no offset) and runs `fsck.fat -n` on it;
    /// returns its report, throws `.fileSystemCheckFailed` with it when it finds a problem.
    @discardableResult
    public static func fat(imageAt path: String, partition: Partition) async throws -> String {
        let scratch = try DiskImageScratch(near: path)
        defer { scratch.remove() }
        let copy = scratch.file("partition.img")
        try SparseCopy.extract(partition.startOffset..<partition.endOffset, of: path, to: copy)
        let outcome = try await DiskImageProcess.run(.fsckFAT, ["-n", copy], image: path)
        let report = outcome.output.replacingOccurrences(of: copy, with: "partition \(partition.number)")
        guard outcome.succeeded else {
            throw DiskImageError.fileSystemCheckFailed(
                tool: "fsck.fat", image: "\(path) (partition \(partition.number))",
                output: "exit status \(outcome.exitCode.map(String.init) ?? "none")\n" + report)
        }
        return report
    }
}
