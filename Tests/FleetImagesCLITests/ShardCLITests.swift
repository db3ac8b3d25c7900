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
