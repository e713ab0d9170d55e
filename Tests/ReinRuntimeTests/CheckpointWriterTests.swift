import Foundation
import Testing

@testable import ReinRuntime

/// Values written, in order (written from the writer's threads).
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func append(_ value: Int) { lock.withLock { values.append(value) } }
    var written: [Int] { lock.withLock { values } }
}

struct WriteFailed: Error {}

@Suite("Checkpoint writes coalesce")
struct CheckpointWriterTests {
    @Test func atMostOneWriteInFlightAndTheNewestWaitingWins() {
        var state = LatestWins<Int>()
        #expect(state.offer(1) == 1)
        for value in 2...100 { #expect(state.offer(value) == nil) }
        #expect(state.writing && state.waiting == 100 && state.superseded == 98)
        #expect(state.finished() == 100)
        #expect(state.writing && state.waiting == nil)
        #expect(state.finished() == nil)
        #expect(!state.writing)
        #expect(state.offer(101) == 101)
    }

    /// 100 checkpoints submitted while the first is being written: two writes happen, the first
    /// and the newest; nothing else is kept (no wall clock involved: the first write waits for a
    /// gate the test opens).
    @Test func aWriterBusyWithOneCheckpointKeepsOnlyTheNewestOfThoseThatCome() async throws {
        let recorder = Recorder()
        let gate = DispatchSemaphore(value: 0)
        let (started, startedContinuation) = AsyncStream.makeStream(of: Int.self)
        let writer = CoalescingWriter<Int>(name: "test-checkpoint") { value in
            startedContinuation.yield(value)
            if value == 1 { gate.wait() }
            recorder.append(value)
        }
        await writer.submit(1)
        var starts = started.makeAsyncIterator()
        #expect(await starts.next() == 1)
        for value in 2...100 { await writer.submit(value) }
        #expect(await writer.superseded == 98)
        gate.signal()
        try await writer.flush()
        #expect(recorder.written == [1, 100])
        #expect(await writer.written == 2)
        // Idle again: the next value is written at once.
        await writer.submit(101)
        try await writer.flush()
        #expect(recorder.written == [1, 100, 101])
    }

    @Test func flushReportsAFailedLastWrite() async throws {
        let writer = CoalescingWriter<Int>(name: "test-checkpoint") { value in
            if value < 0 { throw WriteFailed() }
        }
        await writer.submit(-1)
        await #expect(throws: WriteFailed.self) { try await writer.flush() }
        await writer.submit(1)
        try await writer.flush()
    }
}
