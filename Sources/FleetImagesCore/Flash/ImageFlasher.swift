import Foundation

/// What `flash` found wrong; `isInputProblem` ones exit 2 (the device or the command line), the
/// rest exit 1 (an image that fails a check, a write or read-back that fails).
public struct FlashError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var isInputProblem: Bool

    public init(_ description: String, input: Bool = false) {
        self.description = description
        isInputProblem = input
    }
}

/// Checks an image against everything it was published with, then writes it to a block device
/// through its block map and reads back what was written.
public enum ImageFlasher {
    /// The image as checked: every check passed.
    public struct Verified: Sendable {
        public var size: UInt64
        public var sha256: String
        public var keyFingerprint: String
        /// nil for an image built before block maps: then every block is written and read back.
        public var blockMap: BlockMapSummary?
        public var provenance: Bool

        /// Bytes `write` writes: the mapped blocks, or the whole image.
        public var bytesToWrite: UInt64 { blockMap?.mappedBytes ?? size }
    }

    /// The part of a block map the CLI shows and the writer uses.
    public struct BlockMapSummary: Sendable {
        var map: BlockMap
        public var mappedBytes: UInt64 { map.mappedBytes }
        public var rangeCount: Int { map.ranges.count }
    }

    /// Reads the image once and checks it before anything is written: its size and SHA-256
    /// against `<image>.sha256`, the provenance's recorded size and subject (its DSSE signature
    /// first), the signature `<image>.sig`, the compressed file's own `.sha256` when there is one,
    /// and the block map: its own checksum, every range's SHA-256, and that every block outside
    /// the ranges is zeros (so a map that leaves out data cannot get past). Every failed check is
    /// named; the image is not written when one fails.
    public static func verify(_ source: FlashSource, publicKey: VerifyingKey, padding: RSAPadding,
                              requireProvenance: Bool) throws(FlashError) -> Verified {
        var failures: [String] = []
        func sidecar<T>(_ read: () throws(SigningError) -> T) -> T? {
            do { return try read() } catch {
                failures.append(error.description)
                return nil
            }
        }
        var info = stat()
        guard stat(source.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw FlashError("\(source.path): no such image (give a .img, .img.xz or .img.zst file, or a variant of the manifest)", input: true)
        }
        let recordedSHA256 = sidecar { () throws(SigningError) in try ImageSigning.readDigestSidecar(ImageSigning.sha256SidecarPath(forImageAt: source.rawPath)) }
        let signature = sidecar { () throws(SigningError) in try SigningFiles.readSmallFile(ImageSigning.signatureSidecarPath(forImageAt: source.rawPath), kind: "signature file") }
        var statement: ProvenanceSidecar.Statement?
        var provenance = false
        do {
            statement = try ProvenanceSidecar.verify(at: ProvenanceDocument.path(forImage: source.rawPath), publicKey: publicKey, padding: padding)
            provenance = true
        } catch {
            if case .missing = error, !requireProvenance {} else { failures.append("provenance: \(error.description)") }
        }
        var map: BlockMap?
        if FileManager.default.fileExists(atPath: source.blockMapPath) {
            map = sidecar { () throws(SigningError) in try BlockMap.read(source.blockMapPath) }
        }
        var compressedSHA256: String?
        if source.format != nil {
            compressedSHA256 = sidecar { () throws(SigningError) in try ImageSigning.readDigestSidecar(source.path + ".sha256") }
        }

        let digest = SHA256Context()
        let compressedDigest = source.format != nil ? SHA256Context() : nil
        var checker = map.map { BlockMapChecker($0) }
        let size: UInt64
        do {
            size = try source.stream(compressedDigest: compressedDigest) { (offset, chunk) throws(SigningError) in
                digest.update(chunk)
                checker?.add(chunk, at: offset)
            }
        } catch {
            throw FlashError("\(source.path): \(error.description)", input: false)
        }
        let sha256 = Digest.hex(digest.finish())
        if let recordedSHA256, recordedSHA256 != sha256 {
            failures.append("sha256 \(sha256) does not match \(ImageSigning.sha256SidecarPath(forImageAt: source.rawPath)) (\(recordedSHA256))")
        }
        if let signature, !publicKey.verify(sha256Digest: Digest.bytes(fromHex: Substring(sha256))!, signature: signature, padding: padding) {
            failures.append("signature \(ImageSigning.signatureSidecarPath(forImageAt: source.rawPath)) is not valid for key \(publicKey.fingerprint)")
        }
        if let statement {
            do { try statement.check(names: [(source.rawPath as NSString).lastPathComponent], size: size, sha256: sha256) } catch {
                failures.append("provenance: \(error.description)")
            }
        }
        if let compressedSHA256, let compressedDigest {
            let measured = Digest.hex(compressedDigest.finish())
            if measured != compressedSHA256 { failures.append("sha256 \(measured) of \(source.path) does not match \(source.path).sha256 (\(compressedSHA256))") }
        }
        if let map, var checker {
            failures += checker.finish(imageSize: size).map { "block map \(source.blockMapPath): \($0)" }
            _ = map
        }
        guard failures.isEmpty else { throw FlashError("\(source.path): FAILED: " + failures.joined(separator: "; ")) }
        return Verified(size: size, sha256: sha256, keyFingerprint: publicKey.fingerprint, blockMap: map.map { BlockMapSummary(map: $0) },
                        provenance: provenance)
    }
}

