import Foundation
import Testing
@testable import FleetImagesCore

@Suite("SparseCopy", .serialized)
struct DiskImageSparseCopyTests {
    /// A 64 MiB file with three small data regions (one at the very end) and holes everywhere else.
    private func makeSparseSource(in directory: String) throws -> String {
        let source = directory + "/base.img"
        try DiskImageShell.run(["truncate", "-s", "64M", source])
        try DiskImageShell.run(["dd", "if=/dev/urandom", "of=\(source)", "bs=64k", "count=3", "seek=17", "conv=notrunc", "status=none"])
        try DiskImageShell.run(["dd", "if=/dev/urandom", "of=\(source)", "bs=1M", "count=2", "seek=40", "conv=notrunc", "status=none"])
        try DiskImageShell.run(["dd", "if=/dev/urandom", "of=\(source)", "bs=4k", "count=1", "seek=16383", "conv=notrunc", "status=none"])
        return source
    }

    @Test("every method copies the content exactly and keeps the holes", arguments: [
        [SparseCopy.Method.clone, .dataExtents, .readWrite], [.dataExtents], [.readWrite],
    ])
    func copiesSparsely(methods: [SparseCopy.Method]) throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try makeSparseSource(in: directory)
        let digest = try DiskImageShell.sha256(source)
        let destination = directory + "/work.img"

        let used = try SparseCopy.copy(from: source, to: destination, trying: methods)
        #expect(methods.contains(used))
        try DiskImageShell.run(["cmp", source, destination])
        #expect(try FileManager.default.attributesOfItem(atPath: destination)[.size] as? UInt64 == 64 << 20)
        // About 2.2 MiB of data: the copy must not allocate the 64 MiB apparent size.
        let allocated = try DiskImageShell.allocatedBytes(destination)
        #expect(allocated < 8 << 20, "copy allocates \(allocated) bytes")
        #expect(try DiskImageShell.run(["stat", "-c", "%a", destination]).text == "600\n")
        #expect(try DiskImageShell.sha256(source) == digest)
    }

    @Test("an existing destination is refused and left alone")
    func refusesExistingDestination() throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try makeSparseSource(in: directory)
        let destination = directory + "/work.img"
        try DiskImageTestDirectory.write(Array("keep me".utf8), to: destination)
        #expect(throws: DiskImageError.io(path: destination, operation: "create (exclusively)", errno: EEXIST)) {
            try SparseCopy.copy(from: source, to: destination)
        }
        #expect(FileManager.default.contents(atPath: destination) == Data("keep me".utf8))
    }

    @Test("a missing source creates nothing")
    func missingSource() throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let destination = directory + "/work.img"
        #expect(throws: DiskImageError.io(path: directory + "/nope.img", operation: "open for reading", errno: ENOENT)) {
            try SparseCopy.copy(from: directory + "/nope.img", to: destination)
        }
        #expect(!FileManager.default.fileExists(atPath: destination))
    }

    /// A partition handed to fsck.fat: bytes 1 MiB..<63 MiB of the source, exactly, with its holes,
    /// and only its data read (a hole read is a zeroed page cache page each).
    @Test("a range is extracted exactly, reading only its data")
    func extractsARangeReadingOnlyData() throws {
        let directory = try DiskImageTestDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let source = try makeSparseSource(in: directory)
        let destination = directory + "/partition.img"
        let before = try SigningImageTests.bytesReadByThisProcess()
        try SparseCopy.extract((1 << 20)..<(63 << 20), of: source, to: destination)
        let read = try SigningImageTests.bytesReadByThisProcess() - before
        // 2.2 MiB of data lie in the range (the 4 KiB block at the end does not).
        #expect(read < 4 << 20, "\(read) bytes read to extract 62 MiB holding 2.2 MiB of data")
        #expect(try FileManager.default.attributesOfItem(atPath: destination)[.size] as? UInt64 == 62 << 20)
        let expected = directory + "/expected.img"
        try DiskImageShell.run(["dd", "if=\(source)", "of=\(expected)", "bs=1M", "skip=1", "count=62", "status=none"])
        try DiskImageShell.run(["cmp", expected, destination])
        #expect(try DiskImageShell.allocatedBytes(destination) < 4 << 20)
    }
}
