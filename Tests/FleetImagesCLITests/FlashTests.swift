import FleetImagesCore
import Foundation
import Testing

extension CLITests {
    /// Issue 14.4: `flash` on loop devices (root: `losetup`). Every refusal leaves the device as it
    /// was: a marker written before is still there.
    @Suite(.serialized, .enabled(if: getuid() == 0, "loop devices need root"))
    struct Flash {
        /// A file of `size` bytes with "MARK" at its start and at 1 MiB, attached as a loop device.
        final class Loop {
            let file: String
            let device: String
            init(_ folder: String, _ name: String, size: Int, marked: Bool = true) throws {
                file = folder + "/" + name
                try tool("truncate", ["-s", "\(size)", file])
                for offset in marked ? [0, 1 << 20] : [] {
                    try tool("sh", ["-c", "printf MARK | dd of=\"$1\" bs=1 seek=\(offset) conv=notrunc status=none", "sh", file])
                }
                device = try tool("losetup", ["-f", "--show", file]).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            deinit { _ = try? run("losetup", ["-d", device]) }

            var marked: Bool {
                (try? tool("sh", ["-c", "dd if=\"$1\" bs=1 count=4 status=none; dd if=\"$1\" bs=1 skip=\(1 << 20) count=4 status=none", "sh", device])) == "MARKMARK"
            }
        }

        static let fleet: DemoFleet? = {
            guard let fleet = try? DemoFleet("flash", edit: { $0["output"] = ["directory": "build/images", "compress": "xz", "compress_level": 0] }),
                  let built = try? fleet.cli(["build", "--only", "zrh-lab"]), built.status == 0 else { return nil }
            return fleet
        }()

        func imageSize(_ fleet: DemoFleet) throws -> Int {
            try #require(try FileManager.default.attributesOfItem(atPath: fleet.output + "/zrh-lab/latest/zrh-lab.img")[.size] as? Int)
        }

        @Test func writesTheCheckedImageThroughItsBlockMapAndReadsItBack() throws {
            let fleet = try #require(Self.fleet, "the demo build for flashing failed")
            let size = try imageSize(fleet)
            for (label, source) in [("variant", "zrh-lab"), ("compressed file", fleet.output + "/zrh-lab/latest/zrh-lab.img.xz")] {
                // A blank card (all zeros), so that the whole card can be compared with the image.
                let loop = try Loop(fleet.directory, "card-\(label.prefix(4)).img", size: 400 << 20, marked: false)
                let flashed = try fleet.cli(["flash", source, loop.device, "--yes"])
                #expect(flashed.status == 0, "\(label): \(flashed)")
                #expect(flashed.stdout.contains("synced, read back") && flashed.stdout.contains(": OK"), "\(flashed.stdout)")
                #expect(flashed.stderr.contains("provenance checked"), "\(flashed.stderr)")
                // The card starts with the image: its bytes verify with openssl against the build's signature.
                let verified = try run("sh", ["-c", "head -c \(size) \"$1\" | openssl dgst -sha256 -verify \"$2\" -signature \"$3\"", "sh",
                                              loop.device, fleet.directory + "/keys/demo-signing.pub.pem", fleet.output + "/zrh-lab/latest/zrh-lab.img.sig"])
                #expect(verified.status == 0 && verified.stdout.contains("Verified OK"), "\(label): \(verified)")
            }
            // A used card: only the image's data blocks are written (as bmaptool does); what lies in
            // the image's holes (free space of its file systems) is left as it was, and the
            // read-back checks every written range.
            let used = try Loop(fleet.directory, "card-used.img", size: 400 << 20)
            let flashed = try fleet.cli(["flash", "zrh-lab", used.device, "--yes"])
            #expect(flashed.status == 0 && flashed.stdout.contains(": OK"), "\(flashed)")
            #expect(try tool("sh", ["-c", "dd if=\"$1\" bs=1 skip=\(1 << 20) count=4 status=none", "sh", used.device]) == "MARK")
            #expect(try tool("sh", ["-c", "dd if=\"$1\" bs=1 count=4 status=none", "sh", used.device]) != "MARK", "the MBR was written")
        }

