import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ReinTestKit
import Testing

@testable import ReinCLI

@Suite("bench scale: file limit, plan and stand-in sampler")
struct ScaleBenchTests {
    @Test func theOpenFileLimitIsRaisedToTheHardLimitOnlyWhenNeeded() {
        #expect(FileLimit(soft: 1024, hard: 4096).plan(needed: 800) == .enough)
        #expect(FileLimit(soft: 1024, hard: 4096).plan(needed: 2000) == .raise(to: 4096))
        #expect(FileLimit(soft: 1024, hard: 1500).plan(needed: 2000) == .tooLow)
        let unlimited = FileLimit.unlimited
        #expect(FileLimit(soft: 1024, hard: unlimited).plan(needed: 5000) == .raise(to: 5000))
    }

    @Test func aLimitTooLowIsOneLineNamingTheFix() throws {
        let limit = try FileLimit.current()
        guard limit.hard < UInt64(Int.max) else { return }  // unlimited: nothing is too many
        #expect {
            try FileLimit.ensure(Int(limit.hard) + 1, for: "a test")
        } throws: { error in
            let text = "\(error)"
            return text.contains("hard limit is \(limit.hard)") && !text.contains("\n")
        }
    }

    @Test func pinningGivesTheLearnerTheFirstCPUAndTheHelpersTheRest() throws {
        #expect(CPUPinning.split([0, 1]) == CPUPinning(learner: [0], helpers: [1]))
        #expect(CPUPinning.split([2, 5, 7]) == CPUPinning(learner: [2], helpers: [5, 7]))
        #expect(CPUPinning.split([3]) == nil)
        #expect(CPUPinning.parse("0-3,6") == [0, 1, 2, 3, 6])
        #expect(CPUPinning.parse(CPUPinning.format([1, 4, 5])) == [1, 4, 5])
        for bad in ["", "a", "3-1", "-1", "1-2-3", "1,,2"] { #expect(CPUPinning.parse(bad) == nil, "\(bad)") }
        let allowed = try CPUPinning.allowed()
        #expect(!allowed.isEmpty && allowed == allowed.sorted())
        #expect(allowed.count == ProcessInfo.processInfo.activeProcessorCount)
    }

    @Test func theLastBatchSampleIsTakenAtTheRunsLastBatchOnly() {
        let sample = LastBatchSample(batches: 3)
        sample.recorded()
        sample.recorded()
        #expect(sample.sample == nil)
        sample.recorded()
        let taken = sample.sample
        #expect(taken != nil)
        sample.recorded()  // a batch past the count (none in a run) does not move it
        #expect(sample.sample?.1 == taken?.1)
    }

    @Test func workerCountsAndTheRunModelParse() throws {
        #expect(try ScaleBenchPlan.counts("16,64, 256") == [16, 64, 256])
        #expect(throws: CLIError.self) { try ScaleBenchPlan.counts("16,0") }
        #expect(throws: CLIError.self) { try ScaleBenchPlan.counts("") }
        #expect(ScaleBenchPlan.model("32x2")! == (32, 2))
        #expect(ScaleBenchPlan.model("33x2") == nil)
        #expect(ScaleBenchPlan.model("32") == nil)
    }

    /// The stand-in's batches are what the learner's audit accepts from an honest worker, for
    /// every index and attempt (the learner would refuse made-up contents).
    @Test(arguments: [(0, 0), (7, 0), (3, 2)])
    func theStandInSamplersBatchesPassTheAudit(index: Int, attempt: Int) async throws {
        let config = RunConfig()
        let task = try ArithmeticTask(config: config.task)
        let dataset = ArithmeticDataset(task: task)
        let vocab = task.tokenizer.vocabSize
        let sampler = CannedSampler(task: task, vocab: vocab, delay: .zero)
        let problems = Trainer.problems(forStep: index, config: config, dataset: dataset)
        let batch = try await sampler.batch(
            problems, groupSize: config.train.groupSize, version: 5, index: index,
            firstID: Rollout.firstID(index: index, attempt: attempt))
        let audit = BatchAudit(config: config, dataset: dataset, task: task)
        #expect(audit.problem(with: batch, index: index, attempt: attempt, version: 5) == nil)
        #expect(audit.problem(with: batch, index: index, attempt: attempt, version: 4) != nil)
        #expect(Set(batch.rollouts.map(\.reward)).count == 2)  // right and wrong answers: advantages
    }

    @Test func theStandInsSamplingTimesSpreadUniformlyAndRepeat() {
        let task = try! ArithmeticTask(config: RunConfig().task)
        let same = CannedSampler(task: task, vocab: 8, delay: .milliseconds(1000), spread: 0, worker: 3)
        #expect((0..<10).allSatisfy { same.delay(index: $0) == .milliseconds(1000) })
        let spread = CannedSampler(task: task, vocab: 8, delay: .milliseconds(1000), spread: 0.5, worker: 3)
        let times = (0..<2000).map { 1000 * seconds(spread.delay(index: $0)) }
        #expect(times.allSatisfy { (500...1500).contains($0) })
        #expect(times.min()! < 520 && times.max()! > 1480)  // fills the range
        #expect(abs(times.reduce(0, +) / Double(times.count) - 1000) < 25)  // uniform: mean in the middle
        #expect(times.filter { $0 < 750 }.count > 400 && times.filter { $0 > 1250 }.count > 400)
        let again = CannedSampler(task: task, vocab: 8, delay: .milliseconds(1000), spread: 0.5, worker: 3)
        #expect((0..<20).allSatisfy { again.delay(index: $0) == spread.delay(index: $0) })
        let other = CannedSampler(task: task, vocab: 8, delay: .milliseconds(1000), spread: 0.5, worker: 4)
        #expect((0..<20).filter { other.delay(index: $0) == spread.delay(index: $0) }.count < 2)
    }

    /// A worker with the stand-in tells it, before every batch but its first, where its time went
    /// since the last one; the parts lie within the gap the stand-in saw between handing one
    /// batch over and being asked for the next.
    @Test func theWorkerReportsItsTimeBetweenBatchesInParts() async throws {
        let (config, reference, _) = try TestKit.tinyRun(steps: 4, maxStaleness: 1)
        let run = try InMemoryLearner(config: config, reference: reference)
        let (learner, workerSystem) = (run.learner, run.workerSystem)
        let task = try ArithmeticTask(config: config.task)
        let sampler = CannedSampler(task: task, vocab: reference.config.vocab, delay: .milliseconds(5))
        let worker = try RolloutWorkerActor(
            actorSystem: workerSystem, config: config, gpt: reference.config, logger: TestKit.quiet,
            standIn: sampler)
        let peer = try await workerSystem.connect(to: LearnerActor.name)
        let remote = try LearnerActor.resolve(
            id: .wellKnown(LearnerActor.name, on: peer.node), using: workerSystem)
        try await worker.whenLocal { try await $0.run(learner: remote) }
        #expect(try await worker.deliveredCount() == 4)
        #expect(try await learner.workRequestCount() == 5)  // 4 orders and the run's end
        let (waits, gaps) = (sampler.waits, sampler.gapsMs)
        #expect(waits.count == 3 && gaps.count == 3)
        for (wait, gap) in zip(waits, gaps) {
            #expect(wait.handOver > .zero && wait.request > .zero && wait.weights >= .zero)
            #expect(1000 * seconds(wait.handOver + wait.request + wait.weights) <= gap)
        }
        await run.shutdown()
    }

    /// Orders the learner held are named beside the latency they are part of, and only then.
    @Test func heldOrdersAreReportedBesideTheWorkOrderLatency() {
        var row = ScaleRow(workers: 64, processes: 2, load: "0")
        (row.orderLatencyP50Ms, row.orderLatencyP99Ms, row.orderLatencyMaxMs, row.orders) = (1, 60, 90, 192)
        (row.heldOrders, row.ordersWithWork) = (4, 256)
        #expect(
            row.summary.contains(
                "p99 60.0 ms, max 90.0 ms over 192 orders (goal p99 ≤ 50 ms); 4 of the 256 orders with work (1.6%"
            ))
        row.heldOrders = 0
        #expect(row.heldSummary.isEmpty)
        #expect(
            row.summary.split(separator: "\n").contains { $0.hasSuffix("over 192 orders (goal p99 ≤ 50 ms)") }
        )
    }

    /// The run part leaves room for every worker: its pacing window grows with the spread of the
    /// sampling times (the fastest worker runs ahead of the slowest by their ratio).
    @Test func theRunPartsStalenessBoundGrowsWithTheSpread() {
        var plan = ScaleBenchPlan(
            counts: [256], perProcess: 32, sampleMs: 1000, batchesPerWorker: 2, runModel: "32x2", repeats: 1,
            parts: ["run"], configArguments: [], nodeArguments: [])
        #expect(plan.staleness(workers: 256) == 512)
        plan.sampleSpread = 0.5  // 1.5 / 0.5 = 3
        #expect(plan.staleness(workers: 256) == 1536)
        plan.sampleSpread = 0.25  // 1.25 / 0.75 ≈ 1.67
        #expect(plan.staleness(workers: 256) == 1024)
        #expect(plan.runOverrides(workers: 256).contains("train.max_staleness=1024"))
    }
}
