import Foundation

/// The deadlines of pending calls, enforced by one thread per system: no task, timer or
/// allocation per call beyond one heap entry.
///
/// Entries are never removed when a call ends early (that would need a search); an expired entry
/// whose call already ended is simply a no-op for ``PendingCalls``. The heap is compacted when
/// stale entries dominate it.
///
/// `@unchecked Sendable`: all mutable state is guarded by `condition`'s lock.
final class Deadlines: @unchecked Sendable {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var id: UInt64
    }

    private let condition = NSCondition()
    private var heap: [Entry] = []
    private var stopped = false
    private let expire: @Sendable ([UInt64]) -> Void
    private let isLive: @Sendable (UInt64) -> Bool

    /// Starts the thread.
    /// - Parameters:
    ///   - expire: called (on the deadline thread, without the lock) with calls whose deadline passed.
    ///   - isLive: whether a call is still pending (used to drop stale entries when compacting).
    init(
        name: String, isLive: @escaping @Sendable (UInt64) -> Bool,
        expire: @escaping @Sendable ([UInt64]) -> Void
    ) {
        self.expire = expire
        self.isLive = isLive
        let thread = Thread { [self] in run() }
        thread.name = "rein-deadlines-\(name)"
        thread.start()
    }

    /// Adds a deadline for call `id`.
    func add(_ id: UInt64, at deadline: ContinuousClock.Instant) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return }
        heap.append(Entry(deadline: deadline, id: id))
        siftUp(heap.count - 1)
        if heap[0].id == id { condition.signal() }  // a new earliest deadline: re-arm the wait
        if heap.count > 4096 && heap.count % 4096 == 0 { compact() }
    }

    /// Stops the thread (pending calls are failed by the system's shutdown, not here).
    func stop() {
        condition.lock()
        stopped = true
        heap.removeAll()
        condition.signal()
        condition.unlock()
    }

    private func run() {
        let clock = ContinuousClock()
        condition.lock()
        while !stopped {
            guard let first = heap.first else {
                condition.wait()
                continue
            }
            let now = clock.now
            if first.deadline > now {
                let wait = now.duration(to: first.deadline)
                let (seconds, attoseconds) = wait.components
                _ = condition.wait(
                    until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) * 1e-18))
                continue
            }
            var due: [UInt64] = []
            while let top = heap.first, top.deadline <= now {
                due.append(top.id)
                pop()
            }
            condition.unlock()
            expire(due)
            condition.lock()
        }
        condition.unlock()
    }

    /// Drops entries whose calls already ended (they dominate under heavy traffic).
    private func compact() {
        let live = heap.filter { isLive($0.id) }
        guard live.count < heap.count / 2 else { return }
        heap = live
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    private func pop() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
