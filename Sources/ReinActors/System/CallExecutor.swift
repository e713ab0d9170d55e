import Foundation

/// The threads inbound calls run on: a task executor of its own, outside the cooperative pool.
///
/// A learner's pool may be busy with CPU-bound work (sampling, test bodies, anything that blocks a
/// thread); calls from its workers must still be answered before their timeouts. Each inbound call
/// runs in a task whose executor preference is this executor, so the target method of a default
/// actor (SE-0417) runs on one of these threads, whatever the pool is doing. One executor per
/// process, shared by every actor system in it.
///
/// `@unchecked Sendable`: the job queue is guarded by `condition`'s lock.
final class CallExecutor: TaskExecutor, @unchecked Sendable {
    /// The process's executor (two threads).
    static let shared = CallExecutor(threads: 2)

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    init(threads: Int) {
        for i in 0..<threads {
            let thread = Thread { [self] in run() }
            thread.name = "rein-calls-\(i)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
