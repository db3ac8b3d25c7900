import Foundation
import Testing
@testable import FleetImagesCore

/// `--shard K/N`: a stable, balanced slice of the fleet by variant id.
@Suite("shards")
struct ShardTests {
    static func ids(_ count: Int, prefix: String = "site") -> [String] { (0..<count).map { "\(prefix)-\($0)" } }

    @Test("every variant is in exactly one shard and shard sizes differ by at most one", arguments: [0, 1, 5, 6, 7, 100, 1001])
    func partitionAndBalance(count: Int) {
        let ids = Self.ids(count)
        for shards in [1, 2, 3, 8, 256] {
            let assignment = Shard.assign(ids, count: shards)
            #expect(assignment.count == ids.count)
            #expect(assignment.values.allSatisfy { (1...shards).contains($0) })
            var sizes = Array(repeating: 0, count: shards)
            for index in assignment.values { sizes[index - 1] += 1 }
            #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1, "\(count) variants in \(shards) shards: \(sizes)")
            // select() agrees and the selections are disjoint and complete.
            var union = Set<String>()
            for index in 1...shards {
                let selected = Shard(index: index, count: shards).select(ids)
                #expect(union.isDisjoint(with: selected))
                union.formUnion(selected)
            }
            #expect(union == Set(ids))
        }
    }

    @Test("adding or removing one site moves at most N − 1 others, whatever the fleet's size")
    func stability() {
        for shards in [2, 8, 64] {
            let ids = Self.ids(1000)
            let before = Shard.assign(ids, count: shards)
            for added in ["new-site", "aaa", "zzz-last", "site-1000"] {
                let after = Shard.assign(ids + [added], count: shards)
                let moved = ids.filter { before[$0] != after[$0] }.count
                #expect(moved <= shards - 1, "adding \(added) moved \(moved) of 1000 with \(shards) shards")
            }
            let removed = Shard.assign(ids.filter { $0 != "site-500" }, count: shards)
            let moved = ids.filter { $0 != "site-500" && before[$0] != removed[$0] }.count
            #expect(moved <= shards - 1, "removing one moved \(moved)")
            // The order of the manifest does not matter.
            #expect(Shard.assign(ids.reversed(), count: shards) == before)
        }
    }

    @Test("the assignment is fixed by the ids: the demo fleet's shards, as every host and version computes them")
    func fixedAssignment() {
        let demo = ["zrh-lab", "gva-plant", "dub-depot", "iad-warehouse", "pdx-field", "syd-office"]
        #expect(Shard.assign(demo, count: 3) == ["gva-plant": 1, "iad-warehouse": 1, "zrh-lab": 2, "pdx-field": 2, "dub-depot": 3, "syd-office": 3])
    }

    @Test("K/N is parsed; anything else says what to write", arguments: [
        ("2/8", "ok"), ("1/1", "ok"), ("0/3", "between 1 and 3"), ("4/3", "between 1 and 3"), ("1/0", "at least 1"),
        ("2", "write K/N"), ("a/b", "write K/N"), ("1/2/3", "write K/N"), ("", "write K/N"),
    ])
    func parse(text: String, expected: String) {
        switch Shard.parse(text) {
        case .success(let shard): #expect(expected == "ok" && shard.description == text)
        case .failure(let problem): #expect(problem.description.contains(expected), "\(problem)")
        }
    }

    @Test("the GitHub Actions matrix has one entry per shard")
    func githubMatrix() throws {
        let text = try PlanReport.githubMatrix(shards: 3)
        #expect(text == #"{"include":[{"shard":"1/3"},{"shard":"2/3"},{"shard":"3/3"}]}"#)
    }

    @Test("a shard keeps its slice of the whole fleet, then --only narrows it; an empty shard is no error")
    func loaderSelects() throws {
        let fleet = try TestFleet(sites: ["alpha", "beta", "gamma", "delta"])
        try fleet.writeManifest(sites: ["alpha", "beta", "gamma", "delta"])
        let all = fleet.load().variants.map(\.id)
        var union: [String] = []
        for index in 1...3 {
            let outcome = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], shard: Shard(index: index, count: 3))
            #expect(!outcome.hasErrors, "\(outcome.diagnostics)")
            #expect(outcome.allVariantIDs == all)
            union += outcome.variants.map(\.id)
        }
        #expect(union.sorted() == all.sorted())
        let assignment = Shard.assign(all, count: 2)
        let first = all.filter { assignment[$0] == 1 }
        let narrowed = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], only: "a*", shard: Shard(index: 1, count: 2))
        #expect(narrowed.variants.map(\.id) == first.filter { $0.hasPrefix("a") })
        #expect(!narrowed.hasErrors)
        let empty = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], shard: Shard(index: 9, count: 9))
        #expect(empty.variants.isEmpty && !empty.hasErrors)
        // --only that matches nothing anywhere is still an error; matches in other shards are not.
        let nowhere = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], only: "zzz*", shard: Shard(index: 1, count: 2))
        #expect(nowhere.diagnostics.contains { $0.location == "--only" && $0.severity == .error })
        let elsewhere = all.first { assignment[$0] == 2 }!
        let other = FleetLoader.load(manifestPath: fleet.manifestPath, environment: [:], only: elsewhere, shard: Shard(index: 1, count: 2))
        #expect(other.variants.isEmpty && !other.hasErrors)
    }
}
