import Foundation

/// One slice of a fleet's variants, `K/N` (1 ≤ K ≤ N): what one host, one GitHub Actions job or
/// one Kubernetes Indexed Job pod builds.
///
/// The assignment is fixed by the variant ids alone: the variants are ordered by the SHA-256 of
/// their id and cut into N runs of consecutive variants whose sizes differ by at most one. So
/// every variant is in exactly one shard, shards are balanced within one variant, the same
/// manifest gives the same shards on every host and with every version, and adding or removing a
/// variant moves at most N − 1 others (one across each cut), however large the fleet.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// 1-based.
    public var index: Int
    public var count: Int

    /// GitHub Actions refuses a matrix of more than 256 jobs.
    public static let githubMatrixLimit = 256

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// Parses `K/N`; the error says what to write.
    public static func parse(_ text: String) -> Result<Shard, ShardError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            return .failure(ShardError("\"\(text)\" is not a shard; write K/N, e.g. 2/8 (the second of eight)"))
        }
        guard count >= 1 else { return .failure(ShardError("\"\(text)\": the number of shards must be at least 1")) }
        guard (1...count).contains(index) else {
            return .failure(ShardError("\"\(text)\": the shard number must be between 1 and \(count)"))
        }
        return .success(Shard(index: index, count: count))
    }

    /// The shard (1…`count`) of each id.
    public static func assign(_ ids: [String], count: Int) -> [String: Int] {
        precondition(count >= 1)
        let keyed: [(key: String, id: String)] = ids.map { id in (key: Digest.sha256Hex(Array(id.utf8)), id: id) }
        let ordered = keyed.sorted { (a: (key: String, id: String), b: (key: String, id: String)) -> Bool in
            a.key != b.key ? a.key < b.key : a.id < b.id
        }
        var shards: [String: Int] = [:]
        shards.reserveCapacity(ids.count)
        let total = ordered.count
        for (position, entry) in ordered.enumerated() {
            // Position p goes to the shard whose run [⌊(k−1)·n/N⌋, ⌊k·n/N⌋) holds it.
            shards[entry.id] = (position * count) / max(total, 1) + 1
        }
        return shards
    }

    /// The ids of `ids` in this shard, in their given order.
    public func select(_ ids: [String]) -> Set<String> {
        let assignment = Self.assign(ids, count: count)
        return Set(ids.filter { assignment[$0] == index })
    }
}

public struct ShardError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
