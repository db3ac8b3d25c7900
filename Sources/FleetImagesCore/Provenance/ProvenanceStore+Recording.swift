import Foundation
import GRDB

/// Writing: each call is one transaction, so a reader sees a build with all of its inputs or not at all.
extension ProvenanceStore {
    /// Records the start of a run (status `running`) and returns its id.
    @discardableResult
    public func beginRun(_ start: RunStart) throws -> Int64 {
        try write("recording the start of a run") { db in
            var run = RunRecord(
                startedAt: start.startedAt, status: .running, commandLine: start.commandLine,
                manifestPath: start.manifestPath, manifestSHA256: start.manifestSHA256,
                toolVersion: start.toolVersion, host: start.host, pid: start.pid,
                parallelism: start.parallelism, counts: RunCounts(planned: start.plannedCount),
                fleet: start.fleet, stateKeyID: start.stateKeyID, shard: start.shard)
            try run.insert(db)
            return run.id!
        }
    }

    /// Records the end of a run. Builds of the run still marked running become interrupted
    /// (a run cannot end with work in flight).
    public func finishRun(id: Int64, status: RunStatus, counts: RunCounts, finishedAt: Date = Date()) throws {
        try write("recording the end of run \(id)") { db in
            guard var run = try RunRecord.fetchOne(db, key: id) else {
                throw ProvenanceError.runNotFound(id: id, path: path)
            }
            run.status = status
            run.finishedAt = finishedAt
            run.counts = counts
            try run.update(db)
            try db.execute(
                sql: """
                    UPDATE build SET status = 'interrupted', finishedAt = ?, errorMessage = coalesce(errorMessage, ?)
                    WHERE runID = ? AND status = 'running'
                    """,
                arguments: [finishedAt, "the run ended while this build was still running", id])
        }
    }

    /// Records the start of a variant build and its inputs (one transaction) and returns the build id.
    @discardableResult
    public func beginBuild(runID: Int64, _ start: BuildStart, inputs: [BuildInput]) throws -> Int64 {
        try write("recording the start of \(start.variantID)") { db in
            guard try RunRecord.exists(db, key: runID) else {
                throw ProvenanceError.runNotFound(id: runID, path: path)
            }
            var build = BuildRecord(
                runID: runID, variantID: start.variantID, site: start.site, matrix: start.matrix,
                builder: start.builder, builderImageDigest: start.builderImageDigest,
                inputsDigest: start.inputsDigest, startedAt: start.startedAt, status: .running,
                logPath: start.logPath)
            try build.insert(db)
            let buildID = build.id!
            try BuildInputRecord.insertAll(inputs.map { input in
                BuildInputRecord(
                    buildID: buildID, role: input.role, name: input.name, digest: input.digest,
                    digestKind: input.digestKind, url: input.url,
                    certFingerprint: input.certificate?.fingerprint, certSubject: input.certificate?.subject,
                    certNotAfter: input.certificate?.notAfter)
            }, buildID: buildID, db)
            return buildID
        }
    }

    /// Records how a running build ended (one transaction).
    ///
    /// - Throws: ``ProvenanceError/buildNotRunning(id:status:path:)`` when the build already ended
    ///   (for example marked interrupted by recovery), ``ProvenanceError/missingArtifact(buildID:)``
    ///   for a success without an artifact.
    public func finishBuild(id: Int64, _ outcome: BuildOutcome) throws {
        if outcome.status == .succeeded, outcome.artifact == nil {
            throw ProvenanceError.missingArtifact(buildID: id)
        }
        try write("recording the end of build \(id)") { db in
            guard var build = try BuildRecord.fetchOne(db, key: id) else {
                throw ProvenanceError.buildNotFound(id: id, path: path)
            }
            guard build.status == .running else {
                throw ProvenanceError.buildNotRunning(id: id, status: build.status, path: path)
            }
            build.status = outcome.status.buildStatus
            build.finishedAt = outcome.finishedAt
            build.exitCode = outcome.exitCode
            build.errorMessage = outcome.errorMessage
            if let logPath = outcome.logPath { build.logPath = logPath }
            if let artifact = outcome.artifact {
                build.artifactPath = artifact.path
                build.artifactSize = artifact.size
                build.artifactSHA256 = artifact.sha256
                build.signaturePath = artifact.signaturePath
                build.signingKeyFingerprint = artifact.signingKeyFingerprint
                build.compression = artifact.compressed?.spec.description
                build.compressedPath = artifact.compressed?.path
                build.compressedSize = artifact.compressed.map { Int64($0.size) }
                build.compressedSHA256 = artifact.compressed?.sha256
                build.blockMapPath = artifact.blockMapPath
            }
            build.provenancePath = outcome.provenancePath
            try build.update(db)
        }
    }

    /// Records that a variant was up to date in run `runID`: a new row with status `up-to-date`
    /// that points at (and copies the artifact of) the build it reuses; its inputs are the reused
    /// build's (``inputs(buildID:)`` reads them there). Returns its id.
    @discardableResult
    public func recordUpToDate(runID: Int64, reusing buildID: Int64, at date: Date = Date()) throws -> Int64 {
        try recordUpToDate(runID: runID, reusing: [buildID], at: date)[0]
    }

