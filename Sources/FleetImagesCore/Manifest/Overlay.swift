import Foundation

/// The per-site overlay trees: `variants/<site-id>/` mirrors absolute paths in the image.
public enum Overlay {
    /// Every regular file under `variants/<site>/` for each site that has such a folder.
    /// Mode 0755 when the file is executable, else 0644; owner root.
    ///
    /// Nothing is followed or opened here (`lstat` only): a symbolic link, a FIFO or a device in a
    /// tree is an error naming it, and so is an overlay folder that is itself a link (it would
    /// otherwise be skipped without a word, or pull in files from outside the repository).
    public static func scan(manifest: Manifest) -> (overlays: [String: [FileEntry]], diagnostics: [Diagnostic]) {
        var overlays: [String: [FileEntry]] = [:]
        var diagnostics: [Diagnostic] = []
        for site in manifest.sites {
            let relativeRoot = "variants/\(site.id)"
            let root = manifest.directory + "/" + relativeRoot
            var info = stat()
            guard lstat(root, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                break
            case S_IFLNK:
                diagnostics.append(Diagnostic(.error, at: relativeRoot, "the overlay folder of site \(site.id) is a symbolic link; overlay folders must be real folders in the repository. Replace the link with a folder holding the files"))
                continue
            default:
                diagnostics.append(Diagnostic(.error, at: relativeRoot, "is \(InputFile.kind(info.st_mode)), but variants/<site-id> is the site's overlay folder; remove it or make it a folder"))
                continue
            }
            var entries: [FileEntry] = []
            walk(root, relative: "", relativeRoot: relativeRoot, site: site, bootMount: manifest.baseImage.bootMount, entries: &entries, diagnostics: &diagnostics)
            overlays[site.id] = entries.sorted { $0.destination < $1.destination }
        }
        return (overlays, diagnostics)
    }

    static func walk(_ folder: String, relative: String, relativeRoot: String, site: SiteEntry, bootMount: String,
                     entries: inout [FileEntry], diagnostics: inout [Diagnostic]) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder + relative).sorted()
        } catch {
            diagnostics.append(Diagnostic(.error, at: relativeRoot + relative, "cannot list the overlay folder: \((error as NSError).localizedDescription)"))
            return
        }
        for name in names {
            let inside = relative + "/" + name
            let shown = relativeRoot + inside
            var info = stat()
            guard lstat(folder + inside, &info) == 0 else {
                diagnostics.append(Diagnostic(.error, at: shown, "cannot examine it: \(String(cString: strerror(errno)))"))
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                walk(folder, relative: inside, relativeRoot: relativeRoot, site: site, bootMount: bootMount, entries: &entries, diagnostics: &diagnostics)
            case S_IFREG:
                if let problem = ImagePath.destinationProblem(inside, bootMount: bootMount) {
                    diagnostics.append(Diagnostic(.error, at: shown, "cannot be overlaid: \(problem)"))
                    continue
                }
                entries.append(FileEntry(
                    source: shown, destination: inside,
                    mode: info.st_mode & 0o111 != 0 ? 0o755 : 0o644, uid: 0, gid: 0, ownerGiven: false,
                    path: site.path))
            default:
                diagnostics.append(Diagnostic(.error, at: shown, "only regular files can be overlaid (this is \(InputFile.kind(info.st_mode))); replace it with a file or remove it"))
            }
        }
    }
}
