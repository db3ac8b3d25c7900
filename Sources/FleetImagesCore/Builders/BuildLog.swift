import Foundation

/// A variant's build log: one file per build (mode 0640), timestamped lines, append-only.
/// Never given a secret: builders log paths, sizes and digests only.
public final class BuildLog: @unchecked Sendable {
    // @unchecked: the handle is only touched under `lock`.
    private let handle: FileHandle?
    private let lock = NSLock()
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
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// A log that only echoes (for tests and dry runs).
    public init(echo: @escaping @Sendable (String) -> Void) {
        path = "/dev/null"
        handle = nil
        self.echo = echo
    }

    public func callAsFunction(_ line: String) {
        let stamp = Self.timestamp(Date())
        lock.lock()
        handle?.write(Data("\(stamp) \(line)\n".utf8))
        lock.unlock()
        echo?(line)
    }

    /// Raw tool output, indented under the line that ran it.
    public func output(_ text: String) {
        guard !text.isEmpty else { return }
        let indented = text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        lock.lock()
        handle?.write(Data((indented + (text.hasSuffix("\n") ? "" : "\n")).utf8))
        lock.unlock()
    }

    /// A value-type format style: thread-safe and cheap, unlike a formatter made per line.
    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
