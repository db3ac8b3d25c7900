import Foundation
import Testing

/// The first-boot contract through the real binary on the demo fleet: what `plan` says about the
/// device, and bad input that only the base image can reveal (exit 2, nothing written).
@Suite(.serialized) struct DeviceContractCLITests {
    @Test("plan names the OS, the first-boot format, the user, the key fingerprints and the first-boot command")
    func planShowsTheDevice() throws {
        let fleet = try DemoFleet("device-plan", edit: keepSites(1))
        defer { fleet.remove() }
        let plan = try fleet.json(["plan"])
        let os = try #require(plan["os"] as? [String: Any])
        #expect(os["codename"] as? String == "bookworm" && os["init_format"] as? String == "userconf")
        let variant = try #require((plan["variants"] as? [[String: Any]])?.first)
        #expect(variant["user"] as? String == "fleet" && variant["init_format"] as? String == "userconf")
        #expect(variant["first_boot_command"] as? [String] == ["/usr/local/lib/fleet-images/provision.sh"])
        // The fingerprint as ssh-keygen prints it for the key file.
        let keygen = try tool("ssh-keygen", ["-lf", fleet.directory + "/keys/demo-operator.pub"])
        let fingerprint = try #require(keygen.split(separator: " ").dropFirst().first.map(String.init))
        #expect(variant["ssh_keys"] as? [String] == [fingerprint])
        let text = try fleet.cli(["plan"])
        #expect(text.status == 0 && text.stdout.contains("os bookworm (userconf), user fleet, ssh keys \(fingerprint)"), "\(text)")
    }

    @Test("a first-boot command the image does not have is refused before anything is written (exit 2)")
    func missingFirstBootCommand() throws {
        let fleet = try DemoFleet("device-missing-command") { manifest in
            keepSites(2)(&manifest)
            var defaults = manifest["defaults"] as! [String: Any]
            defaults["first_boot"] = ["command": ["/opt/enrol/run", "--once"]]
            manifest["defaults"] = defaults
        }
        defer { fleet.remove() }
        for command in [["plan"], ["build", "--parallel", "2"]] {
            let outcome = try fleet.cli(command)
            #expect(outcome.status == 2, "fleet-images \(command.joined(separator: " ")): \(outcome)")
            #expect(outcome.stderr.contains("defaults.first_boot.command") && outcome.stderr.contains("/opt/enrol/run is not in the base image"), "\(outcome.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: fleet.output), "an output folder was made")
        let runs = try? tool("sqlite3", [fleet.database, "SELECT count(*) FROM run"])
        #expect(runs == nil || runs == "0\n", "a run was recorded: \(runs ?? "")")
    }
}
