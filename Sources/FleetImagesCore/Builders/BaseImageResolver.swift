import Foundation
import Subprocess

/// Resolves the manifest's base image once per run: verifies the file named by `source` against
/// the manifest's SHA-256 before any use, and decompresses it (`.xz`, `.gz`, `.zst`, `.zip` with
/// one image inside) into a cache keyed by that digest, sparse (zeros left as holes, or punched
/// back in after `gzip`/`unzip`) so every variant's copy stays sparse. The cached image is read-only and never modified.
public struct BaseImageResolver: Sendable {
    public var manifest: Manifest
    public var cacheDirectory: String

    public init(manifest: Manifest, cacheDirectory: String) {
        self.manifest = manifest
        self.cacheDirectory = cacheDirectory
    }

    public struct Resolved: Sendable {
        /// The decompressed raw image (read-only).
        public var imagePath: String
        /// SHA-256 of the file `source` names (archive or raw image).
        public var sourceSHA256: String
        public var source: String
    }

    public func resolve(log: @Sendable (String) -> Void) async throws -> Resolved {
        let spec = manifest.baseImage
        let sourceText: String
        let archive: String
        switch spec.source {
        case .path(let relative):
            sourceText = relative
            archive = manifest.directory + "/" + relative
        case .url(let url):
            sourceText = url
            archive = try await download(url, log: log)
        }
        let expected = try await expectedDigest(log: log)
        let actual = try Digest.sha256Hex(fileAt: archive)
        guard actual == expected else {
            throw BuildFailure("base image \(sourceText) has SHA-256 \(actual), but the manifest expects \(expected); the file is corrupt or not the one the manifest names (nothing was built from it)")
        }
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        let cached = "\(cacheDirectory)/\(actual).img"
        if FileManager.default.fileExists(atPath: cached) {
            log("base image \(sourceText): sha256 \(actual) verified, decompressed copy cached")
            return Resolved(imagePath: cached, sourceSHA256: actual, source: sourceText)
        }
        let temporary = "\(cacheDirectory)/.\(actual).img.partial-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try await decompress(archive, to: temporary, name: sourceText)
        chmod(temporary, 0o444)
        guard rename(temporary, cached) == 0 else {
            throw BuildFailure("cannot place the decompressed base image at \(cached): \(String(cString: strerror(errno)))")
        }
        log("base image \(sourceText): sha256 \(actual) verified, decompressed into the cache")
        return Resolved(imagePath: cached, sourceSHA256: actual, source: sourceText)
    }

    func expectedDigest(log: @Sendable (String) -> Void) async throws -> String {
        if let sha = manifest.baseImage.sha256 { return sha }
        guard let url = manifest.baseImage.checksumURL else { throw BuildFailure("base_image has neither sha256 nor checksum_url") }
        let file = try await download(url, log: log)
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        guard let token = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).first.map(String.init),
              Names.isSHA256Hex(token.lowercased()) else {
            throw BuildFailure("\(url) does not start with a SHA-256 digest; check base_image.checksum_url")
        }
        return token.lowercased()
    }

    /// Downloads into the cache with `curl`, resuming a partial download.
    func download(_ url: String, log: @Sendable (String) -> Void) async throws -> String {
        let name = URL(string: url)?.lastPathComponent ?? "download"
        let folder = cacheDirectory + "/downloads/" + Digest.sha256Hex(Array(url.utf8)).prefix(16)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        let final = folder + "/" + name
        if FileManager.default.fileExists(atPath: final) { return final }
        guard ToolAvailability.path(named: "curl") != nil else {
            throw ToolMissing(description: "downloading \(url) needs curl (apt-get install curl), or download it yourself and give base_image.source as a local path")
        }
        log("downloading \(url)")
        let partial = final + ".part"
        let result = try await Subprocess.run(
            ToolAvailability.executable(named: "curl"), arguments: ["--fail", "--location", "--silent", "--show-error", "--continue-at", "-", "--output", partial, url],
            output: .discarded, error: .string(limit: 64 * 1024))
        try Task.checkCancellation()
        guard result.terminationStatus.isSuccess else {
            throw BuildFailure("downloading \(url) failed: \(result.standardError.trimmingCharacters(in: .whitespacesAndNewlines)); rerun to resume")
        }
        guard rename(partial, final) == 0 else { throw BuildFailure("cannot rename \(partial): \(String(cString: strerror(errno)))") }
        return final
    }

    func decompress(_ archive: String, to output: String, name: String) async throws {
        let lower = archive.lowercased()
        // xz and zstd in-process (liblzma, libzstd): the zeros of the image are never written,
        // and a cancelled run stops between chunks.
        if let format = CompressionSpec.Format.allCases.first(where: { lower.hasSuffix("." + $0.fileExtension) }) {
            let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BuildFailure("cannot create \(output): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            do {
                try ImageDecompressor.expand(archive, format: format, into: fd, shown: output)
            } catch .cancelled {
                throw CancellationError()
            } catch .compressionFailed(_, let reason) {
                throw BuildFailure("\(name) is not a valid \(format == .xz ? "xz" : "zstd") archive: \(reason)")
            } catch {
                throw BuildFailure("decompressing \(name): \(error)")
            }
            // Every variant is built from this copy: it is on disk before it is placed in the cache.
            guard fsync(fd) == 0 else { throw BuildFailure("cannot write \(output): \(String(cString: strerror(errno)))") }
            return
        }
        let command: (String, [String])?
        if lower.hasSuffix(".gz") { command = ("gzip", ["-dc", archive]) }
        else if lower.hasSuffix(".zip") { command = ("unzip", ["-p", archive, try await zipMember(archive, name: name)]) }
        else { command = nil }
        guard let (tool, arguments) = command else {
            _ = try SparseCopy.copy(from: archive, to: output)
            return
        }
        guard ToolAvailability.path(named: tool) != nil else {
            throw ToolMissing(description: "decompressing \(name) needs \(tool); install it (scripts/install-deps.sh does)")
        }
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BuildFailure("cannot create \(output): \(String(cString: strerror(errno)))") }
        let result = try await Subprocess.run(
            ToolAvailability.executable(named: tool), arguments: Arguments(arguments),
            output: .fileDescriptor(.init(rawValue: fd), closeAfterSpawningProcess: true),
            error: .string(limit: 64 * 1024))
        try Task.checkCancellation()
        guard result.terminationStatus.isSuccess else {
            throw BuildFailure("\(name) is not a valid \(tool) archive: \(result.standardError.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // Decompressors write zeros as data; punch them back into holes so per-variant copies stay cheap.
        if ToolAvailability.path(named: "fallocate") != nil {
            _ = try? await Subprocess.run(ToolAvailability.executable(named: "fallocate"), arguments: ["--dig-holes", output], output: .discarded, error: .discarded)
        }
    }

    func zipMember(_ archive: String, name: String) async throws -> String {
        let result = try await Subprocess.run(ToolAvailability.executable(named: "unzip"), arguments: ["-Z1", archive], output: .string(limit: 1 << 20), error: .discarded)
        let members = result.standardOutput.split(separator: "\n").map(String.init).filter { $0.lowercased().hasSuffix(".img") }
        guard members.count == 1 else {
            throw BuildFailure("\(name) holds \(members.count) .img files; it must hold exactly one")
        }
        return members[0]
    }
}

/// A tool the run needs is not installed (exit 69).
public struct ToolMissing: Error, CustomStringConvertible, Sendable {
    public var description: String
}