/// Checks a block map against the image streamed past it: each range's SHA-256, and zeros
/// everywhere else.
struct BlockMapChecker {
    private let map: BlockMap
    private var rangeIndex = 0
    private var rangeDigest: SHA256Context?
    private var problems: [String] = []
    private var nonZeroOutside: UInt64?

    init(_ map: BlockMap) { self.map = map }

    mutating func add(_ chunk: UnsafeRawBufferPointer, at offset: UInt64) {
        let block = UInt64(BlockMap.blockSize)
        var position = offset
        let end = offset + UInt64(chunk.count)
        while position < end {
            // The range at or after `position`, if any.
            while rangeIndex < map.ranges.count && (map.ranges[rangeIndex].last + 1) * block <= position { closeRange() }
            let range = rangeIndex < map.ranges.count ? map.ranges[rangeIndex] : nil
            let rangeStart = range.map { $0.first * block } ?? UInt64.max
            if position < rangeStart {
                // Outside every range: must be zeros.
                let stop = min(end, rangeStart)
                let slice = UnsafeRawBufferPointer(rebasing: chunk[Int(position - offset)..<Int(stop - offset)])
                if nonZeroOutside == nil, let index = slice.firstIndex(where: { $0 != 0 }) {
                    nonZeroOutside = position + UInt64(index)
                }
                position = stop
            } else {
                let stop = min(end, (range!.last + 1) * block)
                if rangeDigest == nil { rangeDigest = SHA256Context() }
                rangeDigest!.update(UnsafeRawBufferPointer(rebasing: chunk[Int(position - offset)..<Int(stop - offset)]))
                position = stop
                if stop == (range!.last + 1) * block { closeRange() }
            }
        }
    }

    private mutating func closeRange() {
        guard rangeIndex < map.ranges.count else { return }
        let range = map.ranges[rangeIndex]
        let measured = rangeDigest.map { Digest.hex($0.finish()) }
        if measured != range.sha256 && problems.count < 3 {
            problems.append("blocks \(range.first)-\(range.last) do not match their checksum")
        }
        rangeDigest = nil
        rangeIndex += 1
    }

    mutating func finish(imageSize: UInt64) -> [String] {
        // A last range that ends in a partial block is closed at the end of the image.
        while rangeIndex < map.ranges.count {
            if rangeDigest == nil && problems.count < 3 { problems.append("blocks \(map.ranges[rangeIndex].first)-… lie past the end of the image") }
            closeRange()
        }
        if imageSize != map.imageSize { problems.insert("it is of a \(map.imageSize)-byte image, this one has \(imageSize) bytes", at: 0) }
        if let at = nonZeroOutside { problems.append("byte \(at) is not zero but lies outside every mapped range (the map would leave it unwritten)") }
        return problems
    }
}

extension ImageFlasher {
    public struct Written: Sendable {
        /// Bytes written to the device (the mapped blocks, or the whole image).
        public var bytes: UInt64
        /// Bytes read back and found equal to the image's.
        public var readBack: UInt64
    }

