/// Packer's `-machine-readable` output: one record per line, `timestamp,target,type,data…`, with
/// commas inside data written as `%!(PACKER_COMMA)` and newlines as a literal `\n`.
public struct PackerMachineReadable: Sendable, Equatable {
    public var timestamp: String
    /// The build name (`arm`), empty for UI lines.
    public var target: String
    /// `ui`, `artifact`, `artifact-count`, `error-count`, …
    public var type: String
    public var data: [String]

    /// Parses one line; nil when it is not a machine-readable record (the container's entrypoint
    /// and the shell provisioners' own output are mixed in).
    public init?(line: String) {
        let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 3, !fields[0].isEmpty, fields[0].allSatisfy(\.isNumber), !fields[2].isEmpty,
              fields[2].allSatisfy({ $0.isLetter || $0 == "-" }) else { return nil }
        timestamp = fields[0]
        target = fields[1]
        type = fields[2]
        data = fields.dropFirst(3).map(Self.unescape)
    }

    static func unescape(_ field: String) -> String {
        field.replacingOccurrences(of: "%!(PACKER_COMMA)", with: ",").replacingOccurrences(of: "\\n", with: "\n")
    }
}

/// What a packer-docker build's output told us: the phases shown in progress, Packer's errors,
/// the artifact's file, and the signs of the known packer-builder-arm failures.
public struct PackerOutputMonitor: Sendable {
    public private(set) var lastPhase: String?
    public private(set) var errors: [String] = []
    public private(set) var artifactFiles: [String] = []
    public private(set) var loopDeviceProblem: String?
    public private(set) var binfmtProblem: String?
    public private(set) var execFormatProblem: String?
    public private(set) var capabilityProblem: String?
    /// The host kernel cannot mount a partition of the image (no vfat driver, no partition nodes).
    public private(set) var mountProblem: String?
    /// The last few raw lines, for a failure message when Packer said nothing itself.
    public private(set) var tail: [String] = []

    public init() {}

    /// Feeds one line; returns a phase to show when the line starts one (`==> arm: …`).
    public mutating func consume(_ line: String) -> String? {
        tail.append(line)
        if tail.count > 8 { tail.removeFirst() }
        let lower = line.lowercased()
        if lower.contains("failed to set up loop device") || lower.contains("no free loop device")
            || lower.contains("could not find any free loop device") || lower.contains("cannot find an unused loop device") {
            loopDeviceProblem = loopDeviceProblem ?? line
        }
        if lower.contains("failed to find binfmt_misc") || lower.contains("binfmt_misc") && lower.contains("not found") {
            binfmtProblem = binfmtProblem ?? line
        }
        if lower.contains("exec format error") { execFormatProblem = execFormatProblem ?? line }
        if lower.contains("unknown filesystem type") || lower.contains("special device") && lower.contains("does not exist") {
            mountProblem = mountProblem ?? line
        }
        if lower.contains("unable to apply caps") || lower.contains("operation not permitted") && lower.contains("oci runtime") {
            capabilityProblem = capabilityProblem ?? line
        }
        guard let record = PackerMachineReadable(line: line) else { return nil }
        switch record.type {
        case "ui":
            guard record.data.count >= 2 else { return nil }
            let text = record.data[1...].joined(separator: ",")
            if record.data[0] == "error" {
                errors.append(text.trimmingCharacters(in: .whitespacesAndNewlines))
                return nil
            }
            guard record.data[0] == "say" || record.data[0] == "message" else { return nil }
            var phase = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard phase.hasPrefix("==> ") else { return nil }
            phase = String(phase.dropFirst(4))
            if let colon = phase.range(of: ": "), !phase[..<colon.lowerBound].contains(" ") {
                phase = String(phase[colon.upperBound...])
            }
            lastPhase = phase
            return phase
        case "artifact":
            // artifact,<index>,file,<n>,<path>
            if record.data.count >= 4, record.data[1] == "file" {
                artifactFiles.append(record.data[3...].joined(separator: ","))
            }
            return nil
        default:
            return nil
        }
    }

    /// One line saying why a build that exited `status` failed, with what to do for the known causes.
    public func failureMessage(status: Int32) -> String {
        if let capabilityProblem {
            return "Docker could not start the builder container (\(capabilityProblem.trimmingCharacters(in: .whitespaces))); packer-builder-arm needs a privileged container: run Docker as root with `--privileged -v /dev:/dev` in builder.docker_args (rootless Docker and most CI containers cannot)"
        }
        if let loopDeviceProblem {
            return "no free loop device (\(loopDeviceProblem.trimmingCharacters(in: .whitespaces))); packer-builder-arm attaches each image to a loop device: free leftovers with `losetup -D` (as root), make more (`modprobe loop max_loop=64`), keep `-v /dev:/dev` in builder.docker_args, or lower --parallel"
        }
        if let binfmtProblem {
            return "qemu is not registered with binfmt_misc (\(binfmtProblem.trimmingCharacters(in: .whitespaces))); fleet-images runs the container with SETUP_QEMU=false, so the host's registration must run the image's programs: as root, apt-get install qemu-user-static (it registers qemu-aarch64 and qemu-arm with the F flag) and check /proc/sys/fs/binfmt_misc"
        }
        if let execFormatProblem {
            return "a program in the image could not run (\(execFormatProblem.trimmingCharacters(in: .whitespaces))); in packer-builder-arm's container no qemu binary is copied into the chroot (its entrypoint sets DONT_SETUP_QEMU=1), so the host's binfmt_misc entry for the image's architecture must have the F (fix-binary) flag: check `cat /proc/sys/fs/binfmt_misc/qemu-*` (flags: …F), re-register it with Debian's qemu-user-static, and check base_image.arch (arm64 or armhf) matches the image"
        }
        if let mountProblem {
            return "packer-builder-arm could not mount a partition of the image (\(mountProblem.trimmingCharacters(in: .whitespaces))): the mount happens in the host's kernel, which needs the vfat and ext4 drivers (modprobe vfat) and partition nodes for loop devices (load the loop module with max_part, e.g. modprobe loop max_part=31, or run udev); or use the inject builder, which needs neither"
        }
        if status == 125 {
            return "docker could not run the builder container (exit 125): " + (tail.last(where: { !$0.isEmpty }) ?? "no output")
        }
        if let error = errors.last {
            return "packer failed (exit \(status)): " + (error.split(separator: "\n").first.map(String.init) ?? error)
        }
        return "the builder container exited with status \(status): " + (tail.last(where: { !$0.isEmpty }) ?? "no output")
    }
}

import Foundation
