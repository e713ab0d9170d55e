import Foundation
import Testing

@testable import ReinActors

/// Membership events reach subscribers while other subscribers' tasks are being cancelled: a
/// yield made under the membership's state lock deadlocked against a cancelling task's stream
/// termination handler (which takes that lock while the task's status lock is held).
@Suite("Membership streams")
struct MembershipStreamTests {
    @Test(.timeLimit(.minutes(2)))
    func eventsFlowWhileSubscribersAreCancelled() async {
        let membership = Membership()
        let stop = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        // Joins and removals on a thread of their own, as the transport's I/O loop makes them.
        let churn = Thread {
            defer { done.signal() }
            var round = 0
            while stop.wait(timeout: .now()) == .timedOut {
                let node = NodeID.random()
                _ = membership.join(Member(node: node, name: "m\(round)"))
                _ = membership.remove(node, left: round % 2 == 0, reason: "test")
                round += 1
            }
        }
        churn.start()
        // Subscribers that wait for an event, then are cancelled, thousands of times.
        for _ in 0..<2_000 {
            let subscriber = Task {
                for await _ in membership.events() where Task.isCancelled { break }
            }
            await Task.yield()
            subscriber.cancel()
            await subscriber.value
        }
        stop.signal()
        while done.wait(timeout: .now()) == .timedOut { await Task.yield() }
        // The stream still works: a new subscriber sees the members there are, in order.
        let node = NodeID.random()
        var events = membership.events().makeAsyncIterator()
        #expect(membership.join(Member(node: node, name: "last")))
        var saw: MembershipEvent?
        repeat { saw = await events.next() } while saw != .joined(Member(node: node, name: "last"))
        _ = membership.remove(node, left: true, reason: "")
        #expect(await events.next() == .left(Member(node: node, name: "last")))
    }

    /// A stranger saying hello under ever new ids makes a tombstone of each: the table keeps the
    /// newest ones only, and a forgotten node is no longer ignored (nor a member).
    @Test func onlyTheNewestTombstonesAreKept() {
        let membership = Membership(maxTombstones: 4)
        let nodes = (0..<10).map { _ in NodeID.random() }
        for (i, node) in nodes.enumerated() {
            #expect(membership.join(Member(node: node, name: "stranger-\(i)")))
            #expect(membership.remove(node, left: i % 2 == 0, reason: "silent") != nil)
            #expect(membership.tombstoneCount == min(i + 1, 4))
        }
        for node in nodes.prefix(6) {
            #expect(membership.hasLeft(node) == nil)
            #expect(membership.seen(node, policyVersion: 0), "a forgotten node's message is not ignored")
            #expect(membership.member(node) == nil)
        }
        for (i, node) in nodes.enumerated().suffix(4) {
            #expect(membership.hasLeft(node) == (i % 2 == 0))
            #expect(!membership.seen(node, policyVersion: 0))
            #expect(!membership.join(Member(node: node, name: "again")), "a tombstone cannot rejoin")
        }
    }
}
