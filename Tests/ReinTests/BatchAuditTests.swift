import ReinModel
import ReinTasks
import ReinTestKit
import Testing

@testable import Rein

/// A tiny run's audit and a sampler scoring the reference, as a rollout worker runs it.
struct AuditFixture {
    let config: RunConfig
    let task: ArithmeticTask
    let dataset: ArithmeticDataset
    let audit: BatchAudit
    let policy: GPTParameters
    let sampler: RolloutSampler

    init(temperature: Double = 1, topK: Int = 0) throws {
        config = try TestKit.tinyConfig()
        task = try ArithmeticTask(config: config.task)
        dataset = ArithmeticDataset(task: task)
        let reference = try TestKit.tinyReference(for: config)
        policy = try GPTParameters(config: reference.config, seed: 7)
        audit = BatchAudit(config: config, dataset: dataset, task: task, vocab: reference.config.vocab)
        sampler = RolloutSampler(
            task: task, config: reference.config, temperature: temperature, topK: topK, threads: 1,
            reference: reference)
    }

    /// Batch `index` sampled honestly with `version`.
    func honest(index: Int, version: Int = 3) throws -> RolloutBatch {
        try sampler.sample(
            Trainer.problems(forStep: index, config: config, dataset: dataset),
            groupSize: config.train.groupSize, parameters: policy, version: version,
            seed: Trainer.samplingSeed(forStep: index, seed: config.seed),
            firstID: Rollout.firstID(index: index, attempt: 0))
    }
}

/// Batch `index` (attempt `attempt`) of `audit`'s run as an honest worker could send it without a
/// model: every completion the right answer, every log-probability 0.
func correctBatch(
    _ audit: BatchAudit, config: RunConfig, index: Int, attempt: Int = 0, version: Int,
    dataset: ArithmeticDataset? = nil
) -> RolloutBatch {
    let dataset = dataset ?? ArithmeticDataset(task: audit.task)
    let problems = Trainer.problems(forStep: index, config: config, dataset: dataset)
    let firstID = Rollout.firstID(index: index, attempt: attempt)
    let rollouts = problems.enumerated().flatMap { group, problem in
        (0..<config.train.groupSize).map { member in
            let completion = problem.answer.map(Int32.init)
            return Rollout(
                id: firstID + UInt64(group * config.train.groupSize + member), group: group,
                prompt: problem.prompt.map(Int32.init), completion: completion,
                behaviourLogProbs: Array(repeating: 0, count: completion.count),
                versions: Array(repeating: version, count: completion.count), reward: 1, outcome: .correct)
        }
    }
    return RolloutBatch(rollouts: rollouts, groupSize: config.train.groupSize)
}

@Suite("Batch audit")
struct BatchAuditTests {
    @Test(arguments: [(1.0, 0), (0.7, 3), (0.0, 0)])
    func honestBatchesPass(temperature: Double, topK: Int) throws {
        let fixture = try AuditFixture(temperature: temperature, topK: topK)
        for index in [0, 1, 7] {
            let batch = try fixture.honest(index: index)
            #expect(fixture.audit.problem(with: batch, index: index, attempt: 0, version: 3) == nil)
            #expect(fixture.audit.check(batch, index: index, attempt: 0, version: 3) == nil)
        }
        // Without the reference's values (a worker that does not score π_ref) too.
        var plain = try fixture.honest(index: 2)
        for r in plain.rollouts.indices {
            plain.rollouts[r].referenceLogProbs = nil
            plain.rollouts[r].referenceRows = nil
        }
        #expect(fixture.audit.problem(with: plain, index: 2, attempt: 0, version: 3) == nil)
        let correct = correctBatch(fixture.audit, config: fixture.config, index: 5, version: 1)
        #expect(fixture.audit.problem(with: correct, index: 5, attempt: 0, version: 1) == nil)
    }

    @Test func theConvenienceInitialiserAuditsTheSameRun() throws {
        let fixture = try AuditFixture()
        let audit = try BatchAudit(config: fixture.config)
        let batch = try fixture.honest(index: 4)
        #expect(audit.check(batch, index: 4, attempt: 0, version: 3) == nil)
        #expect(audit.check(batch, index: 4, attempt: 0, version: 2) == .forgedContents)
    }

