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
}
