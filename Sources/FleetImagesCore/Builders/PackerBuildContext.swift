import Foundation

/// One rendered Packer build context: the folder mounted at `/build` in the packer-builder-arm
/// container. Made by ``PackerTemplateRenderer`` (pure) and written by ``write(to:)``.
///
/// Layout: `<template>.json`, `files/NN-<name>` (the variant's files, claim key and Wi-Fi keyfile
/// included, mode 0600 when secret), `scripts/` (fleet-images' two chroot scripts and the
/// template's own scripts), `.packer_cache/` (the mount point of the shared download cache) and,
/// after the build, the image at ``imagePath``.
public struct PackerBuildContext: Sendable {
    public enum Content: Sendable, Equatable {
        /// A file on the host, copied in (absolute path).
        case copy(String)
        case bytes([UInt8])
    }

    public struct File: Sendable, Equatable {
        /// Path inside the context.
        public var path: String
        public var content: Content
        public var mode: UInt32
        /// Never shown in listings (claim key, Wi-Fi keyfile).
        public var secret: Bool
    }

    /// A host file or folder the container sees read-only (a base image given as a path).
    public struct Mount: Sendable, Equatable {
        public var host: String
        public var container: String
    }

    /// Where Packer's download cache is mounted (packer-builder-arm runs Packer in `/build`).
    public static let cacheMountPoint = "/build/.packer_cache"

    public var templateFileName: String
    public var template: String
    public var files: [File]
    /// The image Packer writes, relative to the context.
    public var imagePath: String
    public var readOnlyMounts: [Mount]
    /// Things the operator should know (a qemu binary replaced, a provisioner dropped).
    public var notes: [String]
    /// The var-file Packer reads (`-var-file=`), relative to the context; nil when the manifest
    /// sets no template variables.
    public var varFileName: String? = nil

    /// Packer's arguments inside the container (the entrypoint runs `packer` with them).
    public var packerArguments: [String] {
        ["build", "-machine-readable"] + (varFileName.map { ["-var-file=" + $0] } ?? []) + [templateFileName]
    }

    /// Writes the context into `directory` (created with mode 0700; must not exist yet or be empty).
    public func write(to directory: String) throws {
        let fm = FileManager.default
        func makeFolder(_ path: String) throws {
            do {
                try fm.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw BuildFailure("cannot create \(path) for the Packer build context: \(error.localizedDescription)")
            }
            chmod(path, 0o700)
        }
        try makeFolder(directory)
        try makeFolder(directory + "/.packer_cache")
        try Self.writeFile(directory + "/" + templateFileName, bytes: Array(template.utf8), mode: 0o600)
        for file in files {
            let target = directory + "/" + file.path
            try makeFolder((target as NSString).deletingLastPathComponent)
            switch file.content {
            case .bytes(let bytes):
                try Self.writeFile(target, bytes: bytes, mode: file.mode)
            case .copy(let source):
                guard let data = fm.contents(atPath: source) else {
                    throw BuildFailure("cannot read \(source) to put it into the Packer build context")
                }
                try Self.writeFile(target, bytes: Array(data), mode: file.mode)
            }
        }
    }

    /// A listing for golden files and `--keep-work` reviews: the template, then each file with
    /// its mode and where it comes from; generated non-secret text is shown in full.
    public func listing(relativeTo repository: String) -> String {
        var out = "== \(templateFileName)\n" + template
        out += "== image: \(imagePath)\n"
        for mount in readOnlyMounts {
            out += "== mount (read-only): \(mount.host.hasPrefix(repository + "/") ? String(mount.host.dropFirst(repository.count + 1)) : mount.host) -> \(mount.container)\n"
        }
        for note in notes { out += "== note: \(note)\n" }
        for file in files {
            let mode = String(file.mode, radix: 8)
            switch file.content {
            case .copy(let source):
                let shown = source.hasPrefix(repository + "/") ? String(source.dropFirst(repository.count + 1)) : source
                out += "== \(file.path) (\(mode)): copy of \(shown)\n"
            case .bytes(let bytes):
                if file.secret {
                    out += "== \(file.path) (\(mode)): generated, secret, \(bytes.count) bytes\n"
                } else {
                    out += "== \(file.path) (\(mode)): generated\n" + String(decoding: bytes, as: UTF8.self)
                    if bytes.last != UInt8(ascii: "\n") { out += "\n" }
                }
            }
        }
        return out
    }

    static func writeFile(_ path: String, bytes: [UInt8], mode: UInt32) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard fd >= 0 else {
            throw BuildFailure("cannot write \(path) in the Packer build context: \(String(cString: strerror(errno)))")
        }
        fchmod(fd, mode_t(mode))
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do { try handle.write(contentsOf: Data(bytes)) } catch {
            throw BuildFailure("cannot write \(path) in the Packer build context: \(error.localizedDescription)")
        }
    }
}
