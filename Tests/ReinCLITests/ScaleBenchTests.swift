import Foundation
import Rein
import ReinTasks
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
}
