import Synchronization

/// "Something changed": wakes every task waiting for a condition, so a wait is a suspension rather
/// than a loop that sleeps and looks again.
///
/// Race-free through a generation count: a waiter reads ``generation`` before it checks its
/// condition, and waits only for a generation after that one — a ``notify()`` between the check
/// and the wait makes the wait return at once. After a wait returns the waiter checks its
/// condition again (a wakeup says that something changed, not what).
final class Wakeups: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextID: UInt64 = 0
        /// Registered waits, by their ``Deadline``'s id.
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Deadlines made and not yet released.
        var live: Set<UInt64> = []
        /// Live deadlines that have passed, or whose waiting task was cancelled (also before its
        /// wait registered): every wait on them returns at once.
        var expired: Set<UInt64> = []
        /// Timers started so far (one per ``Deadline`` with an instant).
        var timers = 0
    }

    /// One deadline for the successive waits of a long poll: one timer however often the caller
    /// is woken and waits again (a timer per wait made every ``notify()`` cost a task and a timer
    /// per waiting caller: hundreds of parked work requests per trained batch at 256 workers).
    struct Deadline: Sendable {
        fileprivate let id: UInt64
        fileprivate let timer: Task<Void, Never>?
    }

    private let state = Mutex(State())

    init() {}

    /// Waits registered now.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Timers started so far.
    var timersStarted: Int { state.withLock { $0.timers } }

    /// The number of ``notify()`` calls so far.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Wakes every waiter.
    func notify() {
        let waiting = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiting { waiter.resume() }
    }

    /// Wakes the `count` earliest waiters (by when their ``Deadline`` was made): those that can be
    /// given something, rather than every one.
    func notify(first count: Int) {
        guard count > 0 else { return }
        let waking = state.withLock { state in
            state.generation &+= 1
            let ids = state.waiters.keys.sorted().prefix(count)
            return ids.compactMap { state.waiters.removeValue(forKey: $0) }
        }
        for waiter in waking { waiter.resume() }
    }

    /// Suspends until a ``notify()`` after generation `seen`, until `deadline` (a timer, not a
    /// poll), or until the task is cancelled — whichever comes first.
    func wait(after seen: UInt64, until deadline: ContinuousClock.Instant? = nil) async {
        let once = self.deadline(deadline)
        defer { release(once) }
        await wait(after: seen, deadline: once)
    }

    /// A deadline for ``wait(after:deadline:)`` at `instant` (`nil`: none, the waits end on a
    /// notify or a cancellation only); end it with ``release(_:)``.
    func deadline(_ instant: ContinuousClock.Instant?) -> Deadline {
        let id = state.withLock { state in
            defer { state.nextID &+= 1 }
            state.live.insert(state.nextID)
            if instant != nil { state.timers += 1 }
            return state.nextID
        }
        let timer = instant.map { instant in
            Task { [weak self] in
                do {
                    try await Task.sleep(until: instant, clock: .continuous)
                } catch {
                    return  // released first
                }
                self?.expire(id)
            }
        }
        return Deadline(id: id, timer: timer)
    }

    /// Suspends until a ``notify()`` after generation `seen`, until `deadline` has passed, or until
    /// the task is cancelled — whichever comes first; at once if `deadline` has passed already.
    func wait(after seen: UInt64, deadline: Deadline) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.generation != seen || state.expired.contains(deadline.id) { return true }
                    state.waiters[deadline.id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            expire(deadline.id)
        }
    }

    /// Stops `deadline`'s timer and forgets it.
    func release(_ deadline: Deadline) {
        deadline.timer?.cancel()
        state.withLock { state in
            state.live.remove(deadline.id)
            state.expired.remove(deadline.id)
        }
    }

    /// Marks `id`'s deadline passed and ends its wait, if one is registered. A deadline released
    /// already (its timer fired as it was released) leaves nothing behind.
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.live.contains(id) else { return nil }
            state.expired.insert(id)
            return state.waiters.removeValue(forKey: id)
        }
        waiter?.resume()
    }
}
