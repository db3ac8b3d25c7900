@testable import FleetImagesCore
import Foundation
import Testing

/// The base image is decompressed in-process without writing its zeros: the cached copy must hold
/// the image's bytes exactly, with every all-zero 4 KiB block left a hole, wherever the
/// decompressor's chunk boundaries fall.
@Suite struct ImageExpandTests {
    /// 13 MiB + 123 bytes: data at the very start, across a 4 KiB boundary, across the 4 MiB
    /// chunk boundary, a lone non-zero byte at the end of a block, and zeros to the end.
    static func makeImage(in folder: String) throws -> String {
        let path = folder + "/image.img"
        _ = try runTool("truncate", ["-s", "\((13 << 20) + 123)", path])
        let writes: [(offset: Int, count: Int)] = [(0, 100), (8192 - 10, 5000), ((4 << 20) - 300, 600), ((9 << 20) + 4095, 1)]
        for write in writes {
            _ = try runTool("sh", ["-c", "head -c \(write.count) /dev/urandom | tr '\\000' x | dd of=\"$1\" bs=1 seek=\(write.offset) conv=notrunc status=none", "sh", path])
        }
        return path
    }

    /// The 4 KiB blocks those writes touch: 0; 1 and 2; 1023 and 1024; 2303.
    static let dataBlocks = 6

    @Test(arguments: [CompressionSpec.Format.xz, .zstd]) func zerosStayHolesAndTheBytesAreTheImage(_ format: CompressionSpec.Format) throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let image = try Self.makeImage(in: folder)
        let archive = image + "." + format.fileExtension
        _ = format == .xz ? try runTool("xz", ["-k", "-1", image]) : try runTool("zstd", ["-q", "-1", image, "-o", archive])
        let output = folder + "/expanded.img"
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        let length = try ImageDecompressor.expand(archive, format: format, into: fd, shown: output)
        close(fd)
        #expect(length == UInt64((13 << 20) + 123))
        #expect(try runTool("cmp", [image, output]).isEmpty)
        var info = stat()
        #expect(stat(output, &info) == 0)
        // st_blocks counts 512-byte units; a file system may allocate a little beyond (ext4 and
        // XFS do not for pwrite of whole blocks), so allow one extra block, not the 3,300 of a full copy.
        #expect(Int(info.st_blocks) * 512 <= (Self.dataBlocks + 1) * 4096, "allocated \(info.st_blocks * 512) bytes")
        #expect(Int(info.st_blocks) * 512 >= Self.dataBlocks * 4096)
    }

    @Test func aTruncatedArchiveIsRefusedByName() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let image = try Self.makeImage(in: folder)
        _ = try runTool("xz", ["-k", "-1", image])
        _ = try runTool("truncate", ["-s", "-200", image + ".xz"])
        let fd = open(folder + "/out.img", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd) }
        #expect {
            try ImageDecompressor.expand(image + ".xz", format: .xz, into: fd, shown: folder + "/out.img")
        } throws: { error in
            guard case SigningError.compressionFailed(let path, let reason) = error else { return false }
            return path == image + ".xz" && reason.contains("truncated")
        }
    }
}
