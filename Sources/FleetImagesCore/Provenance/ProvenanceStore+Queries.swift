import Foundation
import GRDB

/// Reading: each call reads one consistent snapshot (WAL), never waiting for a writer.
extension ProvenanceStore {
    public func run(id: Int64) throws -> RunRecord? {
        try read("reading run \(id)") { db in try RunRecord.fetchOne(db, key: id) }
    }

    /// The most recent runs, newest first.
    public func runs(limit: Int = 20) throws -> [RunRecord] {
        try read("listing runs") { db in
            try RunRecord.order(RunRecord.Columns.id.desc).limit(limit).fetchAll(db)
        }
    }

    public func build(id: Int64) throws -> BuildRecord? {
        try read("reading build \(id)") { db in try BuildRecord.fetchOne(db, key: id) }
    }

    /// The inputs of a build, in the order they were recorded. An up-to-date row has those of the
    /// build it reuses (older databases hold a copy of them under the row itself; either is read).
    public func inputs(buildID: Int64) throws -> [BuildInputRecord] {
        try read("reading the inputs of build \(buildID)") { db in
            let own = try Self.recordedInputs(db, buildID: buildID)
            // (A pruned up-to-date row still names the build it reused.)
            guard own.isEmpty, let reused = try Int64.fetchOne(db, sql: "SELECT reusedBuildID FROM build WHERE id = ?", arguments: [buildID]) else {
                return own
            }
            return try Self.recordedInputs(db, buildID: reused)
        }
    }

    private static func recordedInputs(_ db: Database, buildID: Int64) throws -> [BuildInputRecord] {
        try BuildInputRecord
            .filter(BuildInputRecord.Columns.buildID == buildID)
            .order(BuildInputRecord.Columns.id)
            .fetchAll(db)
    }

    /// The newest build of a variant, whatever its status.
    public func latestBuild(variantID: String) throws -> BuildRecord? {
        try read("reading the latest build of \(variantID)") { db in
            try BuildRecord
                .filter(BuildRecord.Columns.variantID == variantID)
                .order(BuildRecord.Columns.id.desc)
                .fetchOne(db)
        }
    }

    /// The newest succeeded or up-to-date build of a variant with this inputs digest: the
    /// incremental check's candidate. The caller still checks that its artifact exists.
    public func latestSuccessfulBuild(variantID: String, inputsDigest: String) throws -> BuildRecord? {
        try latestSuccessfulBuilds([(variantID, inputsDigest)])[variantID]
    }

    /// ``latestSuccessfulBuild(variantID:inputsDigest:)`` for many variants in one read (the
    /// nightly decision asks it of every variant): keyed by variant id, absent when there is none.
    public func latestSuccessfulBuilds(_ wanted: [(variantID: String, inputsDigest: String)]) throws -> [String: BuildRecord] {
        guard !wanted.isEmpty else { return [:] }
        return try read("looking up earlier builds") { db in
            let reusable = BuildStatus.withArtifact.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            let statement = try db.cachedStatement(sql: """
                SELECT * FROM build WHERE variantID = ? AND inputsDigest = ? AND status IN (\(reusable))
                ORDER BY id DESC LIMIT 1
                """)
            var found: [String: BuildRecord] = [:]
            for (variantID, inputsDigest) in wanted {
                if let build = try BuildRecord.fetchOne(statement, arguments: [variantID, inputsDigest]) { found[variantID] = build }
            }
            return found
        }
    }

    /// The newest build with an image (succeeded or up to date) of each of `variantIDs`, keyed by
    /// variant id: what `<output>/<variant>/latest` points at, even when a later build failed.
    public func latestBuildsWithImages(variantIDs: [String]) throws -> [String: BuildRecord] {
        guard !variantIDs.isEmpty else { return [:] }
        return try read("looking up the latest images") { db in
            let reusable = BuildStatus.withArtifact.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            let statement = try db.cachedStatement(sql: "SELECT * FROM build WHERE variantID = ? AND status IN (\(reusable)) ORDER BY id DESC LIMIT 1")
            var found: [String: BuildRecord] = [:]
            for variantID in variantIDs {
                if let build = try BuildRecord.fetchOne(statement, arguments: [variantID]) { found[variantID] = build }
            }
            return found
        }
    }

    /// The claim certificate's `notAfter` recorded with each of `builds` (an up-to-date row's are
    /// those of the build it reuses), in one read: the report asks it of every variant.
    public func claimCertificateExpiries(_ builds: [BuildRecord]) throws -> [Int64: Date] {
        guard !builds.isEmpty else { return [:] }
        return try read("reading claim certificate expiries") { db in
            let statement = try db.cachedStatement(sql: """
                SELECT certNotAfter FROM buildInput WHERE buildID = ? AND role = ? AND certNotAfter IS NOT NULL ORDER BY id LIMIT 1
                """)
            var found: [Int64: Date] = [:]
            for build in builds {
                guard let id = build.id else { continue }
                for candidate in [id, build.reusedBuildID].compactMap({ $0 }) {
                    if let date = try Date.fetchOne(statement, arguments: [candidate, BuildInputRole.claimCertificate.rawValue]) {
                        found[id] = date
                        break
                    }
                }
            }
            return found
        }
    }