    /// Writes a checked image to `device` through its block map (only the data blocks; the whole
    /// image without one), syncs, drops the device's cached pages and reads back what was written,
    /// checking each range's SHA-256 (or the whole image's). The image is hashed again as it is
    /// written: if it changed since `verify`, the write is reported failed. `progress` gets the
    /// bytes written so far and the total.
    public static func write(_ source: FlashSource, _ verified: Verified, to device: BlockDevice,
                             progress: (_ written: UInt64, _ total: UInt64) -> Void) throws(FlashError) -> Written {
        guard device.size >= verified.size else {
            throw FlashError("\(device.path) holds \(device.size) bytes, the image \(verified.size): use a larger card", input: true)
        }
        // O_EXCL on a block device: refused (EBUSY) while anything has it open exclusively (a mount, LVM, RAID).
        let fd = open(device.path, O_WRONLY | O_EXCL | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == EBUSY { throw FlashError("\(device.path) is busy (mounted or in use); nothing was written", input: true) }
            throw FlashError("\(device.path): cannot open for writing: \(String(cString: strerror(code)))", input: code == EACCES || code == EPERM)
        }
        var closed = false
        defer { if !closed { close(fd) } }
        let map = verified.blockMap?.map
        let total = verified.bytesToWrite
        let block = UInt64(BlockMap.blockSize)
        let digest = SHA256Context()
        var written: UInt64 = 0
        var rangeIndex = 0
        func put(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(SigningError) {
            var done = 0
            while done < bytes.count {
                let count = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw .writeFailed(path: device.path, errno: errno)
                }
                done += count
            }
            written += UInt64(bytes.count)
            progress(written, total)
        }
        do {
            _ = try source.stream { (offset, chunk) throws(SigningError) in
                digest.update(chunk)
                guard let map else { return try put(chunk, at: offset) }
                let end = offset + UInt64(chunk.count)
                while rangeIndex < map.ranges.count {
                    let range = map.ranges[rangeIndex]
                    let start = range.first * block, stop = (range.last + 1) * block
                    if start >= end { break }
                    let from = max(start, offset), to = min(stop, end)
                    if from < to { try put(UnsafeRawBufferPointer(rebasing: chunk[Int(from - offset)..<Int(to - offset)]), at: from) }
                    if stop > end { break }
                    rangeIndex += 1
                }
            }
        } catch {
            throw FlashError("writing \(device.path): \(error.description); the device holds part of the image: flash it again")
        }
        guard Digest.hex(digest.finish()) == verified.sha256 else {
            throw FlashError("\(source.path) changed while it was written (its SHA-256 is no longer the one checked); the device holds an unchecked image: flash it again")
        }
        guard fsync(fd) == 0 else { throw FlashError("\(device.path): sync failed: \(String(cString: strerror(errno))); the card may not hold the image") }
        close(fd)
        closed = true
        let readBack = try Self.readBack(device, verified)
        return Written(bytes: written, readBack: readBack)
    }

    /// Reads what was written from the device itself (its cached pages dropped first) and checks it.
    static func readBack(_ device: BlockDevice, _ verified: Verified) throws(FlashError) -> UInt64 {
        let fd = open(device.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FlashError("\(device.path): cannot open to read back: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if ioctl(fd, BlockDevice.flushBuffers) != 0 { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        func hash(from start: UInt64, count: UInt64) throws(FlashError) -> String {
            let context = SHA256Context()
            var position = start
            while position < start + count {
                let want = Int(min(UInt64(buffer.count), start + count - position))
                let got = pread(fd, buffer.baseAddress!, want, off_t(position))
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else { throw FlashError("\(device.path): reading back at byte \(position) failed: \(got < 0 ? String(cString: strerror(errno)) : "end of device")") }
                context.update(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                position += UInt64(got)
            }
            return Digest.hex(context.finish())
        }
        guard let map = verified.blockMap?.map else {
            guard try hash(from: 0, count: verified.size) == verified.sha256 else {
                throw FlashError("\(device.path) does not hold the image after writing (read back, its SHA-256 differs): the card may be failing")
            }
            return verified.size
        }
        let block = UInt64(BlockMap.blockSize)
        var checked: UInt64 = 0
        for range in map.ranges {
            let start = range.first * block, count = min((range.last + 1) * block, map.imageSize) - start
            guard try hash(from: start, count: count) == range.sha256 else {
                throw FlashError("\(device.path) does not hold blocks \(range.first)-\(range.last) of the image after writing (read back, their SHA-256 differs): the card may be failing")
            }
            checked += count
        }
        return checked
    }
}
