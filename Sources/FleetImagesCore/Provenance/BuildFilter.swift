import Foundation

/// Which builds ``ProvenanceStore/builds(filter:limit:)`` returns (`fleet-images ls` flags).
///
/// With ``Scope/latestPerVariant`` the candidates are first narrowed by `runID`, `variantIDs`
/// and `since`, the latest build of each variant is chosen, and then `statuses` and
/// `siteGlob` filter those: `--status failed` lists the variants whose latest build failed,
/// not old failures since fixed. With ``Scope/allHistory`` every filter applies to every row.
public struct BuildFilter: Sendable, Hashable {
    public enum Scope: Sendable, Hashable {
        /// The newest build (highest id) of each variant (`ls`).
        case latestPerVariant
        /// Every build, newest first (`ls --all`).
        case allHistory
    }

    public var scope: Scope
    public var runID: Int64?
    public var variantIDs: [String]?
    /// Empty or nil: any status.
    public var statuses: [BuildStatus]?
    /// A shell-style glob over the site id (`*`, `?`, `[…]`; case-sensitive, SQLite GLOB).
    public var siteGlob: String?
    /// Builds that finished at or after this date, or are still unfinished and started at or after it.
    public var since: Date?

    public init(
        scope: Scope = .latestPerVariant, runID: Int64? = nil, variantIDs: [String]? = nil,
        statuses: [BuildStatus]? = nil, siteGlob: String? = nil, since: Date? = nil
    ) {
        self.scope = scope
        self.runID = runID
        self.variantIDs = variantIDs
        self.statuses = statuses
        self.siteGlob = siteGlob
        self.since = since
    }
}
