import Foundation
import Testing

/// Issue 11, the manifest side, end to end: the built binary on a copy of the demo fleet with
/// the fault made for real. Each refusal is exit 2 with the place named, and nothing is written.
extension CLITests {
    @Suite struct ManifestFaultPromises {
        /// Nothing a refused manifest may leave behind.
        func written(_ fleet: DemoFleet) -> [String] {
            [fleet.state, fleet.output].filter { FileManager.default.fileExists(atPath: $0) }
        }

        /// Item 5: a FIFO as files[].source hung plan and build for ever, holding the lock.
        @Test func aFIFOSourceIsRefusedAtOnceByValidatePlanAndBuild() throws {
            let fleet = try DemoFleet("fifo-source")
            defer { fleet.remove() }
            let fifo = fleet.directory + "/variants/common/config.yaml"
            try FileManager.default.removeItem(atPath: fifo)
            try tool("mkfifo", [fifo])
            for command in [["validate"], ["plan"], ["build"]] {
                let started = Date()
                // 60 s is far beyond what the refusal takes; a blocked read would be killed there.
                let outcome = try fleet.cli(command, timeout: 60)
                #expect(outcome.exited && outcome.status == 2, "fleet-images \(command[0]): \(outcome)")
                #expect(outcome.stderr.contains("error: defaults.files[0].source: file variants/common/config.yaml is a FIFO (named pipe), not a regular file"), "\(outcome.stderr)")
                #expect(Date().timeIntervalSince(started) < 50)
            }
            #expect(written(fleet).isEmpty, "written: \(written(fleet))")
        }

        /// Item 10: an overlay folder that is a symbolic link was skipped without a word.
        @Test func aSymlinkedOverlayFolderIsRefusedByValidateAndBuild() throws {
            let fleet = try DemoFleet("symlinked-overlay")
            defer { fleet.remove() }
            let overlay = fleet.directory + "/variants/zrh-lab"
            try FileManager.default.moveItem(atPath: overlay, toPath: fleet.directory + "/overlay-zrh-lab")
            try FileManager.default.createSymbolicLink(atPath: overlay, withDestinationPath: "../overlay-zrh-lab")
            for command in [["validate"], ["build"]] {
                let outcome = try fleet.cli(command)
                #expect(outcome.exited && outcome.status == 2, "fleet-images \(command[0]): \(outcome)")
                #expect(outcome.stderr.contains("error: variants/zrh-lab: the overlay folder of site zrh-lab is a symbolic link"), "\(outcome.stderr)")
            }
            #expect(written(fleet).isEmpty, "written: \(written(fleet))")
        }

        /// Item 10: destinations validate accepted and build then failed on (or the device hid).
        @Test(arguments: ["/etc//motd", "/etc/" + String(repeating: "x", count: 256), "/run/fleet/motd"])
        func aDestinationTheBuildCannotWriteIsRefusedBeforeAnythingIsWritten(_ destination: String) throws {
            let fleet = try DemoFleet("bad-destination") { manifest in
                var sites = manifest["sites"] as! [[String: Any]]
                sites[1]["files"] = [["source": "variants/common/config.yaml", "destination": destination]]
                manifest["sites"] = sites
            }
            defer { fleet.remove() }
            for command in [["validate"], ["build"]] {
                let outcome = try fleet.cli(command)
                #expect(outcome.exited && outcome.status == 2, "fleet-images \(command[0]): \(outcome)")
                #expect(outcome.stderr.contains("error: sites[1].files[0].destination:"), "\(outcome.stderr)")
            }
            #expect(written(fleet).isEmpty, "written: \(written(fleet))")
        }

        /// Item 12: a key given twice, first value for one tool, last for another.
        @Test func aDuplicateKeyIsRefusedWithBothLines() throws {
            let fleet = try DemoFleet("duplicate-key")
            defer { fleet.remove() }
            var text = try String(contentsOfFile: fleet.manifestPath, encoding: .utf8)
            let ssid = try #require(text.range(of: "\"ssid\" : \"ZRH-Lab-IoT\""))
            text.replaceSubrange(ssid, with: "\"ssid\" : \"ZRH-Lab-IoT\", \"ssid\" : \"Evil-Twin\"")
            try Data(text.utf8).write(to: URL(fileURLWithPath: fleet.manifestPath))
            let outcome = try fleet.cli(["validate"])
            #expect(outcome.exited && outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.contains("error: sites[0].wifi.ssid: given twice in one object (line "), "\(outcome.stderr)")
            #expect(written(fleet).isEmpty)
        }

        /// Item 13: an empty manifest is said to be empty.
        @Test func anEmptyManifestIsSaidToBeEmpty() throws {
            let fleet = try DemoFleet("empty-manifest")
            defer { fleet.remove() }
            try Data().write(to: URL(fileURLWithPath: fleet.manifestPath))
            let outcome = try fleet.cli(["validate"])
            #expect(outcome.exited && outcome.status == 2, "\(outcome)")
            #expect(outcome.stderr.contains("the manifest is empty (0 bytes)") && !outcome.stderr.contains("expected an object"), "\(outcome.stderr)")
        }
    }
}
