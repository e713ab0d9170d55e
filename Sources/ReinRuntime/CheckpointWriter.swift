import Foundation

/// The decisions of a coalescing writer: at most one write in flight, and of the values offered
/// while it runs only the newest waits (it replaces any older one, which is never written).
struct LatestWins<Value> {
    /// Whether a write is in flight.
    private(set) var writing = false
    /// The newest value offered during the write in flight.
    private(set) var waiting: Value?
    /// Values replaced by newer ones before they were written.
    private(set) var superseded = 0

    /// `value` is offered: the value to write now, or `nil` if a write is in flight (`value` waits,
    /// replacing whatever waited).
    mutating func offer(_ value: Value) -> Value? {
        guard writing else {
            writing = true
            return value
        }
        if waiting != nil { superseded += 1 }
        waiting = value
        return nil
    }

    /// The write in flight finished: the value to write next, or `nil` (nothing waits; idle).
    mutating func finished() -> Value? {
        guard let next = waiting else {
            writing = false
            return nil
        }
        waiting = nil
        return next
    }
}

/// Writes values (checkpoints) on a thread of its own, one at a time, newest wins: a value
/// submitted while a write runs waits, and replaces any value still waiting. So memory holds at
/// most two values however fast they come, and the last value submitted is always written.
actor CoalescingWriter<Value: Sendable> {
    private var state = LatestWins<Value>()
    private let name: String
    private let write: @Sendable (Value) throws -> Void
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    /// The error of the last write, if it failed (cleared by a later successful one).
    private(set) var lastError: (any Error)?
    /// Writes done (successful or not).
    private(set) var written = 0

    /// A writer running `write` on threads named `name`.
    init(name: String, write: @escaping @Sendable (Value) throws -> Void) {
        self.name = name
        self.write = write
    }

    /// Writes `value` now, or after the write in flight (unless a newer value comes first).
    func submit(_ value: Value) {
        if let now = state.offer(value) { start(now) }
    }

    /// Values replaced before they were written.
    var superseded: Int { state.superseded }

    /// Waits until nothing is written or waiting; throws the last write's error, if it failed.
    func flush() async throws {
        if state.writing { await withCheckedContinuation { idleWaiters.append($0) } }
        if let lastError { throw lastError }
    }

    private func start(_ value: Value) {
        let (name, write) = (self.name, self.write)
        Task {
            do {
                try await onThread(name) { try write(value) }
                finished(nil)
            } catch {
                finished(error)
            }
        }
    }

    private func finished(_ error: (any Error)?) {
        written += 1
        lastError = error
        if let next = state.finished() {
            start(next)
        } else {
            let waiters = idleWaiters
            idleWaiters = []
            for waiter in waiters { waiter.resume() }
        }
    }
}
