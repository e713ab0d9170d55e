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
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits ended (cancelled, or past their deadline) before they were registered.
        var ended: Set<UInt64> = []
        /// Waits not over yet.
        var pending: Set<UInt64> = []
    }

    private let state = Mutex(State())

    init() {}

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

    /// Suspends until a ``notify()`` after generation `seen`, until `deadline` (a timer, not a
    /// poll), or until the task is cancelled — whichever comes first.
    func wait(after seen: UInt64, until deadline: ContinuousClock.Instant? = nil) async {
        let id = state.withLock { state in
            defer { state.nextID &+= 1 }
            state.pending.insert(state.nextID)
            return state.nextID
        }
        let timer = deadline.map { deadline in
            Task { [weak self] in
                do {
                    try await Task.sleep(until: deadline, clock: .continuous)
                } catch {
                    return  // the wait ended first
                }
                self?.end(id)
            }
        }
        defer { timer?.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.generation != seen || state.ended.remove(id) != nil { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            end(id)
        }
        // An end (cancellation, deadline) that came after the wait was over leaves nothing behind.
        state.withLock { state in
            state.pending.remove(id)
            state.ended.remove(id)
        }
    }

    /// Ends the wait `id` (cancelled, or past its deadline), registered yet or not.
    private func end(_ id: UInt64) {
        let waiter = state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                if state.pending.contains(id) { state.ended.insert(id) }
                return CheckedContinuation<Void, Never>?.none
            }
            return waiter
        }
        waiter?.resume()
    }
}
