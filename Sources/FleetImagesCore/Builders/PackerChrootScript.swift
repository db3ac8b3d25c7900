import Foundation

/// The two small shell scripts fleet-images adds around a variant's Packer `file` provisioners.
/// They run inside the image's chroot (packer-builder-arm's `shell` provisioner), so they use
/// only POSIX `sh` and `awk`, which every Raspberry Pi OS image has.
///
/// - `prepare` creates the folders the files go into (Packer's file provisioner does not).
/// - `finish` gives each file the owner and mode the manifest asked for (a file provisioner
///   leaves root-owned files), makes the directories and links of the first-boot contract, and
///   makes the in-place edits the inject builder makes from Swift:
///   the `127.0.1.1` line of `/etc/hosts` (``HostsFile``) and one `key=value` on the kernel
///   command line (``KernelCommandLine``), with the same result for the files Raspberry Pi OS ships.
public enum PackerChrootScript {
    public static let prepareName = "fleet-images-prepare.sh"
    public static let finishName = "fleet-images-finish.sh"

    public static func prepare(variantID: String, directories: [String]) -> String {
        var lines = header(variantID: variantID, purpose: "creates the folders the file provisioners write into")
        for directory in directories {
            lines.append("mkdir -p \(quote(directory))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `files`: one entry per destination (the last write wins), in provisioning order.
    public static func finish(variantID: String, files: [ContentItem], edits: [ContentItem]) -> String {
        var lines = header(variantID: variantID, purpose: "sets owners and modes of the copied files and makes the in-place edits")
        if edits.contains(where: { if case .hostsEntry = $0.source { true } else { false } }) {
            lines.append(contentsOf: setHostnameFunction)
        }
        if edits.contains(where: { if case .kernelParameter = $0.source { true } else { false } }) {
            lines.append(contentsOf: setKernelParameterFunction)
        }
        for item in files where item.partition == .root {
            // The FAT boot partition has no owners or modes.
            lines.append("chown \(item.uid):\(item.gid) \(quote(item.destination))")
            lines.append("chmod \(String(item.mode, radix: 8).leftPadded(to: 4)) \(quote(item.destination))")
        }
        for item in edits {
            switch item.source {
            case .hostsEntry(let hostname):
                lines.append("fleet_images_set_hostname \(quote(hostname)) \(quote(item.destination))")
            case .kernelParameter(let key, let value):
                lines.append("fleet_images_set_kernel_parameter \(quote(key)) \(quote(value)) \(quote(item.destination))")
            case .directory:
                lines.append("mkdir -p \(quote(item.destination))")
                lines.append("chown \(item.uid):\(item.gid) \(quote(item.destination))")
                lines.append("chmod \(String(item.mode, radix: 8).leftPadded(to: 4)) \(quote(item.destination))")
            case .symlink(let target):
                lines.append("mkdir -p \(quote((item.destination as NSString).deletingLastPathComponent))")
                lines.append("ln -sfn \(quote(target)) \(quote(item.destination))")
            case .file, .generated:
                break
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func header(variantID: String, purpose: String) -> [String] {
        [
            "#!/bin/sh",
            "# Written by fleet-images for \(variantID): \(purpose).",
            "# Runs in the image's chroot (packer-builder-arm shell provisioner).",
            "set -eu",
        ]
    }

    /// `/etc/hosts`: the first `127.0.1.1` line names only the host, later ones go; without one,
    /// the line goes after the last `127.0.0.1` line, or at the end. Rewritten in place (`cat >`)
    /// so the file keeps its inode, owner and mode.
    static let setHostnameFunction = [
        "fleet_images_set_hostname() {",
        "    [ -f \"$2\" ] || printf '127.0.0.1\\tlocalhost\\n' > \"$2\"",
        "    awk -v name=\"$1\" '",
        "        { data = $0; sub(/#.*/, \"\", data); n = split(data, f, \" \") }",
        "        n > 0 && f[1] == \"127.0.1.1\" {",
        "            if (done) next",
        "            match($0, /127\\.0\\.1\\.1[ \\t]*/); head = substr($0, 1, RSTART + RLENGTH - 1); if (RLENGTH == 9) head = head \"\\t\"",
        "            rest = substr($0, RSTART + 9); comment = \"\"; h = index(rest, \"#\")",
        "            if (h > 0) { pre = substr(rest, 1, h - 1); if (pre ~ /[^ \\t]/) { c = pre; sub(/.*[^ \\t]/, \"\", c); comment = c substr(rest, h) } else comment = \" \" substr(rest, h) }",
        "            lines[++count] = head name comment; done = 1; next",
        "        }",
        "        { lines[++count] = $0; if (n > 0 && f[1] == \"127.0.0.1\") loopback = count }",
        "        END {",
        "            for (i = 1; i <= count; i++) { print lines[i]; if (!done && i == loopback) { print \"127.0.1.1\\t\" name; done = 1 } }",
        "            if (!done) print \"127.0.1.1\\t\" name",
        "        }' \"$2\" > \"$2.fleet-images\"",
        "    cat \"$2.fleet-images\" > \"$2\"",
        "    rm -f \"$2.fleet-images\"",
        "}",
    ]

    /// `cmdline.txt` is one line: the first `key`/`key=…` (with `-` and `_` alike, as the kernel
    /// reads them) becomes `key=value`, later duplicates go; without one it is appended.
    static let setKernelParameterFunction = [
        "fleet_images_set_kernel_parameter() {",
        "    [ -f \"$3\" ] || { echo \"fleet-images: $3 is missing; cannot set $1 on the kernel command line\" >&2; exit 1; }",
        "    awk -v key=\"$1\" -v value=\"$2\" '",
        "        function norm(s) { gsub(/-/, \"_\", s); return s }",
        "        NR == 1 {",
        "            n = split($0, p, \" \"); out = \"\"; done = 0",
        "            for (i = 1; i <= n; i++) {",
        "                name = p[i]; sub(/=.*/, \"\", name)",
        "                if (norm(name) == norm(key)) { if (done) continue; p[i] = key \"=\" value; done = 1 }",
        "                out = out (out == \"\" ? \"\" : \" \") p[i]",
        "            }",
        "            if (!done) out = out (out == \"\" ? \"\" : \" \") key \"=\" value",
        "            print out; next",
        "        }",
        "        NF { print }' \"$3\" > \"$3.fleet-images\"",
        "    cat \"$3.fleet-images\" > \"$3\"",
        "    rm -f \"$3.fleet-images\"",
        "}",
    ]

    /// Single-quoted for `sh`.
    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