    /// The newest build of each variant (of the given variants, or of all), ordered by variant id.
    public func latestBuilds(variantIDs: [String]? = nil) throws -> [BuildRecord] {
        try builds(filter: BuildFilter(scope: .latestPerVariant, variantIDs: variantIDs))
    }

    /// Builds matching `filter`: latest per variant ordered by variant id, or all history newest first.
    public func builds(filter: BuildFilter, limit: Int? = nil) throws -> [BuildRecord] {
        if let ids = filter.variantIDs, ids.isEmpty { return [] }
        if let statuses = filter.statuses, statuses.isEmpty {
            var unfiltered = filter
            unfiltered.statuses = nil
            return try builds(filter: unfiltered, limit: limit)
        }
        let (sql, arguments) = Self.buildsQuery(filter: filter, limit: limit)
        return try read("listing builds") { db in
            try BuildRecord.fetchAll(db, sql: sql, arguments: arguments)
        }
    }

    /// The SQL behind ``builds(filter:limit:)``; internal so tests can `EXPLAIN QUERY PLAN` it.
    ///
    /// "Latest per variant" is one `max(id)` index seek per variant (`build_on_variantID_id`)
    /// over the given variant ids, or over the distinct variant ids found by hopping through the
    /// same index (a loose index scan: one seek per variant instead of reading all 100,000
    /// entries as `GROUP BY` would). With a run filter and no variant list, `GROUP BY` over the
    /// run's builds (index `build_on_runID`) is cheaper.
    static func buildsQuery(filter: BuildFilter, limit: Int?) -> (String, StatementArguments) {
        // Conditions that choose the candidate rows (before "latest per variant"), except the variant list.
        var candidate: [String] = []
        var candidateArguments = StatementArguments()
        if let runID = filter.runID {
            candidate.append("runID = ?")
            candidateArguments += [runID]
        }
        if let since = filter.since {
            candidate.append("(finishedAt >= ? OR (finishedAt IS NULL AND startedAt >= ?))")
            candidateArguments += [since, since]
        }
        // One JSON array argument instead of one placeholder per id: no limit on the count.
        let variantList = filter.variantIDs.map { Self.jsonArray($0) }
        // Conditions on the chosen rows.
        var chosen: [String] = []
        var chosenArguments = StatementArguments()
        if let statuses = filter.statuses, !statuses.isEmpty {
            chosen.append("status IN (\(statuses.map { _ in "?" }.joined(separator: ", ")))")
            chosenArguments += StatementArguments(statuses.map(\.rawValue))
        }
        if let glob = filter.siteGlob {
            chosen.append("site GLOB ?")
            chosenArguments += [glob]
        }
        func whereClause(_ conditions: [String]) -> String {
            conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        }
        var sql: String
        var arguments: StatementArguments
        switch filter.scope {
        case .allHistory:
            var conditions = candidate
            arguments = candidateArguments
            if let variantList {
                conditions.append("variantID IN (SELECT value FROM json_each(?))")
                arguments += [variantList]
            }
            sql = "SELECT * FROM build" + whereClause(conditions + chosen) + " ORDER BY id DESC"
            arguments += chosenArguments
        case .latestPerVariant:
            let latestIDs: String
            if variantList == nil && filter.runID != nil {
                latestIDs = "SELECT max(id) FROM build" + whereClause(candidate) + " GROUP BY variantID"
                arguments = candidateArguments
            } else {
                let variants: String
                if variantList != nil {
                    variants = "SELECT value AS variantID FROM json_each(?)"
                } else {
                    variants = """
                        WITH RECURSIVE v(variantID) AS (
                        SELECT min(variantID) FROM build
                        UNION ALL
                        SELECT (SELECT min(variantID) FROM build WHERE variantID > v.variantID) FROM v WHERE v.variantID IS NOT NULL)
                        SELECT variantID FROM v WHERE variantID IS NOT NULL
                        """
                }
                latestIDs = "SELECT (SELECT max(id) FROM build WHERE build.variantID = variants.variantID"
                    + candidate.map { " AND " + $0 }.joined()
                    + ") FROM (" + variants + ") AS variants"
                // Placeholders are numbered in text order: the correlated conditions come first.
                arguments = candidateArguments
                if let variantList { arguments += [variantList] }
            }
            sql = "SELECT * FROM build WHERE id IN (" + latestIDs + ")"
                + chosen.map { " AND " + $0 }.joined()
                + " ORDER BY variantID"
            arguments += chosenArguments
        }
        if let limit {
            sql += " LIMIT ?"
            arguments += [limit]
        }
        return (sql, arguments)
    }

    private static func jsonArray(_ strings: [String]) -> String {
        let data = (try? JSONEncoder().encode(strings)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
