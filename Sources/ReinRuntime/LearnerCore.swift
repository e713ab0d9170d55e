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
    /// CPU seconds of every step's thread so far.
    private let stepCPU = Mutex(0.0)

    init(_ learner: Learner) { self.learner = learner }

    /// CPU seconds the step threads used so far (read at any time).
    var stepCPUSeconds: Double { stepCPU.withLock { $0 } }

    /// The optimizer state (never called while ``step(_:)`` runs: see ``LearnerActor``).
    func optimizerState() -> SafeTensors { learner.optimizer.encode() }

    /// Runs `body` with the tracker's scratch model on a thread of its own (between learner steps).
    func observe<T: Sendable>(threads: Int, _ body: @escaping @Sendable (GPTModel) throws -> T) async
        -> Result<T, any Error>
    {
        await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                // It runs between learner steps, never during one: it can use the learner's
                // activation memory instead of a second copy of it.
                let model =
                    scratch
                    ?? (try? GPTModel(
                        sharingWorkspacesOf: learner.model, parameters: learner.model.parameters))
                    ?? GPTModel(parameters: learner.model.parameters, threads: threads)
                scratch = model
                continuation.resume(returning: Result { try body(model) })
            }
            thread.name = "rein-tracker"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// One learner step on a thread of its own (it is long and CPU-bound): the metrics, the new
    /// weights and version, or the error.
    func step(_ batch: RolloutBatch) async -> Result<(LearnerStepMetrics, GPTParameters, Int), any Error> {
        await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                let result = Result { () throws -> (LearnerStepMetrics, GPTParameters, Int) in
                    let learned = try learner.step(batch)
                    return (learned, learner.model.parameters, learner.version)
                }
                let spent = threadCPUSeconds()
                stepCPU.withLock { $0 += spent }
                continuation.resume(returning: result)
            }
            thread.name = "rein-learner-step"
            thread.stackSize = 8 << 20
            thread.start()
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
