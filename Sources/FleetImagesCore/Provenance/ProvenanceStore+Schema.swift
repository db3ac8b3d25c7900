import GRDB

extension ProvenanceStore {
    /// The schema's history. A migration is never edited once shipped: change the schema by
    /// appending a new named migration. Migrations speak SQL only (no record types), so they
    /// keep meaning the same thing when the Swift code changes.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-runs-builds-inputs") { db in
            try db.execute(sql: """
                CREATE TABLE run (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    uuid TEXT NOT NULL UNIQUE,
                    startedAt DATETIME NOT NULL,
                    finishedAt DATETIME,
                    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
                    commandLine TEXT NOT NULL,
                    manifestPath TEXT NOT NULL,
                    manifestSHA256 TEXT NOT NULL,
                    toolVersion TEXT NOT NULL,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    parallelism INTEGER NOT NULL,
                    plannedCount INTEGER NOT NULL DEFAULT 0,
                    builtCount INTEGER NOT NULL DEFAULT 0,
                    upToDateCount INTEGER NOT NULL DEFAULT 0,
                    failedCount INTEGER NOT NULL DEFAULT 0,
                    skippedCount INTEGER NOT NULL DEFAULT 0
                );
                -- recovery looks for runs still marked running
                CREATE INDEX run_on_status ON run(status);

                CREATE TABLE build (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    runID INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
                    variantID TEXT NOT NULL,
                    site TEXT NOT NULL,
                    matrixJSON TEXT NOT NULL DEFAULT '{}',
                    builder TEXT NOT NULL,
                    builderImageDigest TEXT,
                    inputsDigest TEXT NOT NULL,
                    startedAt DATETIME NOT NULL,
                    finishedAt DATETIME,
                    status TEXT NOT NULL
                        CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'up-to-date', 'pruned')),
                    exitCode INTEGER,
                    errorMessage TEXT,
                    logPath TEXT,
                    artifactPath TEXT,
                    artifactSize INTEGER,
                    artifactSHA256 TEXT,
                    signaturePath TEXT,
                    signingKeyFingerprint TEXT,
                    provenancePath TEXT,
                    reusedBuildID INTEGER REFERENCES build(id) ON DELETE SET NULL
                );
                -- latest build per variant: max(id) per variantID straight from this index
                CREATE INDEX build_on_variantID_id ON build(variantID, id);
                -- builds of one run; recovery of a run's running builds
                CREATE INDEX build_on_runID ON build(runID);
                -- --site GLOB: SQLite uses the index for the glob's literal prefix
                CREATE INDEX build_on_site ON build(site);
                -- --status (rows come out in id order, as the history wants them)
                CREATE INDEX build_on_status ON build(status);
                -- --since
                CREATE INDEX build_on_finishedAt ON build(finishedAt);
                -- reuse chains of up-to-date rows
                CREATE INDEX build_on_reusedBuildID ON build(reusedBuildID) WHERE reusedBuildID IS NOT NULL;

                CREATE TABLE buildInput (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    buildID INTEGER NOT NULL REFERENCES build(id) ON DELETE CASCADE,
                    role TEXT NOT NULL,
                    name TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    digestKind TEXT NOT NULL CHECK (digestKind IN ('sha256', 'hmac-sha256')),
                    url TEXT,
                    certFingerprint TEXT,
                    certSubject TEXT,
                    certNotAfter DATETIME
                );
                CREATE INDEX buildInput_on_buildID ON buildInput(buildID);
                """)
        }
        // SSH public keys were recorded with digestKind 'hmac-sha256' although their digest is
        // OpenSSH's fingerprint: the CHECK gains 'ssh-fingerprint' (SQLite cannot alter a CHECK,
        // so the table is rebuilt) and those rows say what they hold.
        migrator.registerMigration("v2-ssh-fingerprint-digests") { db in
            try db.execute(sql: """
                CREATE TABLE buildInput_v2 (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    buildID INTEGER NOT NULL REFERENCES build(id) ON DELETE CASCADE,
                    role TEXT NOT NULL,
                    name TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    digestKind TEXT NOT NULL CHECK (digestKind IN ('sha256', 'hmac-sha256', 'ssh-fingerprint')),
                    url TEXT,
                    certFingerprint TEXT,
                    certSubject TEXT,
                    certNotAfter DATETIME
                );
                INSERT INTO buildInput_v2 (id, buildID, role, name, digest, digestKind, url, certFingerprint, certSubject, certNotAfter)
                    SELECT id, buildID, role, name, digest,
                           CASE WHEN role = 'ssh-authorized-key' AND digest LIKE 'SHA256:%' THEN 'ssh-fingerprint' ELSE digestKind END,
                           url, certFingerprint, certSubject, certNotAfter
                    FROM buildInput;
                DROP TABLE buildInput;
                ALTER TABLE buildInput_v2 RENAME TO buildInput;
                CREATE INDEX buildInput_on_buildID ON buildInput(buildID);
                """)
        }
        // Merging shards (`fleet-images merge`): a run says which fleet and which state key its
        // digests belong to, which shard it built, and where it was merged from; a merged build
        // keeps the id it had where it was built (`originID`), which makes merging idempotent.
        migrator.registerMigration("v3-shard-merge") { db in
            try db.execute(sql: """
                ALTER TABLE run ADD COLUMN fleet TEXT;
                ALTER TABLE run ADD COLUMN stateKeyID TEXT;
                ALTER TABLE run ADD COLUMN shard TEXT;
                ALTER TABLE run ADD COLUMN mergedFrom TEXT;
                ALTER TABLE run ADD COLUMN mergedAt DATETIME;
                ALTER TABLE build ADD COLUMN originID INTEGER;
                -- a merged build is found again by its run and the id it had where it was built
                CREATE UNIQUE INDEX build_on_runID_origin ON build(runID, coalesce(originID, id));
                """)
        }
        migrator.registerMigration("v4-compressed-outputs") { db in
            try db.execute(sql: """
                -- "xz 6", "zstd 19": format and level, so a changed level is built again
                ALTER TABLE build ADD COLUMN compression TEXT;
                ALTER TABLE build ADD COLUMN compressedPath TEXT;
                ALTER TABLE build ADD COLUMN compressedSize INTEGER;
                ALTER TABLE build ADD COLUMN compressedSHA256 TEXT;
                ALTER TABLE build ADD COLUMN blockMapPath TEXT;
                """)
        }
        return migrator
    }
}
