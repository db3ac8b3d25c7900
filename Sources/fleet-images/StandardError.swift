import Foundation

/// Writes to standard error with write(2). `FileHandle.standardError.write` traps when the write
/// fails (stderr redirected to a file on a full disk, a closed pipe): a message that cannot be
/// written is lost, never a crash.
enum StandardError {
    static func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