        @Test func aTamperedImageOrBlockMapIsRefusedAndNothingIsWritten() throws {
            let fleet = try #require(Self.fleet, "the demo build for flashing failed")
            let copy = fleet.directory + "/tampered"
            try? FileManager.default.removeItem(atPath: copy)
            try tool("cp", ["-a", fleet.output + "/zrh-lab/latest/", copy])
            let loop = try Loop(fleet.directory, "card-tampered.img", size: 400 << 20)

            // One byte of the raw image changed (in the partition table's sector).
            try tool("sh", ["-c", "printf X | dd of=\"$1\" bs=1 seek=446 conv=notrunc status=none", "sh", copy + "/zrh-lab.img"])
            let image = try fleet.cli(["flash", copy + "/zrh-lab.img", loop.device, "--yes"])
            #expect(image.status == 1, "\(image)")
            #expect(image.stderr.contains("does not match") && image.stderr.contains("signature") && image.stderr.contains("nothing was written"), "\(image.stderr)")
            #expect(loop.marked)

            // The compressed copy is intact, but its block map (which is not signed) was edited to
            // leave out a range: refused by its own checksum, and, with that checksum made anew, by
            // the image, whose bytes in the left-out range are not zeros.
            let original = try String(contentsOfFile: copy + "/zrh-lab.img.bmap", encoding: .utf8)
            let line = try #require(original.split(separator: "\n").first { $0.contains("<Range") })
            var map = original.replacingOccurrences(of: String(line) + "\n", with: "")
            try map.write(toFile: copy + "/zrh-lab.img.bmap", atomically: true, encoding: .utf8)
            let edited = try fleet.cli(["flash", copy + "/zrh-lab.img.xz", loop.device, "--yes"])
            #expect(edited.status == 1 && edited.stderr.contains("zrh-lab.img.bmap") && edited.stderr.contains("BmapFileChecksum"), "\(edited)")
            #expect(loop.marked)
            let blocks = try #require(line.split(separator: ">").dropFirst().first?.split(separator: "<").first).trimmingCharacters(in: .whitespaces)
            let first = UInt64(blocks.split(separator: "-")[0])!, last = UInt64(blocks.split(separator: "-").last!)!
            let mapped = try #require(map.range(of: #"<MappedBlocksCount> [0-9]+ </MappedBlocksCount>"#, options: .regularExpression))
            let count = UInt64(map[mapped].filter(\.isNumber))!
            map.replaceSubrange(mapped, with: "<MappedBlocksCount> \(count - (last - first + 1)) </MappedBlocksCount>")
            let sum = try #require(map.range(of: #"<BmapFileChecksum> [0-9a-f]{64} </BmapFileChecksum>"#, options: .regularExpression))
            map.replaceSubrange(sum, with: "<BmapFileChecksum> \(String(repeating: "0", count: 64)) </BmapFileChecksum>")
            try map.write(toFile: copy + "/zrh-lab.img.bmap", atomically: true, encoding: .utf8)
            let digest = String(try tool("openssl", ["dgst", "-sha256", "-r", copy + "/zrh-lab.img.bmap"]).prefix(64))
            map = map.replacingOccurrences(of: String(repeating: "0", count: 64), with: digest)
            try map.write(toFile: copy + "/zrh-lab.img.bmap", atomically: true, encoding: .utf8)
            let forged = try fleet.cli(["flash", copy + "/zrh-lab.img.xz", loop.device, "--yes"])
            #expect(forged.status == 1 && forged.stderr.contains("lies outside every mapped range"), "\(forged)")
            #expect(loop.marked)
        }

        /// The disk under `/` is refused by the inspection alone (which opens nothing for
        /// writing), so the test cannot harm this machine whatever it finds.
        @Test func theSystemDiskIsRefusedByInspection() throws {
            let disks = BlockDevice.systemDisks()
            #expect(!disks.isEmpty, "no disk found under /")
            for disk in disks where FileManager.default.fileExists(atPath: "/dev/" + disk) {
                #expect { try BlockDevice.inspect("/dev/" + disk) } throws: { error in
                    let text = "\(error)"
                    return (error as? FlashError)?.isInputProblem == true && (text.contains("is mounted on") || text.contains("root file system"))
                }
            }
            // (A partition is refused as well, naming its disk; this machine's kernel does not scan
            // loop devices for partitions, so that refusal is not exercised here.)
        }

        @Test func aDeviceThatCannotTakeTheImageIsRefused() throws {
            let fleet = try #require(Self.fleet, "the demo build for flashing failed")
            // Smaller than the image.
            let small = try Loop(fleet.directory, "card-small.img", size: 64 << 20)
            let tooSmall = try fleet.cli(["flash", "zrh-lab", small.device, "--yes"])
            #expect(tooSmall.status == 2 && tooSmall.stderr.contains("use a larger card") && tooSmall.stderr.contains("nothing was written"), "\(tooSmall)")
            #expect(small.marked)

            // Not a block device.
            let file = try fleet.cli(["flash", "zrh-lab", fleet.directory + "/fleet.json", "--yes"])
            #expect(file.status == 2 && file.stderr.contains("not a block device"), "\(file)")

            // Mounted.
            let mounted = try Loop(fleet.directory, "card-mounted.img", size: 400 << 20)
            try tool("mkfs.ext4", ["-q", "-F", mounted.device])
            let point = fleet.directory + "/mnt"
            try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
            try tool("mount", [mounted.device, point])
            defer { _ = try? run("umount", [point]) }
            let busy = try fleet.cli(["flash", "zrh-lab", mounted.device, "--yes"])
            #expect(busy.status == 2 && busy.stderr.contains("is mounted on \(point)") && busy.stderr.contains("nothing was written"), "\(busy)")

            // No terminal to ask on, and no --yes.
            let unasked = try Loop(fleet.directory, "card-unasked.img", size: 400 << 20)
            let prompt = try fleet.cli(["flash", "zrh-lab", unasked.device])
            #expect(prompt.status == 2 && prompt.stderr.contains("pass --yes"), "\(prompt)")
            #expect(unasked.marked)

            // A variant the manifest does not have.
            let unknown = try fleet.cli(["flash", "zrh-labb", unasked.device, "--yes"])
            #expect(unknown.status == 2 && unknown.stderr.contains("did you mean zrh-lab"), "\(unknown)")
            #expect(unasked.marked)
        }
    }
}
