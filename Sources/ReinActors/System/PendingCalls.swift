import Synchronization

/// A reply as the caller receives it: the outcome and the frames after the envelope.
struct InboundReply: Sendable {
    var outcome: ReplyEnvelope.Outcome
    var frames: ArraySlice<WireFrame>
}

/// The calls waiting for an answer, and the single place where each one ends.
///
/// Every way a call can end — reply, remote error, timeout, cancellation, peer loss, shutdown —
/// goes through ``complete(_:with:)``, which removes the entry under the lock and resumes its
/// continuation outside it. Whoever removes the entry resumes it; everyone else finds nothing. So
/// each call completes exactly once, whatever races.
final class PendingCalls: Sendable {
    private struct Entry {
        var continuation: CheckedContinuation<InboundReply, any Error>
        var callee: ActorID
        var target: String
        var timeout: Duration?
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var shutDownError: RemoteCallError?
        var completed: UInt64 = 0
    }

    private let state = Mutex(State())
    private let deadlines: Deadlines

    init(name: String) {
        let box = WeakBox<PendingCalls>()
        deadlines = Deadlines(
            name: name, isLive: { id in box.value?.isPending(id) ?? false },
            expire: { ids in box.value?.expire(ids) })
        box.value = self
    }

    deinit { deadlines.stop() }

    /// Adds a call. Returns the shutdown error instead if the system is shut down (the caller
    /// must then resume the continuation itself).
    func register(
        _ id: UInt64, callee: ActorID, target: String,
        continuation: CheckedContinuation<InboundReply, any Error>
    ) -> RemoteCallError? {
        state.withLock { state in
            if let error = state.shutDownError { return error }
            state.entries[id] = Entry(continuation: continuation, callee: callee, target: target)
            return nil
        }
    }

    /// Fails call `id` with ``RemoteCallError/Code/timedOut`` if it is still pending after `timeout`.
    func armTimeout(_ id: UInt64, after timeout: Duration) {
        let armed = state.withLock { state -> Bool in
            guard state.entries[id] != nil else { return false }
            state.entries[id]!.timeout = timeout
            return true
        }
        if armed { deadlines.add(id, at: ContinuousClock.now.advanced(by: timeout)) }
    }

    private func isPending(_ id: UInt64) -> Bool { state.withLock { $0.entries[id] != nil } }

    private func expire(_ ids: [UInt64]) {
        for id in ids {
            let entry = state.withLock { state -> Entry? in
                let entry = state.entries.removeValue(forKey: id)
                if entry != nil { state.completed += 1 }
                return entry
            }
            guard let entry else { continue }
            let timeout = entry.timeout.map { "\($0)" } ?? "?"
            entry.continuation.resume(
                throwing: RemoteCallError(
                    .timedOut, "\(entry.target) on \(entry.callee): no reply within \(timeout)"))
        }
    }

    /// Ends call `id` with `result` if it is still pending. Returns whether this call ended it.
    @discardableResult
    func complete(_ id: UInt64, with result: Result<InboundReply, any Error>) -> Bool {
        let entry = state.withLock { state -> Entry? in
            let entry = state.entries.removeValue(forKey: id)
            if entry != nil { state.completed += 1 }
            return entry
        }
        guard let entry else { return false }
        entry.continuation.resume(with: result)
        return true
    }

    /// Ends every call to `node` with `error`.
    func failAll(to node: NodeID, with error: RemoteCallError) {
        let ended = state.withLock { state -> [Entry] in
            let ids = state.entries.compactMap { $0.value.callee.node == node ? $0.key : nil }
            state.completed += UInt64(ids.count)
            return ids.compactMap { state.entries.removeValue(forKey: $0) }
        }
        for entry in ended { entry.continuation.resume(throwing: error) }
    }

    /// Ends every call with `error` and refuses new ones.
    func shutDown(with error: RemoteCallError) {
        let ended = state.withLock { state -> [Entry] in
            state.shutDownError = error
            let all = Array(state.entries.values)
            state.completed += UInt64(all.count)
            state.entries.removeAll()
            return all
        }
        deadlines.stop()
        for entry in ended { entry.continuation.resume(throwing: error) }
    }

    /// Calls still waiting.
    var count: Int { state.withLock { $0.entries.count } }

    /// Calls ended so far (for tests and metrics).
    var completedCount: UInt64 { state.withLock { $0.completed } }
}

/// A weak reference that can be filled in after the closures capturing it were created.
///
/// `@unchecked Sendable`: written once, during the owner's `init`, before any closure can run.
final class WeakBox<Value: AnyObject>: @unchecked Sendable {
    weak var value: Value?
}
