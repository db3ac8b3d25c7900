import Foundation

/// The per-site overlay trees: `variants/<site-id>/` mirrors absolute paths in the image.
public enum Overlay {
    /// Every regular file under `variants/<site>/` for each site that has such a folder.
    /// Mode 0755 when the file is executable, else 0644; owner root.
    public static func scan(manifest: Manifest) -> (overlays: [String: [FileEntry]], diagnostics: [Diagnostic]) {
        var overlays: [String: [FileEntry]] = [:]
        var diagnostics: [Diagnostic] = []
        let fileManager = FileManager.default
        for site in manifest.sites {
            let relativeRoot = "variants/\(site.id)"
            let root = manifest.directory + "/" + relativeRoot
            var isDirectory: ObjCBool = false
            guard fileManager.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            guard let enumerator = fileManager.enumerator(atPath: root) else { continue }
            var entries: [FileEntry] = []
            for case let relative as String in enumerator {
                let full = root + "/" + relative
                guard let attributes = try? fileManager.attributesOfItem(atPath: full),
                      let type = attributes[.type] as? FileAttributeType else { continue }
                if type == .typeDirectory { continue }
                if type != .typeRegular {
                    diagnostics.append(Diagnostic(.error, at: relativeRoot + "/" + relative, "only regular files can be overlaid (this is a \(type.rawValue)); replace it with a file or remove it"))
                    continue
                }
                let permissions = (attributes[.posixPermissions] as? NSNumber)?.uint32Value ?? 0o644
                entries.append(FileEntry(
                    source: relativeRoot + "/" + relative, destination: "/" + relative,
                    mode: permissions & 0o111 != 0 ? 0o755 : 0o644, uid: 0, gid: 0, ownerGiven: false,
                    path: site.path))
            }
            overlays[site.id] = entries.sorted { $0.destination < $1.destination }
        }
        return (overlays, diagnostics)
    }
}
