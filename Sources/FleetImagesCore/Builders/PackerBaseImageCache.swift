import Foundation

/// Base mode's "build once, share with every variant": the first variant that needs the fleet's
/// base starts its Packer run; every other variant waits for the same result. The run belongs to
/// no single variant: a variant cancelled or timed out while waiting stops waiting, and only when
/// no variant waits any more is the Packer run cancelled (so one site's timeout does not kill
/// the base the others wait for). A base that failed fails every waiting variant with the same
/// message, once per run; a cancelled one is started again by the next variant that asks.
actor PackerBaseImageCache {
    private var running: Task<Void, Never>?
    private var result: Result<String, any Error>?
    private var waiters: [UInt64: CheckedContinuation<String, any Error>] = [:]
    private var nextWaiter: UInt64 = 0

    func image(_ make: @escaping @Sendable () async throws -> String) async throws -> String {
        switch result {
        case .success(let path)?: return path
        case .failure(let error)?: throw error
        case nil: break
        }
        nextWaiter += 1
        let id = nextWaiter
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                waiters[id] = continuation
                if running == nil {
                    running = Task {
                        let outcome: Result<String, any Error>
                        do { outcome = .success(try await make()) } catch { outcome = .failure(error) }
                        self.finish(outcome)
                    }
                }
            }
        } onCancel: {
            Task { await self.stopWaiting(id) }
        }
    }

    private func finish(_ outcome: Result<String, any Error>) {
        running = nil
        if case .failure(let error) = outcome, error is CancellationError {
            result = nil
        } else {
            result = outcome
        }
        let waiting = waiters
        waiters = [:]
        for continuation in waiting.values { continuation.resume(with: outcome) }
    }

    private func stopWaiting(_ id: UInt64) {
        guard let continuation = waiters.removeValue(forKey: id) else { return }
        continuation.resume(throwing: CancellationError())
        if waiters.isEmpty { running?.cancel() }
    }
}
