import Foundation

extension Array where Element: Sendable {
    /// `map` with the calls spread over every core (`DispatchQueue.concurrentPerform`); the
    /// results keep the order of the elements. For independent, CPU-bound work on many elements:
    /// checking and planning thousands of variants.
    func concurrentMap<T: Sendable>(_ transform: @Sendable (Element) -> T) -> [T] {
        let slots = IndexedSlots<T>(count: count)
        self.withUnsafeBufferPointer { elements in
            // The buffer outlives concurrentPerform, which returns only when every call has.
            nonisolated(unsafe) let elements = elements
            DispatchQueue.concurrentPerform(iterations: elements.count) { index in
                slots.set(index, transform(elements[index]))
            }
        }
        return slots.values()
    }
}

/// Per-index results written from `concurrentPerform`.
private final class IndexedSlots<T>: @unchecked Sendable {
    // @unchecked: every access goes through `lock`.
    private var slots: [T?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: T) { lock.withLock { slots[index] = value } }
    func values() -> [T] { lock.withLock { slots.map { $0! } } }
}

/// A map filled from many threads at once (digests of files shared by many variants). Two
/// threads may compute the same value; both get it, and it is stored once.
final class ConcurrentCache<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `values` is touched under `lock` only.
    private var values: [String: Value] = [:]
    private let lock = NSLock()

    func value(for key: String, compute: () throws -> Value) rethrows -> Value {
        if let known = lock.withLock({ values[key] }) { return known }
        let value = try compute()
        lock.withLock { values[key] = value }
        return value
    }
}
