import Foundation

/// A private temporary directory (mode 0700) for command files and extracted files; removed by `remove()`.
struct DiskImageScratch {
    let path: String

    init() throws(DiskImageError) {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/fleet-images-disk.XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard created != nil else { throw .io(path: base, operation: "create a temporary directory", errno: errno) }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
