import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes and reads files in a FAT file system inside a disk image file through mtools (`-i image@@offset`),
/// without root, mounting or loop devices.
///
/// mtools gets a private configuration: `HOME` and `MTOOLSRC` point into a temporary directory whose
/// `mtoolsrc` sets `mtools_skip_check=1` (Raspberry Pi OS boot partitions trip mtools' geometry check),
/// so a user's `~/.mtoolsrc` cannot change what is written. `/etc/mtools.conf` is still read, with lower
/// precedence.
public struct FATEditor: Sendable {
    public let imagePath: String
    /// Byte offset of the file system in the image (the partition's `startOffset`).
    public let partitionOffset: UInt64

    public init(imagePath: String, partitionOffset: UInt64) {
        self.imagePath = imagePath
        self.partitionOffset = partitionOffset
    }

    var imageDescription: String { "\(imagePath) (FAT at byte \(partitionOffset))" }

    /// Copies a host file to `path` (absolute, `/` separated), replacing a file already there and creating
    /// missing parent directories.
    public func write(hostFile: String, to path: String) async throws {
        let parts = try Self.components(of: path)
        guard !parts.isEmpty else { throw DiskImageError.invalidPath(path: path, reason: "is the root directory") }
        guard try hostFileType(hostFile) == S_IFREG else {
            throw DiskImageError.invalidPath(path: hostFile, reason: "the file to copy into the image is not a regular file")
        }
        let scratch = try makeScratch()
        defer { scratch.remove() }

        var directoryNotes: [String] = []
        for depth in parts.indices.dropLast() {
            // mmd exits 1 both for "already there" (skipped with -D s) and for real failures; a real failure
            // shows up as a failing mcopy below, whose message then includes what mmd said.
            let outcome = try await run(.mmd, ["-D", "s", Self.mtoolsPath(parts[...depth])], scratch)
            if !outcome.output.isEmpty { directoryNotes.append(outcome.output) }
        }
        let outcome = try await run(.mcopy, ["-o", "-D", "o", hostFile, Self.mtoolsPath(parts[...])], scratch)
        guard outcome.succeeded else {
            let cause = (directoryNotes + [outcome.output]).joined(separator: "; ")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw DiskImageError.editFailed(image: imageDescription, path: path,
                                            cause: cause.isEmpty ? "mcopy exited with \(outcome.exitCode.map(String.init) ?? "a signal")" : cause)
        }
    }

    /// Writes several files, in order; stops at the first failure.
    public func write(_ files: [(hostFile: String, path: String)]) async throws {
        for file in files {
            try await write(hostFile: file.hostFile, to: file.path)
        }
    }

    /// The content of the file at `path`, or nil when there is none. Throws when it is a directory or mtools fails.
    public func readFile(_ path: String) async throws -> [UInt8]? {
        let parts = try Self.components(of: path)
        guard !parts.isEmpty else {
            throw DiskImageError.notARegularFile(image: imageDescription, path: path, kind: "directory")
        }
        let scratch = try makeScratch()
        defer { scratch.remove() }
        let outcome = try await run(.mcopy, ["-n", Self.mtoolsPath(parts[...]), scratch.file("content")], scratch)
        guard outcome.succeeded else {
            if outcome.output.contains("not found") { return nil }
            throw DiskImageError.toolFailed(tool: "mcopy", image: imageDescription,
                                            detail: "cannot read \(path): \(outcome.output)")
        }
        // Given a directory, mcopy copies it as a directory tree.
        guard try hostFileType(scratch.file("content")) == S_IFREG else {
            throw DiskImageError.notARegularFile(image: imageDescription, path: path, kind: "directory")
        }
        return try scratch.read("content")
    }

    private func makeScratch() throws(DiskImageError) -> DiskImageScratch {
        guard !imagePath.contains("@@") else {
            throw DiskImageError.invalidPath(path: imagePath, reason: "mtools cannot open an image whose path contains '@@'")
        }
        let scratch = try DiskImageScratch(near: imagePath)
        try scratch.write("mtools_skip_check=1\n", to: "mtoolsrc")
        return scratch
    }

    private func run(_ tool: ToolAvailability.Tool, _ arguments: [String], _ scratch: DiskImageScratch) async throws -> DiskImageProcess.Outcome {
        try await DiskImageProcess.run(
            tool, ["-i", "\(imagePath)@@\(partitionOffset)"] + arguments, image: imageDescription,
            environment: ["HOME": scratch.path, "MTOOLSRC": scratch.file("mtoolsrc"), "MTOOLS_SKIP_CHECK": "1"])
    }

    /// Components of an absolute path, rejecting what FAT cannot store or mtools would treat as a pattern.
    static func components(of path: String) throws(DiskImageError) -> [String] {
        let parts = try Ext4Path.components(of: path)
        if path.contains(where: { ImagePath.fatForbidden.contains($0) || ($0.asciiValue.map { $0 < 0x20 } ?? false) }) {
            throw DiskImageError.invalidPath(path: path, reason: "contains a character FAT does not allow (* ? \" < > : | \\ or a control character)")
        }
        return parts
    }

    static func mtoolsPath(_ parts: ArraySlice<String>) -> String {
        "::/" + parts.joined(separator: "/")
    }
}
