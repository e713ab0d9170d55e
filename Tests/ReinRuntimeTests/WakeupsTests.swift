import Synchronization
import Testing

@testable import ReinRuntime

/// ``Wakeups`` deadlines: one timer for all the waits of a long poll.
@Suite("Wakeups: waits with a shared deadline")
struct WakeupsTests {
    @Test func aNotifyEndsAWaitAndTheDeadlineServesTheNextWaitsWithoutANewTimer() async {
        let wakeups = Wakeups()
        let deadline = wakeups.deadline(.now + .seconds(600))
        defer { wakeups.release(deadline) }
        for _ in 0..<50 {
            let seen = wakeups.generation
            let waiting = Task { await wakeups.wait(after: seen, deadline: deadline) }
            wakeups.notify()  // before or after the wait registers: it returns either way
            await waiting.value
        }
        #expect(wakeups.timersStarted == 1)
    }

    @Test func aPassedDeadlineEndsTheWaitAndEveryLaterOne() async {
        let wakeups = Wakeups()
        let deadline = wakeups.deadline(.now + .milliseconds(20))
        defer { wakeups.release(deadline) }
        await wakeups.wait(after: wakeups.generation, deadline: deadline)  // no notify: the timer ends it
        await wakeups.wait(after: wakeups.generation, deadline: deadline)  // passed already: at once
        #expect(wakeups.generation == 0)
    }

    @Test func aCancelledWaitReturns() async {
        let wakeups = Wakeups()
        let deadline = wakeups.deadline(.now + .seconds(600))
        defer { wakeups.release(deadline) }
        let seen = wakeups.generation
        let waiting = Task { await wakeups.wait(after: seen, deadline: deadline) }
        waiting.cancel()
        await waiting.value
        #expect(wakeups.generation == seen)
    }

    @Test func aWaitWithItsOwnDeadlineStartsATimerEachTime() async {
        let wakeups = Wakeups()
        for _ in 0..<3 {
            let seen = wakeups.generation
            let waiting = Task { await wakeups.wait(after: seen, until: .now + .seconds(600)) }
            wakeups.notify()
            await waiting.value
        }
        #expect(wakeups.timersStarted == 3)
    }

    @Test func notifyFirstWakesTheEarliestWaitersOnly() async {
        let wakeups = Wakeups()
        let deadlines = (0..<4).map { _ in wakeups.deadline(.now + .seconds(600)) }
        defer { deadlines.forEach(wakeups.release) }
        let woken = Woken()
        var tasks: [Task<Void, Never>] = []
        for (i, deadline) in deadlines.enumerated() {
            let seen = wakeups.generation
            tasks.append(
                Task {
                    await wakeups.wait(after: seen, deadline: deadline)
                    woken.ids.withLock { $0.append(i) }
                })
            while wakeups.waiting < i + 1 { await Task.yield() }  // registered, in order
        }
        wakeups.notify(first: 2)
        await tasks[0].value
        await tasks[1].value
        #expect(woken.ids.withLock { $0.sorted() } == [0, 1])
        #expect(wakeups.waiting == 2)
        wakeups.notify()
        for task in tasks { await task.value }
        #expect(woken.ids.withLock { $0.count } == 4)
    }
}

/// The waiters woken so far, in order.
private final class Woken: Sendable {
    let ids = Mutex<[Int]>([])
}
