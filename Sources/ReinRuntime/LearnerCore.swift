import Foundation
import Rein
import ReinModel
import Synchronization

/// The `Learner` with exclusive access by one training task at a time: ``LearnerActor`` starts at
/// most one ``LearnerActor`` training loop, and nothing else touches the learner.
final class LearnerCore: @unchecked Sendable {
    private let learner: Learner
    /// The staleness tracker's model (made on first use; only ``observe(threads:_:)`` touches it).
    private var scratch: GPTModel?
    /// CPU seconds the steps used so far (on ``thread``).
    private let stepCPU = Mutex(0.0)
    /// Where steps and observations run, one at a time.
    private let thread = SerialThread(name: "rein-learner-step")

    init(_ learner: Learner) { self.learner = learner }

    /// CPU seconds the steps used so far (read at any time).
    var stepCPUSeconds: Double { stepCPU.withLock { $0 } }

    /// The optimizer state (never called while ``step(_:)`` runs: see ``LearnerActor``).
    func optimizerState() -> SafeTensors { learner.optimizer.encode() }

    /// Runs `body` with the tracker's scratch model on the core's thread (between learner steps).
    func observe<T: Sendable>(threads: Int, _ body: @escaping @Sendable (GPTModel) throws -> T) async
        -> Result<T, any Error>
    {
        await thread.run { [self] in
            // It runs between learner steps, never during one: it can use the learner's
            // activation memory instead of a second copy of it.
            let model =
                scratch
                ?? (try? GPTModel(
                    sharingWorkspacesOf: learner.model, parameters: learner.model.parameters))
                ?? GPTModel(parameters: learner.model.parameters, threads: threads)
            scratch = model
            return Result { try body(model) }
        }
    }

    /// One learner step on the core's thread (it is long and CPU-bound): the metrics, the new
    /// weights and version, or the error.
    func step(_ batch: RolloutBatch) async -> Result<(LearnerStepMetrics, GPTParameters, Int), any Error> {
        await thread.run { [self] in
            let start = threadCPUSeconds()
            let result = Result { () throws -> (LearnerStepMetrics, GPTParameters, Int) in
                let learned = try learner.step(batch)
                return (learned, learner.model.parameters, learner.version)
            }
            let spent = threadCPUSeconds() - start
            stepCPU.withLock { $0 += spent }
            return result
        }
    }
}

/// Runs `body` on a thread of its own (file writes and hashing would block a thread of the shared
/// cooperative pool, which heartbeats need).
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}

/// CPU seconds the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}