    /// Records many up-to-date variants in one transaction (a nightly no-op run has thousands).
    /// Returns the new rows' ids, in the order of `buildIDs`.
    public func recordUpToDate(runID: Int64, reusing buildIDs: [Int64], at date: Date = Date()) throws -> [Int64] {
        try write("recording up-to-date variants") { db in
            guard try RunRecord.exists(db, key: runID) else {
                throw ProvenanceError.runNotFound(id: runID, path: path)
            }
            // Each row is copied inside SQLite by one prepared statement: decoding and encoding
            // every row in Swift and preparing statements per row took 1.6 s of a 5,000-variant
            // no-op. The inputs are not copied: they are the reused build's, and copying them made
            // a no-op night of 5,000 variants add 24 MB to the database (55,000 rows), which every
            // later run's integrity check then reads.
            let copyBuild = try db.cachedStatement(sql: try Self.upToDateCopySQL(db))
            return try buildIDs.map { buildID in
                try copyBuild.execute(arguments: [runID, date, buildID])
                guard db.changesCount == 1 else {
                    guard let reused = try BuildRecord.fetchOne(db, key: buildID) else {
                        throw ProvenanceError.buildNotFound(id: buildID, path: path)
                    }
                    throw ProvenanceError.notReusable(buildID: buildID, status: reused.status)
                }
                return db.lastInsertedRowID
            }
        }
    }

    /// `INSERT … SELECT` that copies a reusable build (arguments: run id, date, build id) as an
    /// up-to-date row of that run. Every column of the table is named, so a column added later is
    /// copied unless it is listed here as one the new row sets.
    private static func upToDateCopySQL(_ db: Database) throws -> String {
        let set: [String: String] = [
            "runID": "?1",
            "startedAt": "?2",
            "finishedAt": "?2",
            "status": "'\(BuildStatus.upToDate.rawValue)'",
            "exitCode": "NULL",
            "errorMessage": "NULL",
            "logPath": "NULL",
            "originID": "NULL",  // recorded here, by this run
            // An up-to-date row reusing another up-to-date row points at the original build.
            "reusedBuildID": "coalesce(reusedBuildID, id)",
        ]
        let columns = try db.columns(in: BuildRecord.databaseTableName).map(\.name).filter { $0 != "id" }
        let reusable = BuildStatus.withArtifact.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return """
            INSERT INTO build (\(columns.map { "\"\($0)\"" }.joined(separator: ", ")))
            SELECT \(columns.map { set[$0] ?? "\"\($0)\"" }.joined(separator: ", "))
            FROM build WHERE id = ?3 AND status IN (\(reusable))
            """
    }

    /// Marks a build's artifact as deleted on purpose (the row stays as history). Returns false
    /// when the build had no artifact to prune (failed, running, already pruned).
    @discardableResult
    public func markPruned(buildID: Int64) throws -> Bool {
        try write("marking build \(buildID) pruned") { db in
            guard var build = try BuildRecord.fetchOne(db, key: buildID) else {
                throw ProvenanceError.buildNotFound(id: buildID, path: path)
            }
            guard BuildStatus.withArtifact.contains(build.status) else { return false }
            build.status = .pruned
            try build.update(db)
            return true
        }
    }

    /// Marks runs left `running` by a process that is gone (power loss, kill -9) as `interrupted`,
    /// with their running builds, and builds left `running` in runs that already ended. A build of
    /// such a run recorded `succeeded` whose image is not there (recorded by an older fleet-images
    /// before it placed the image) becomes `interrupted`, with the reason and without the artifact
    /// it never delivered. Returns the number of runs marked.
    ///
    /// Only runs started on `currentHost` are judged (a pid means nothing on another machine),
    /// and never the calling process's own run. Call it while holding the build lock, before
    /// `beginRun`.
    @discardableResult
    public func recoverInterrupted(
        currentHost: String = ProcessInfo.processInfo.hostName,
        now: Date = Date(),
        isProcessAlive: (Int32) -> Bool = ProvenanceStore.processExists,
        imageExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }
    ) throws -> Int {
        let ownPID = ProcessInfo.processInfo.processIdentifier
        return try write("recovering interrupted runs") { db in
            let running = try RunRecord.filter(RunRecord.Columns.status == RunStatus.running).fetchAll(db)
            var recovered = 0
            for var run in running where run.host == currentHost && run.pid != ownPID && !isProcessAlive(run.pid) {
                run.status = .interrupted
                run.finishedAt = now
                try run.update(db)
                try db.execute(
                    sql: """
                        UPDATE build SET status = 'interrupted', finishedAt = ?, errorMessage = coalesce(errorMessage, ?)
                        WHERE runID = ? AND status = 'running'
                        """,
                    arguments: [now, "process \(run.pid) on \(run.host) ended without finishing this build", run.id])
                let ghosts = try BuildRecord
                    .filter(BuildRecord.Columns.runID == run.id && BuildRecord.Columns.status == BuildStatus.succeeded)
                    .fetchAll(db)
                for var ghost in ghosts where !(ghost.artifactPath.map(imageExists) ?? false) {
                    ghost.errorMessage = "process \(run.pid) on \(run.host) ended before this image was placed: no image at \(ghost.artifactPath ?? "?")"
                    ghost.status = .interrupted
                    ghost.artifactPath = nil
                    ghost.artifactSize = nil
                    ghost.artifactSHA256 = nil
                    ghost.signaturePath = nil
                    ghost.signingKeyFingerprint = nil
                    ghost.provenancePath = nil
                    try ghost.update(db)
                }
                recovered += 1
            }
            try db.execute(
                sql: """
                    UPDATE build SET status = 'interrupted', finishedAt = ?, errorMessage = coalesce(errorMessage, ?)
                    WHERE status = 'running' AND runID IN (SELECT id FROM run WHERE status <> 'running')
                    """,
                arguments: [now, "its run ended without finishing this build"])
            return recovered
        }
    }

    /// Whether a process with this id exists on this machine (`kill(pid, 0)`; EPERM means it exists
    /// but belongs to another user).
    public static func processExists(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }
}
