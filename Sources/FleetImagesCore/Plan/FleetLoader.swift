import Foundation

/// The front of the pipeline, shared by `validate`, `plan` and `build`: read the manifest, scan
/// the overlays, expand, check. Every problem from every step is collected before anything is
/// decided, so one run reports them all.
public enum FleetLoader {
    public struct Outcome: Sendable {
        public var manifest: Manifest?
        /// All variants, or those matching `--only`.
        public var variants: [Variant]
        public var diagnostics: [Diagnostic]
        /// Every variant id of the fleet, before `--only` and `--shard` (shards are cut from these).
        public var allVariantIDs: [String] = []
        public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
    }

    /// `shard` keeps the variants of that slice of the whole fleet (``Shard``); `only` then
    /// narrows them by id. An empty shard is not an error (a fleet smaller than its shard count).
    public static func load(manifestPath: String, environment: [String: String], only: String? = nil, shard: Shard? = nil,
                            now: Date = Date(), claimCache: ClaimCheckCache? = nil) -> Outcome {
        let (manifest, collected) = ManifestReader.readCollecting(path: manifestPath)
        let readDiagnostics = collected.items
        guard let manifest else {
            // The manifest cannot be used, but the files it names can still be looked for, so that
            // one run reports every problem.
            let directory = (URL(fileURLWithPath: manifestPath).standardizedFileURL.path as NSString).deletingLastPathComponent
            var seen = Set<String>()
            let missing = collected.references.compactMap { reference -> Diagnostic? in
                guard seen.insert(reference.path + "\u{0}" + reference.location.description).inserted,
                      let problem = ManifestChecker.fileProblem(reference.path, what: "file", directory: directory) else { return nil }
                return .error(reference.location, problem)
            }
            return Outcome(manifest: nil, variants: [], diagnostics: readDiagnostics + missing)
        }
        let (overlays, overlayDiagnostics) = Overlay.scan(manifest: manifest)
        let (variants, expansionDiagnostics) = Expansion.expand(manifest, overlays: overlays)
        var selected = variants
        var diagnostics = readDiagnostics + overlayDiagnostics + expansionDiagnostics
        if let shard {
            let kept = shard.select(variants.map(\.id))
            selected = variants.filter { kept.contains($0.id) }
        }
        if let only {
            let candidates = selected
            selected = candidates.filter { Glob.matches(only, $0.id) }
            // A pattern that matches nothing in the fleet is a mistake; one whose matches are all in
            // other shards is not.
            if selected.isEmpty && !variants.isEmpty && !variants.contains(where: { Glob.matches(only, $0.id) }) {
                diagnostics.append(Diagnostic(.error, at: "--only", "\"\(only)\" matches none of the \(variants.count) variants (e.g. \(variants.prefix(3).map(\.id).joined(separator: ", ")))"))
            }
        }
        diagnostics += ManifestChecker(manifest: manifest, environment: environment, now: now, claimCache: claimCache).check(selected)
        return Outcome(manifest: manifest, variants: selected, diagnostics: diagnostics, allVariantIDs: variants.map(\.id))
    }
}

/// Shell-style wildcards (`*`, `?`, `[…]`) as `--only` and `--site` take them.
public enum Glob {
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        fnmatch(pattern, text, 0) == 0
    }
}