    /// Every kind of forgery of an honest batch, each caught.
    @Test func everyForgeryIsCaught() throws {
        let fixture = try AuditFixture()
        let index = 1
        let honest = try fixture.honest(index: index)
        let audit = fixture.audit
        let vocab = audit.vocab
        // A rollout the task did not grade correct (to forge its reward).
        let wrong = try #require(honest.rollouts.firstIndex { $0.outcome != .correct })
        let problems = Trainer.problems(forStep: index, config: fixture.config, dataset: fixture.dataset)
        let other = try #require(fixture.dataset.train.first { $0.prompt != problems[0].prompt })

        func forged(_ row: Int = 0, _ change: (inout Rollout) -> Void) -> RolloutBatch {
            var batch = honest
            change(&batch.rollouts[row])
            return batch
        }
        func appending(_ token: Int32, _ r: inout Rollout) {
            r.completion.append(token)
            r.behaviourLogProbs.append(-1)
            r.versions.append(3)
            r.referenceLogProbs?.append(-1)
            r.referenceRows?.append(contentsOf: Array(repeating: -3, count: vocab))
        }
        let g = fixture.config.train.groupSize
        let forgeries: [(String, RolloutBatch, Int, Int)] = [
            // Shape.
            (
                "a group left out", RolloutBatch(rollouts: Array(honest.rollouts.dropLast(g)), groupSize: g),
                index, 3
            ),
            ("another group size", RolloutBatch(rollouts: honest.rollouts, groupSize: g / 2), index, 3),
            ("a group id changed", forged { $0.group = 1 }, index, 3),
            // Prompts.
            ("another problem's prompt", forged { $0.prompt = other.prompt.map(Int32.init) }, index, 3),
            ("the batch delivered as another index", honest, index + 1, 3),
            // Completions.
            (
                "a completion longer than the task's answers",
                forged(wrong) { r in
                    while r.completion.count <= audit.task.maxAnswerTokens { appending(1, &r) }
                }, index, 3
            ),
            ("a token past the vocabulary", forged { $0.completion[0] = Int32(vocab) }, index, 3),
            ("a negative token", forged { $0.completion[0] = -1 }, index, 3),
            (
                "tokens after the end token",
                forged { r in
                    r.completion = [Int32(audit.task.tokenizer.eos)]
                    r.behaviourLogProbs = [-1]
                    r.versions = [3]
                    r.referenceLogProbs = [-1]
                    r.referenceRows = Array(repeating: -3, count: vocab)
                    r.reward = 0
                    r.outcome = .malformed
                    appending(Int32(audit.task.tokenizer.eos), &r)
                }, index, 3
            ),
            // Grades.
            ("a made-up reward", forged(wrong) { $0.reward = 1 }, index, 3),
            ("a made-up outcome", forged(wrong) { $0.outcome = .correct }, index, 3),
            (
                "a made-up reward and outcome",
                forged(wrong) {
                    $0.reward = 1
                    $0.outcome = .correct
                }, index, 3
            ),
            // Versions.
            ("another version in the batch", forged { $0.versions[0] = 2 }, index, 3),
            ("the batch of another version", honest, index, 4),
            ("fewer versions than tokens", forged { $0.versions.removeLast() }, index, 3),
            // Behaviour log-probabilities.
            ("a NaN behaviour log-prob", forged { $0.behaviourLogProbs[0] = .nan }, index, 3),
            ("an infinite behaviour log-prob", forged { $0.behaviourLogProbs[0] = -.infinity }, index, 3),
            ("a positive behaviour log-prob", forged { $0.behaviourLogProbs[0] = 0.5 }, index, 3),
            ("a missing behaviour log-prob", forged { $0.behaviourLogProbs.removeLast() }, index, 3),
            // The reference's values.
            ("a NaN reference log-prob", forged { $0.referenceLogProbs![0] = .nan }, index, 3),
            ("a positive reference log-prob", forged { $0.referenceLogProbs![0] = 2 }, index, 3),
            ("a missing reference log-prob", forged { $0.referenceLogProbs!.removeLast() }, index, 3),
            ("a short reference row", forged { $0.referenceRows!.removeLast() }, index, 3),
            ("a long reference row", forged { $0.referenceRows!.append(-1) }, index, 3),
            ("an infinite reference row", forged { $0.referenceRows![0] = .infinity }, index, 3),
            ("reference rows without log-probs", forged { $0.referenceLogProbs = nil }, index, 3),
            // Sample ids.
            ("a sample id changed", forged(1) { $0.id += 1 }, index, 3),
            (
                "another batch's ids", forged { $0.id = Rollout.firstID(index: index + 1, attempt: 0) },
                index, 3
            ),
            (
                "two samples' ids swapped",
                RolloutBatch(
                    rollouts: [honest.rollouts[1], honest.rollouts[0]] + honest.rollouts.dropFirst(2),
                    groupSize: g), index, 3
            ),
        ]
        for (what, batch, deliveredAs, version) in forgeries {
            #expect(
                audit.problem(with: batch, index: deliveredAs, attempt: 0, version: version) != nil, "\(what)"
            )
            #expect(
                audit.check(batch, index: deliveredAs, attempt: 0, version: version) == .forgedContents,
                "\(what)")
        }
        // The batch of attempt 0 delivered for attempt 1 (a lost batch sampled again) carries the
        // ids of attempt 0.
        #expect(
            audit.problem(with: honest, index: index, attempt: 1, version: 3)?.contains("sample id") == true)
        #expect(audit.check(honest, index: index, attempt: 1, version: 3) == .forgedContents)
        // The honest batch itself passes (so each case above is caught for its forgery alone).
        #expect(audit.check(honest, index: index, attempt: 0, version: 3) == nil)
        #expect(honest.rollouts[0].completion.count > 0 && honest.rollouts[wrong].completion.count > 0)
    }

    @Test func theProblemNamesTheRollout() throws {
        let fixture = try AuditFixture()
        var batch = try fixture.honest(index: 0)
        batch.rollouts[5].behaviourLogProbs[0] = .nan
        let problem = try #require(fixture.audit.problem(with: batch, index: 0, attempt: 0, version: 3))
        #expect(problem.hasPrefix("batch 0 rollout 5: behaviour log-probabilities"))
    }
}
