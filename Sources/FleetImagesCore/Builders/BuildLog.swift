import Foundation

/// A variant's build log: one file per build (mode 0640), timestamped lines, append-only.
/// Never given a secret: builders log paths, sizes and digests only.
///
/// Writes go straight to the file descriptor: a full or failing disk never traps (Foundation's
/// `FileHandle.write` does), it is remembered in ``writeError`` and the build fails with it.
public final class BuildLog: @unchecked Sendable {
    // @unchecked: `fd` is set once in init; `firstError` is only touched under `lock`.
    private let fd: Int32
    private let lock = NSLock()
    private var firstError: String?
    public let path: String
    /// Called with each line as well (progress display); may be nil.
    private let echo: (@Sendable (String) -> Void)?

    public init(path: String, echo: (@Sendable (String) -> Void)? = nil) throws {
        self.path = path
        self.echo = echo
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw BuildFailure("cannot create the log file \(path): \(String(cString: strerror(errno)))")
        }
        self.fd = fd
    }

    /// A log that only echoes (for tests and dry runs).
    public init(echo: @escaping @Sendable (String) -> Void) {
        path = "/dev/null"
        fd = -1
        self.echo = echo
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The first write that failed ("cannot write the log …: No space left on device"), if any.
    public var writeError: String? {
        lock.lock()
        defer { lock.unlock() }
        return firstError
    }

    public func callAsFunction(_ line: String) {
        append("\(Self.timestamp(Date())) \(line)\n")
        echo?(line)
    }

    /// Raw tool output, indented under the line that ran it.
    public func output(_ text: String) {
        guard !text.isEmpty else { return }
        let indented = text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        append(indented + (text.hasSuffix("\n") ? "" : "\n"))
    }

    private func append(_ text: String) {
        guard fd >= 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                if firstError == nil {
                    firstError = "cannot write the log \(path): \(written < 0 ? String(cString: strerror(errno)) : "nothing written")"
                }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }

    /// A value-type format style: thread-safe and cheap, unlike a formatter made per line.
    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
