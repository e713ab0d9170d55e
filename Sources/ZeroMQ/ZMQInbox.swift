import Dispatch
import Foundation
import Synchronization

/// The bridge from a receiving socket to Swift concurrency.
///
/// An inbox starts one dedicated thread that creates and owns a socket, receives on it, and hands
/// the messages to async code in **batches**: after a blocking receive it drains whatever else is
/// already queued (up to `maxBatch`) and yields the whole array at once, so the async hop is paid
/// once per batch instead of once per message (a per-message hop costs a quarter to a third of TCP
/// throughput; see the project docs).
///
/// Backpressure: at most `maxPendingBatches` batches wait for the consumer. When they are all
/// taken up, the thread stops receiving, libzmq's receive high-water mark fills, and senders are
/// pushed back (PUSH blocks, PUB drops) — nothing is dropped inside the inbox.
///
/// The inbox ends when ``stop()`` is called, when its context is shut down, or when the consumer
/// stops iterating; the socket is closed on the owner thread either way.
public final class ZMQInbox: AsyncSequence, Sendable {
    public typealias Element = [[ZMQMessage]]

    private let stream: AsyncThrowingStream<[[ZMQMessage]], any Error>
    private let credits: DispatchSemaphore
    private let stopped = StopFlag()
    private let maxPendingBatches: Int

    /// Starts the owner thread.
    /// - Parameters:
    ///   - context: the context to create the socket in.
    ///   - maxBatch: the most multipart messages delivered in one batch.
    ///   - maxPendingBatches: batches that may wait for the consumer before the thread stops
    ///     receiving.
    ///   - setUp: creates, configures and binds/connects the socket; runs on the owner thread.
    ///   - ready: called on the owner thread once `setUp` succeeded (e.g. to publish the bound
    ///     endpoint).
    public init(
        context: ZMQContext,
        maxBatch: Int = 1024,
        maxPendingBatches: Int = 4,
        setUp: @escaping @Sendable (ZMQContext) throws -> ZMQSocket,
        ready: @escaping @Sendable (ZMQSocket) -> Void = { _ in }
    ) {
        precondition(maxBatch > 0 && maxPendingBatches > 0)
        let (stream, continuation) = AsyncThrowingStream<[[ZMQMessage]], any Error>.makeStream()
        self.stream = stream
        self.maxPendingBatches = maxPendingBatches
        let credits = DispatchSemaphore(value: maxPendingBatches)
        self.credits = credits
        let thread = Thread { [stopped] in
            Self.run(
                context: context, maxBatch: maxBatch, credits: credits, stopped: stopped,
                continuation: continuation, setUp: setUp, ready: ready)
        }
        thread.name = "rein-zmq-inbox"
        continuation.onTermination = { [stopped] _ in
            stopped.set()
            credits.signal()
        }
        thread.start()
    }

    /// Asks the owner thread to close the socket and end the sequence (within ~50 ms).
    public func stop() {
        stopped.set()
        credits.signal()
    }

    private static func run(
        context: ZMQContext, maxBatch: Int, credits: DispatchSemaphore, stopped: StopFlag,
        continuation: AsyncThrowingStream<[[ZMQMessage]], any Error>.Continuation,
        setUp: @Sendable (ZMQContext) throws -> ZMQSocket, ready: @Sendable (ZMQSocket) -> Void
    ) {
        let socket: ZMQSocket
        do {
            socket = try setUp(context)
        } catch {
            continuation.finish(throwing: error)
            return
        }
        defer { socket.close() }
        ready(socket)
        let tick = ZMQWait.timeout(.milliseconds(50))
        while !stopped.isSet {
            credits.wait()
            if stopped.isSet { break }
            var batch: [[ZMQMessage]] = []
            do throws(ZMQError) {
                // Wait for the first message in short ticks so that stop() is noticed.
                while batch.isEmpty {
                    if stopped.isSet { break }
                    if let first = try socket.receiveMultipart(wait: tick) { batch.append(first) }
                }
                while batch.count < maxBatch, let next = try socket.receiveMultipart(wait: .nonBlocking) {
                    batch.append(next)
                }
            } catch  where error.isTerminated {
                if !batch.isEmpty { continuation.yield(batch) }
                break
            } catch {
                continuation.finish(throwing: error)
                return
            }
            if batch.isEmpty { break }
            continuation.yield(batch)
        }
        continuation.finish()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[[ZMQMessage]], any Error>.AsyncIterator
        let credits: DispatchSemaphore

        public mutating func next() async throws -> [[ZMQMessage]]? {
            let batch = try await base.next()
            if batch != nil { credits.signal() }  // the consumer took one batch: allow one more
            return batch
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), credits: credits)
    }
}

/// A thread-safe one-way flag.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
