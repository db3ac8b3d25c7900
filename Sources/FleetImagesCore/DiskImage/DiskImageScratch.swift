import Foundation

/// A private temporary directory (mode 0700) for command files and extracted files (partition
/// copies, which hold claim keys); removed by `remove()`.
///
/// It is made beside the image it serves (in a build, inside the run's work folder), not in
/// `$TMPDIR`: if the process is killed before `remove()`, the leftover goes with the work folder,
/// which the next run removes. `$TMPDIR` only when the image's folder cannot be written.
struct DiskImageScratch {
    /// Name prefix of every scratch folder (hidden: never part of a build's output).
    static let prefix = ".fleet-images-scratch."

    let path: String

    init(near image: String) throws(DiskImageError) {
        let folder = (URL(fileURLWithPath: image).standardizedFileURL.path as NSString).deletingLastPathComponent
        if let made = Self.make(in: folder) {
            path = made
            return
        }
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        guard let made = Self.make(in: base) else { throw .io(path: base, operation: "create a temporary directory", errno: errno) }
        path = made
    }

    private static func make(in base: String) -> String? {
        var template = Array((base + "/" + prefix + "XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard created != nil else { return nil }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ text: String, to name: String) throws(DiskImageError) {
        let target = file(name)
        guard FileManager.default.createFile(atPath: target, contents: Data(text.utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw .io(path: target, operation: "write", errno: errno)
        }
    }

    func read(_ name: String) throws(DiskImageError) -> [UInt8] {
        let target = file(name)
        guard let data = FileManager.default.contents(atPath: target) else {
            throw .io(path: target, operation: "read", errno: errno)
        }
        return [UInt8](data)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
