import Foundation
import Synchronization
import Testing

@testable import ReinRuntime

/// ``SerialThread``: the learner's steps run one at a time, on one long-lived thread.
@Suite("SerialThread: one thread, one job at a time")
struct SerialThreadTests {
    @Test func concurrentCallersRunOneAtATimeOnTheSameThread() async {
        let thread = SerialThread(name: "test-serial")
        let state = Seen()
        await withTaskGroup(of: Int.self) { group in
            for i in 0..<64 {
                group.addTask {
                    await thread.run {
                        state.value.withLock { s in
                            s.active += 1
                            s.most = max(s.most, s.active)
                            s.threads.insert(UInt(bitPattern: Int(bitPattern: pthread_self())))
                        }
                        usleep(200)  // long enough for others to arrive while it runs
                        state.value.withLock { $0.active -= 1 }
                        return i
                    }
                }
            }
            var answered = Set<Int>()
            for await i in group { answered.insert(i) }
            #expect(answered == Set(0..<64))
        }
        let seen = state.value.withLock { $0 }
        #expect(seen.most == 1)
        #expect(seen.threads.count == 1)
    }

    private final class Seen: Sendable {
        let value = Mutex((active: 0, most: 0, threads: Set<UInt>()))
    }

    @Test func jobsQueuedBeforeCloseStillRunAndLaterOnesAreAnswered() async {
        let thread = SerialThread(name: "test-serial-close")
        let first = Task {
            await thread.run {
                usleep(1000)
                return 1
            }
        }
        let second = Task { await thread.run { 2 } }
        let answers = await (first.value, second.value)
        thread.close()
        let late = await thread.run { 3 }  // closed: runs on the caller rather than never answering
        #expect(answers == (1, 2) && late == 3)
    }
}
