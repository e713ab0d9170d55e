import Foundation
import Synchronization

/// One long-lived thread that runs jobs one at a time, in the order they come: the learner's steps
/// and tracker observations, which are long and CPU-bound and must not hold a thread of the
/// shared cooperative pool (heartbeats need it).
///
/// A thread per step cost its creation, the first touches of a fresh stack and an `munmap` at its
/// end on every step: at 256 workers and ~130 steps a second, that was a visible part of the
/// learner's serving cost. The thread waits on a semaphore between jobs (no polling) and ends when
/// the owner is gone.
final class SerialThread: Sendable {
    private struct Jobs {
        var queue: [@Sendable () -> Void] = []
        var closed = false
    }

    /// What the owner and the thread share (the thread holds this, not the owner).
    private final class Inbox: Sendable {
        let jobs = Mutex(Jobs())
        let ready = DispatchSemaphore(value: 0)
    }

    private let inbox = Inbox()

    /// Starts the thread, named `name`, with a stack of `stackSize` bytes.
    init(name: String, stackSize: Int = 8 << 20) {
        let inbox = inbox
        let thread = Thread {
            while true {
                inbox.ready.wait()
                let job: (@Sendable () -> Void)? = inbox.jobs.withLock { state in
                    state.queue.isEmpty ? nil : state.queue.removeFirst()
                }
                guard let job else { return }  // closed, and nothing left
                job()
            }
        }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    deinit { close() }

    /// Lets the thread end once the jobs already queued have run.
    func close() {
        let first = inbox.jobs.withLock { state in
            defer { state.closed = true }
            return !state.closed
        }
        if first { inbox.ready.signal() }
    }

    /// Runs `body` on the thread after the jobs before it, and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let queued = inbox.jobs.withLock { state in
                guard !state.closed else { return false }
                state.queue.append { continuation.resume(returning: body()) }
                return true
            }
            if queued {
                inbox.ready.signal()
            } else {
                // Closed (the owner is going away): run it here rather than never answer.
                continuation.resume(returning: body())
            }
        }
    }
}
