import Testing
import ZeroMQ

@testable import ReinActors

/// Bound bulk sockets are watched by a connection monitor on a thread of its own. Closing them
/// (and their peers) in any order must leave the context working: a monitor closed while its
/// socket still had connections to wind down once blocked libzmq's I/O thread, and with it every
/// socket of the context (`rein bench runtime --parts broadcast` stalled at its second or third
/// round of subscribers).
@Suite("Bulk sockets: closing watched sockets never stalls the context", .serialized)
struct BulkLifecycleTests {
    /// Rounds of one PUB and four SUBs, and four PUSH/PULL pairs, on one context, each closed as
    /// the broadcast benchmark closes them; every round must deliver.
    @Test(.timeLimit(.minutes(2)))
    func roundsOfPublishersSubscribersAndPairsAllDeliver() async throws {
        let context = try ZMQContext()
        for round in 0..<8 {
            let publisher = try BulkSender(
                context: context, node: .random(), link: .bind("tcp://127.0.0.1:*"), pattern: .pub,
                highWaterMark: 4, logger: quiet)
            let endpoint = try #require(publisher.endpoint)
            let subscribers = (0..<4).map { _ in
                BulkReceiver(context: context, link: .connect(endpoint), pattern: .sub, logger: quiet)
            }
            let pulls = (0..<4).map { _ in
                BulkReceiver(context: context, link: .bind("tcp://127.0.0.1:*"), logger: quiet)
            }
            var pushes: [BulkSender] = []
            for pull in pulls {
                pushes.append(
                    try BulkSender(context: context, node: .random(), link: .connect(await pull.endpoint())))
            }
            for push in pushes { try await push.send([WireFrame([1, 2, 3])], policyVersion: 1) }
            for pull in pulls {
                var iterator = pull.makeAsyncIterator()
                #expect(try await iterator.next()?.first?.header.policyVersion == 1, "round \(round)")
            }
            // A subscription is live some time after connecting (PUB drops before): publish until
            // each subscriber has a message. A stalled context never delivers.
            let received = Locked(Set<Int>())
            let listeners = subscribers.enumerated().map { index, subscriber in
                Task {
                    var iterator = subscriber.makeAsyncIterator()
                    if try await iterator.next() != nil { received.withLock { _ = $0.insert(index) } }
                }
            }
            let all = { received.withLock { $0.count } == subscribers.count }
            var attempts = 0
            while attempts < 400, !all() {
                try await publisher.send([WireFrame([UInt8(round)])], policyVersion: UInt64(attempts))
                try await Task.sleep(for: .milliseconds(25))
                attempts += 1
            }
            #expect(
                all(),
                "round \(round): a subscriber received nothing in \(attempts) publishes")
            for listener in listeners { listener.cancel() }
            for push in pushes { push.close() }
            for pull in pulls { pull.close() }
            for subscriber in subscribers { subscriber.close() }
            publisher.close()
        }
    }
}
