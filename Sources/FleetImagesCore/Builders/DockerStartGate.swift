/// Spaces out container starts. packer-builder-arm's entrypoint removes and re-registers the
/// qemu binfmt_misc handlers of the whole host, and each build later takes a loop device with
/// `losetup --find`, which is not atomic (packer-builder-arm issue #163, PR #164): builds that
/// start in the same instant race on both. One gate is shared by all builds of a run.
public actor DockerStartGate {
    public let interval: Duration
    private var next: ContinuousClock.Instant?

    public init(interval: Duration) {
        self.interval = interval
    }

    /// Waits until this caller may start a container; the next caller waits `interval` longer.
    /// Throws `CancellationError` when the task is cancelled while waiting.
    public func waitForTurn() async throws {
        let now = ContinuousClock.now
        let slot = max(now, next ?? now)
        next = slot + interval
        if slot > now {
            try await Task.sleep(until: slot, clock: .continuous)
        }
    }
}
