#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File plumbing shared by the signing types: reading small PEM files with clear errors,
/// naming what a PEM file holds, and writing outputs so that no reader ever sees half a file.
enum SigningFiles {
    /// Key and certificate files are a few KiB; anything beyond this is not one.
    static let smallFileLimit = 1 << 20

    /// Reads a whole small file (a key or certificate).
    static func readSmallFile(_ path: String, kind: String = "PEM file", limit: Int = smallFileLimit) throws(SigningError) -> [UInt8] {
        let fd = try openForReading(path)
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .fileUnreadable(path: path, errno: errno)
            }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
            if result.count > limit {
                throw .wrongContent(path: path, expected: "a \(kind) of at most \(limit >> 20) MiB", found: "a larger file")
            }
        }
        return result
    }

    /// Opens `path` read-only; a missing file and an unreadable one are different errors. Only a
    /// regular file is opened: `O_NONBLOCK` keeps a FIFO from holding the open until a writer comes,
    /// and `fstat` refuses it (and sockets and devices) before anything is read.
    static func openForReading(_ path: String) throws(SigningError) -> Int32 {
        while true {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
            if fd >= 0 {
                var info = stat()
                guard fstat(fd, &info) == 0 else {
                    let code = errno
                    close(fd)
                    throw .fileUnreadable(path: path, errno: code)
                }
                switch info.st_mode & S_IFMT {
                case S_IFREG:
                    return fd
                case S_IFDIR:
                    close(fd)
                    throw .fileUnreadable(path: path, errno: EISDIR)
                default:
                    close(fd)
                    throw .wrongContent(path: path, expected: "a regular file", found: InputFile.kind(info.st_mode))
                }
            }
            let code = errno
            if code == EINTR { continue }
            if code == ENOENT { throw .fileNotFound(path: path) }
            throw .fileUnreadable(path: path, errno: code)
        }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Removes a file this process just created; nothing to report if that fails.
    static func remove(_ path: String) {
        _ = unlink(path)
    }

    // MARK: PEM labels

    /// The labels of the PEM blocks in `bytes` (`PRIVATE KEY`, `CERTIFICATE`, …), in order.
    static func pemLabels(_ bytes: [UInt8]) -> [String] {
        let text = String(decoding: bytes, as: UTF8.self)
        var labels: [String] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            guard line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") else { continue }
            let label = line.dropFirst("-----BEGIN ".count).dropLast("-----".count)
            labels.append(String(label))
        }
        return labels
    }

    static func isPrivateKeyLabel(_ label: String) -> Bool {
        label == "PRIVATE KEY" || label == "ENCRYPTED PRIVATE KEY" || label == "ANY PRIVATE KEY"
            || label.hasSuffix(" PRIVATE KEY")
    }

    static func isPublicKeyLabel(_ label: String) -> Bool {
        label == "PUBLIC KEY" || label.hasSuffix(" PUBLIC KEY")
    }

    static func isCertificateLabel(_ label: String) -> Bool {
        label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE" || label == "X509 CERTIFICATE"
    }

    /// A phrase for error messages saying what a PEM file holds.
    static func describeContent(_ labels: [String]) -> String {
        if labels.isEmpty { return "no PEM data (DER and other encodings are not supported; convert with `openssl … -outform PEM`)" }
        if labels.contains(where: isPrivateKeyLabel) { return "a private key" }
        if labels.contains(where: isCertificateLabel) { return "a certificate" }
        if labels.contains(where: isPublicKeyLabel) { return "a public key" }
        if labels.contains(where: { $0.contains("CERTIFICATE REQUEST") }) { return "a certificate signing request" }
        if labels == ["EC PARAMETERS"] { return "EC parameters only" }
        return "a PEM block labelled \"\(labels[0])\""
    }

    // MARK: writing

    /// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, `mode`, rename,
    /// then fsync of the folder. An existing file at `path` is replaced.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(SigningError) {
        let temporary = try writeTemporary(bytes, besides: path, mode: mode)
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw .writeFailed(path: path, errno: code)
        }
        syncDirectory(of: path)
    }

    /// Writes `bytes` to `path` only if nothing is there: a complete temporary file is linked to the
    /// final name (`link` fails with EEXIST instead of replacing), so the final name never holds a partial file.
    static func writeExclusively(_ bytes: [UInt8], to path: String, mode: mode_t) throws(SigningError) {
        let temporary = try writeTemporary(bytes, besides: path, mode: mode)
        defer { unlink(temporary) }
        if link(temporary, path) != 0 {
            let code = errno
            if code == EEXIST { throw .fileExists(path: path) }
            throw .writeFailed(path: path, errno: code)
        }
        syncDirectory(of: path)
    }

    /// Creates `.<name>.tmp-<random>` next to `path` with O_CREAT|O_EXCL and `mode`, writes and fsyncs it.
    private static func writeTemporary(_ bytes: [UInt8], besides path: String, mode: mode_t) throws(SigningError) -> String {
        let (folder, name) = split(path)
        var fd: Int32 = -1
        var temporary = ""
        for _ in 0..<16 {
            let suffix = Digest.randomBytes(6).map { String($0, radix: 16) }.joined()
            temporary = folder + "." + name + ".tmp-" + suffix
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if fd >= 0 || errno != EEXIST { break }
        }
        if fd < 0 { throw .writeFailed(path: path, errno: errno) }
        do throws(SigningError) {
            // The umask may have narrowed `mode`; the mode is part of the contract (0600 keys, 0640 sidecars).
            if fchmod(fd, mode) != 0 { throw SigningError.writeFailed(path: temporary, errno: errno) }
            let failure: Int32? = bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    offset += written
                }
                return nil
            }
            if let failure { throw SigningError.writeFailed(path: temporary, errno: failure) }
            if fsync(fd) != 0 { throw SigningError.writeFailed(path: temporary, errno: errno) }
            if close(fd) != 0 {
                fd = -1
                throw SigningError.writeFailed(path: temporary, errno: errno)
            }
            return temporary
        } catch {
            if fd >= 0 { close(fd) }
            unlink(temporary)
            throw error
        }
    }

    /// Makes a rename or link durable; failure here is not worth failing the operation for.
    static func syncDirectory(of path: String) {
        let (folder, _) = split(path)
        let fd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// ("dir/", "name") for "dir/name"; ("", "name") for "name".
    static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }
}
