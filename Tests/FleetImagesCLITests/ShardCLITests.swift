import Foundation
import Testing

extension CLITests {
    /// `--shard K/N` on the command line: the shards of `plan` are what `build` builds, together
    /// they are the fleet, and a later unsharded run finds everything up to date.
    @Suite struct Shards {
        @Test func shardsBuildTheFleetBetweenThem() throws {
            let fleet = try DemoFleet("shards")
            defer { fleet.remove() }
            let variants = try fleet.variantIDs()
            #expect(variants.count == 6)

            let matrix = try fleet.cli(["plan", "--matrix", "github", "--shards", "3"])
            #expect(matrix.exited && matrix.status == 0, "\(matrix)")
            let include = (try parseJSON(matrix.stdout)["include"] as? [[String: String]]) ?? []
            #expect(include.map { $0["shard"] ?? "" } == ["1/3", "2/3", "3/3"])

            let planned = try fleet.json(["plan", "--shards", "3"])
            var shardOf: [String: String] = [:]
            for entry in planned["variants"] as? [[String: Any]] ?? [] {
                shardOf[entry["id"] as? String ?? ""] = entry["shard"] as? String
            }
            #expect(shardOf.keys.sorted() == variants.sorted())

            var built: [String] = []
            for shard in ["1/3", "2/3", "3/3"] {
                let slice = try fleet.json(["plan", "--shard", shard])
                let sliceIDs = (slice["variants"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                #expect(sliceIDs.allSatisfy { shardOf[$0] == shard }, "\(shard): \(sliceIDs)")
                let outcome = try fleet.cli(["build", "--shard", shard, "--json"], timeout: 600)
                #expect(outcome.exited && outcome.status == 0, "build --shard \(shard): \(outcome)")
                let statuses = statuses(try parseJSON(outcome.stdout))
                #expect(statuses.keys.sorted() == sliceIDs.sorted(), "build --shard \(shard) built \(statuses)")
                #expect(statuses.values.allSatisfy { $0 == "built" })
                #expect(outcome.stderr.contains("shard \(shard): \(sliceIDs.count) of the fleet's 6 variants"))
                built += statuses.keys
            }
            #expect(built.sorted() == variants.sorted(), "every variant in exactly one shard")

            let whole = try fleet.cli(["build", "--json"], timeout: 600)
            #expect(whole.exited && whole.status == 0, "\(whole)")
            #expect(statuses(try parseJSON(whole.stdout)) == Dictionary(uniqueKeysWithValues: variants.map { ($0, "up-to-date") }))

            // Usage mistakes are refused before anything runs.
            for bad in [["build", "--shard", "4/3"], ["build", "--shard", "two"], ["plan", "--matrix", "github", "--shards", "257"],
                        ["plan", "--matrix", "gitlab", "--shards", "2"], ["plan", "--shard", "1/2", "--shards", "3"]] {
                let refused = try fleet.cli(bad)
                #expect(refused.exited && refused.status != 0 && refused.stderr.contains("Error:"), "\(bad): \(refused)")
            }
        }
    }
}

/// A random state key written as `secret.key` (mode 0600) into the fleet's state folder: what a CI
/// secret gives every shard, and the merging host, before they run.
func installStateKey(_ key: [UInt8], in fleet: DemoFleet) throws {
    try FileManager.default.createDirectory(atPath: fleet.state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
    let path = fleet.state + "/secret.key"
    guard FileManager.default.createFile(atPath: path, contents: Data(key), attributes: [.posixPermissions: 0o600]) else {
        throw CLITestFailure("cannot write \(path)")
    }
}

func randomStateKey() -> [UInt8] { (0..<32).map { _ in UInt8.random(in: 0...255) } }

/// Gives the fleet its own signing key pair (`keys/host.{key,pub}.pem`, as another build host
/// would have) and returns its fingerprint.
func useOwnSigningKey(_ fleet: DemoFleet) throws -> String {
    let made = try fleet.cli(["keygen", "--out", "keys/host"])
    guard made.status == 0, let line = made.stdout.split(separator: "\n").first(where: { $0.hasPrefix("fingerprint ") }) else {
        throw CLITestFailure("keygen: \(made)")
    }
    var manifest = try fleet.readManifest()
    var signing = manifest["signing"] as? [String: Any] ?? [:]
    signing["private_key"] = "keys/host.key.pem"
    signing["public_key"] = "keys/host.pub.pem"
    manifest["signing"] = signing
    try fleet.writeManifest(manifest)
    return String(line.dropFirst("fingerprint ".count))
}

/// Copies what a shard host placed in its output folder into the merging host's (what a CI
/// artifact download does).
func bringImages(from host: DemoFleet, to hub: DemoFleet) throws {
    try FileManager.default.createDirectory(atPath: hub.output, withIntermediateDirectories: true)
    try tool("cp", ["-a", host.output + "/.", hub.output + "/"])
}

/// `ls --json` of the fleet: variant id → that variant's latest build.
func latestBuilds(_ fleet: DemoFleet) throws -> [String: [String: Any]] {
    var result: [String: [String: Any]] = [:]
    for build in try fleet.json(["ls"])["builds"] as? [[String: Any]] ?? [] {
        if let variant = build["variant"] as? String { result[variant] = build }
    }
    return result
}

/// What must not depend on which host built a variant: its inputs digest and its image's SHA-256.
func contentOf(_ builds: [String: [String: Any]]) -> [String: String] {
    builds.mapValues { build in
        "\(build["inputs_digest"] as? String ?? "-") \((build["artifact"] as? [String: Any])?["sha256"] as? String ?? "-")"
    }
}

extension CLITests {
    /// Issue 13's local simulation: shards on separate "hosts" (folders with their own state and
    /// signing key), run at once, merged into a third folder's state.
    @Suite struct ShardMerge {
        @Test("The demo fleet built as 3 shards by 3 processes at once and merged records what one unsharded run does")
        func threeShardsAtOnceMergeIntoOneRecord() throws {
            let key = randomStateKey()
            let reference = try DemoFleet("merge-reference")
            defer { reference.remove() }
            try installStateKey(key, in: reference)
            let whole = try reference.cli(["build"], timeout: 600)
            try #require(whole.exited && whole.status == 0, "\(whole)")
            let expected = contentOf(try latestBuilds(reference))
            #expect(expected.count == 6)

            var hosts: [DemoFleet] = []
            defer { for host in hosts { host.remove() } }
            var fingerprints: [String] = []
            for index in 1...3 {
                let host = try DemoFleet("merge-host\(index)")
                hosts.append(host)
                try installStateKey(key, in: host)
                fingerprints.append(try useOwnSigningKey(host))
            }
            #expect(Set(fingerprints).count == 3)
            let children = try hosts.enumerated().map { index, host in try host.start(["build", "--shard", "\(index + 1)/3", "--json"]) }
            var builtBy: [String: Int] = [:]
            for (index, child) in children.enumerated() {
                let outcome = try child.finish(timeout: 600)
                #expect(outcome.exited && outcome.status == 0, "shard \(index + 1)/3: \(outcome)")
                for (variant, status) in statuses(try parseJSON(outcome.stdout)) {
                    #expect(status == "built", "\(variant) in shard \(index + 1)/3: \(status)")
                    builtBy[variant] = index
                }
            }
            #expect(builtBy.keys.sorted() == expected.keys.sorted(), "every variant built by exactly one shard: \(builtBy)")

            let hub = try DemoFleet("merge-hub")
            defer { hub.remove() }
            try installStateKey(key, in: hub)
            for host in hosts { try bringImages(from: host, to: hub) }
            let merged = try hub.cli(["merge"] + hosts.map(\.state))
            #expect(merged.exited && merged.status == 0, "\(merged)")
            for host in hosts {
                #expect(merged.stdout.contains("\(host.state): runs 1 added, 0 updated, 0 unchanged; builds 2 added"), "\(merged.stdout)")
            }

            let builds = try latestBuilds(hub)
            #expect(contentOf(builds) == expected, "the merged record differs from one unsharded run")
            for (variant, build) in builds {
                let artifact = build["artifact"] as? [String: Any] ?? [:]
                #expect(build["status"] as? String == "succeeded", "\(variant): \(build)")
                #expect((artifact["path"] as? String ?? "").hasPrefix(hub.output + "/\(variant)/"), "\(variant): \(artifact)")
                if let host = builtBy[variant] {
                    #expect(artifact["signing_key"] as? String == fingerprints[host], "\(variant) names the key of the host that signed it")
                }
            }
            let runs = try hub.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.count == 3)
            #expect(Set(runs.compactMap { $0["shard"] as? String }) == ["1/3", "2/3", "3/3"])
            #expect(Set(runs.compactMap { $0["merged_from"] as? String }) == Set(hosts.map(\.state)))
            #expect(runs.allSatisfy { $0["status"] as? String == "succeeded" && $0["fleet"] as? String == "demo" }, "\(runs)")
            #expect(Set(runs.compactMap { $0["run_id"] as? Int }).count == 3, "run ids unique after the merge")
            // The hub's report page shows the whole fleet, each variant from the shard that built it.
            let page = (try? String(contentsOfFile: hub.output + "/index.html", encoding: .utf8)) ?? ""
            #expect(builds.keys.allSatisfy { page.contains("id=\"variant-\($0)\" data-status=\"succeeded\"") }, "merge left no whole-fleet report")

            // Each image verifies with its own host's public key, not with another host's.
            if let (variant, host) = builtBy.min(by: { $0.key < $1.key }), let image = (builds[variant]?["artifact"] as? [String: Any])?["path"] as? String {
                let own = try hub.cli(["verify", "--key", hosts[host].directory + "/keys/host.pub.pem", image])
                #expect(own.status == 0, "\(own)")
                let other = try hub.cli(["verify", "--key", hosts[(host + 1) % 3].directory + "/keys/host.pub.pem", image])
                #expect(other.exited && other.status == 1, "another host's key must not verify \(variant): \(other)")
            }

            let again = try hub.cli(["merge"] + hosts.map(\.state))
            #expect(again.status == 0 && again.stdout.contains("nothing to merge"), "\(again)")
            let next = try hub.cli(["build", "--json"], timeout: 600)
            #expect(next.exited && next.status == 0, "\(next)")
            #expect(statuses(try parseJSON(next.stdout)) == Dictionary(uniqueKeysWithValues: expected.keys.map { ($0, "up-to-date") }),
                    "the hub's next run builds nothing: \(next.stdout)")
        }

        @Test("A shard killed mid-run is merged as interrupted, and merged again after its re-run the record is whole")
        func killedShardMergedThenCorrected() throws {
            let key = randomStateKey()
            let host = try DemoFleet("merge-killed", edit: twelveVariants())
            defer { host.remove() }
            let hub = try DemoFleet("merge-killed-hub", edit: twelveVariants())
            defer { hub.remove() }
            try installStateKey(key, in: host)
            try installStateKey(key, in: hub)
            let slice = (try host.json(["plan", "--shard", "1/3"])["variants"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            try #require(slice.count == 4, "12 variants in 3 shards: \(slice)")

            let child = try host.start(["build", "--shard", "1/3", "--parallel", "1"])
            let (built, inFlight) = try waitForFirstImageAndNextCopy(child)
            child.send(SIGKILL)
            _ = try? child.finish(timeout: 60)

            try bringImages(from: host, to: hub)
            let first = try hub.cli(["merge", host.state, "--json"])
            #expect(first.status == 0, "\(first)")
            let counts = ((try parseJSON(first.stdout)["shards"] as? [[String: Any]])?.first?["runs"] as? [String: Any]) ?? [:]
            #expect(counts["ended_as_interrupted"] as? Int == 1, "the killed run is recorded ended: \(first.stdout)")
            let runs = try hub.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.map { $0["status"] as? String } == ["interrupted"], "\(runs)")
            let partial = try latestBuilds(hub)
            #expect(partial[built]?["status"] as? String == "succeeded", "\(built): \(String(describing: partial[built]))")
            #expect(partial[inFlight]?["status"] as? String == "interrupted", "\(inFlight): \(String(describing: partial[inFlight]))")

            let rerun = try host.cli(["build", "--shard", "1/3", "--json"], timeout: 600)
            #expect(rerun.exited && rerun.status == 0, "\(rerun)")
            #expect(statuses(try parseJSON(rerun.stdout))[built] == "up-to-date")
            try bringImages(from: host, to: hub)
            let second = try hub.cli(["merge", host.state])
            #expect(second.status == 0 && second.stdout.contains("runs 1 added"), "\(second)")

            let whole = try latestBuilds(hub)
            #expect(contentOf(whole).filter { slice.contains($0.key) } == contentOf(try latestBuilds(host)).filter { slice.contains($0.key) })
            #expect(slice.allSatisfy { ["succeeded", "up-to-date"].contains(whole[$0]?["status"] as? String ?? "") }, "\(whole)")
            let hubRuns = try hub.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(hubRuns.compactMap { $0["status"] as? String }.sorted() == ["interrupted", "succeeded"], "\(hubRuns)")
            let next = try hub.cli(["build", "--shard", "1/3", "--json"], timeout: 600)
            #expect(statuses(try parseJSON(next.stdout)) == Dictionary(uniqueKeysWithValues: slice.map { ($0, "up-to-date") }), "\(next)")
        }

        @Test("A shard with no variants (a fleet smaller than N) records its empty run, builds nothing and merges")
        func emptyShardRecordsItsRun() throws {
            let key = randomStateKey()
            let host = try DemoFleet("merge-empty-shard")
            defer { host.remove() }
            try installStateKey(key, in: host)
            // Six variants in nine shards: at least three shards are empty.
            let planned = try host.json(["plan", "--shards", "9"])["variants"] as? [[String: Any]] ?? []
            let used = Set(planned.compactMap { $0["shard"] as? String })
            let empty = try #require((1...9).map { "\($0)/9" }.first { !used.contains($0) })
            let outcome = try host.cli(["build", "--shard", empty, "--json"])
            #expect(outcome.exited && outcome.status == 0, "\(outcome)")
            #expect(statuses(try parseJSON(outcome.stdout)).isEmpty)
            // No image; only the report page of this state's records.
            let placed = ((try? FileManager.default.contentsOfDirectory(atPath: host.output)) ?? []).filter { !$0.hasPrefix(".") }
            #expect(placed == ["index.html"], "an empty shard placed \(placed)")
            let runs = try host.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(runs.count == 1 && runs.first?["shard"] as? String == empty && runs.first?["status"] as? String == "succeeded", "\(runs)")
            #expect((runs.first?["counts"] as? [String: Any])?["planned"] as? Int == 0, "\(runs)")

            let hub = try DemoFleet("merge-empty-hub")
            defer { hub.remove() }
            try installStateKey(key, in: hub)
            let merged = try hub.cli(["merge", host.state])
            #expect(merged.exited && merged.status == 0 && merged.stdout.contains("runs 1 added"), "\(merged)")
            let hubRuns = try hub.json(["runs"])["runs"] as? [[String: Any]] ?? []
            #expect(hubRuns.map { $0["shard"] as? String } == [empty], "\(hubRuns)")
        }

        @Test("merge refuses, with exit 2 and nothing written, a state with no secret.key and a shard of another fleet")
        func mergeRefusesBadShards() throws {
            let shard = try DemoFleet("merge-bad-shard", edit: keepSites(1))
            defer { shard.remove() }
            let key = randomStateKey()
            try installStateKey(key, in: shard)
            try #require(try shard.cli(["build"]).status == 0)

            let keyless = try DemoFleet("merge-bad-keyless", edit: keepSites(1))
            defer { keyless.remove() }
            let refused = try keyless.cli(["merge", shard.state])
            #expect(refused.exited && refused.status == 2 && refused.stderr.contains("secret.key"), "\(refused)")
            #expect(!FileManager.default.fileExists(atPath: keyless.database), "a database was made by a refused merge")

            let other = try DemoFleet("merge-bad-other", edit: { manifest in
                keepSites(1)(&manifest)
                manifest["fleet"] = "another-fleet"
            })
            defer { other.remove() }
            try installStateKey(key, in: other)
            let wrongFleet = try other.cli(["merge", shard.state])
            #expect(wrongFleet.exited && wrongFleet.status == 2 && wrongFleet.stderr.contains("fleet"), "\(wrongFleet)")
            #expect(!FileManager.default.fileExists(atPath: other.database), "a database was made by a refused merge")
        }
    }
}
