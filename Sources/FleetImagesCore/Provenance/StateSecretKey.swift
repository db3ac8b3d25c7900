import Foundation

/// The local key under which digests of secret-bearing inputs are HMACs (see ``DigestKind/hmacSHA256``).
///
/// 32 random bytes in `secret.key` beside the database, created on first use with mode 0600.
/// A plain SHA-256 of a Wi-Fi passphrase can be brute-forced from a stolen database; an HMAC
/// cannot without this key. Keep it out of version control and backups of the database.
public enum StateSecretKey {
    public static let fileName = "secret.key"
    public static let byteCount = 32

    /// A public name for `key`: the first 16 bytes (hex) of HMAC-SHA-256(key, a fixed label).
    /// Runs record it, so that `fleet-images merge` can tell whether a shard's digests were made
    /// under the same key as this state's (only then can its inputs digests match) without the
    /// key ever leaving its file. It reveals nothing about the key.
    public static func identity(of key: [UInt8]) -> String {
        String(Digest.hmacSHA256Hex(key: key, message: Array("fleet-images state key identity v1".utf8)).prefix(32))
    }

    /// Reads the key in `directory`, creating it first when absent.
    ///
    /// Creation is atomic: the bytes go to a private temporary file that is then hard-linked to
    /// `secret.key` (which fails if another process got there first, whose key is then used), so
    /// no process ever reads a half-written key.
    ///
    /// - Throws: ``ProvenanceError/secretKeyExposed(path:mode:)`` when the file is group- or
    ///   world-accessible, ``ProvenanceError/secretKeyInvalid(path:detail:)`` when it is not a
    ///   regular file of 32 bytes (it is never replaced), ``ProvenanceError/io(path:operation:errno:)``.
    public static func loadOrCreate(inDirectory directory: String) throws -> [UInt8] {
        let path = (directory as NSString).appendingPathComponent(fileName)
        if let key = try load(path: path) { return key }
        try create(path: path, directory: directory)
        guard let key = try load(path: path) else {
            throw ProvenanceError.io(path: path, operation: "open", errno: ENOENT)
        }
        return key
    }

    /// The key at `path`, or nil when there is no such file.
    static func load(path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw ProvenanceError.secretKeyInvalid(path: path, detail: "a symbolic link") }
            throw ProvenanceError.io(path: path, operation: "open", errno: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ProvenanceError.io(path: path, operation: "fstat", errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvenanceError.secretKeyInvalid(path: path, detail: "not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw ProvenanceError.secretKeyExposed(path: path, mode: UInt32(info.st_mode))
        }
        guard info.st_size == byteCount else {
            throw ProvenanceError.secretKeyInvalid(path: path, detail: "\(info.st_size) bytes, expected \(byteCount)")
        }
        var key = [UInt8](repeating: 0, count: byteCount)
        guard try readFully(fd, into: &key, path: path) == byteCount else {
            throw ProvenanceError.secretKeyInvalid(path: path, detail: "shorter than \(byteCount) bytes")
        }
        return key
    }

    private static func create(path: String, directory: String) throws {
        var key = try randomBytes(byteCount)
        defer { for index in key.indices { key[index] = 0 } }
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        // Name the key's own path in the error: the temporary name would only confuse.
        guard fd >= 0 else { throw ProvenanceError.io(path: path, operation: "create", errno: errno) }
        defer { unlink(temporary) }
        do {
            defer { close(fd) }
            // The umask can only remove bits, but be explicit: owner read/write only.
            guard fchmod(fd, 0o600) == 0 else { throw ProvenanceError.io(path: temporary, operation: "chmod", errno: errno) }
            try key.withUnsafeBytes { try ProvenanceAtomicFile.writeFully(fd, $0, path: temporary) }
        }
        if link(temporary, path) != 0, errno != EEXIST {
            throw ProvenanceError.io(path: path, operation: "create", errno: errno)
        }
        // Make the new directory entry durable too.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    private static func readFully(_ fd: Int32, into buffer: inout [UInt8], path: String) throws -> Int {
        var total = 0
        while total < buffer.count {
            let count = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + total, raw.count - total)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw ProvenanceError.io(path: path, operation: "read", errno: errno)
            }
            if count == 0 { break }
            total += count
        }
        return total
    }

    /// Bytes from the kernel's CSPRNG (`/dev/urandom`).
    private static func randomBytes(_ count: Int) throws -> [UInt8] {
        let source = "/dev/urandom"
        let fd = open(source, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ProvenanceError.io(path: source, operation: "open", errno: errno) }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        guard try readFully(fd, into: &bytes, path: source) == count else {
            throw ProvenanceError.io(path: source, operation: "read", errno: EIO)
        }
        return bytes
    }
}
