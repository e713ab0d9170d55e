import ReinModel
import ReinTasks

/// The worker side of the loop: samples groups of completions for task prompts with given weights
/// and grades them. Knows nothing about learning; the same type runs inside a rollout worker
/// process and inside the single-process trainer.
public final class RolloutSampler {
    public let task: ArithmeticTask
    public let options: SamplingOptions
    private let sampler: GPTSampler
    /// π_ref, when the sampler scores the reference for the learner.
    private let reference: GPTModel?

    /// - Parameter reference: π_ref's weights: every sampled batch then carries the reference's
    ///   log-probs and rows (``Rollout/referenceLogProbs``), so the learner does not run π_ref
    ///   itself. This moves one of the learner's forward passes to the rollout workers.
    public init(
        task: ArithmeticTask, config: GPTConfig, temperature: Double, topK: Int, threads: Int,
        reference: GPTParameters? = nil
    ) {
        self.reference = reference.map { GPTModel(parameters: $0, threads: threads) }
        self.task = task
        self.options = SamplingOptions(
            maxNewTokens: task.maxAnswerTokens, temperature: Float(temperature), topK: topK == 0 ? nil : topK,
            stopToken: Int32(task.tokenizer.eos))
        self.sampler = GPTSampler(config: config, threads: threads)
    }

    /// Samples `groupSize` completions for each problem with `parameters` (policy `version`).
    /// The result depends only on the arguments (and the thread count): row r uses the RNG stream
    /// seeded from (`seed`, r), and sample ids are `firstID`, `firstID + 1`, ….
    ///
    /// With `weights` (partial rollouts, `train.partial_rollouts`), newer weights on offer are
    /// taken between tokens (see ``GPTSampler/sample(parameters:prompts:options:seeds:version:weights:)``)
    /// and every token carries the version and behaviour log-prob it was drawn with; the result
    /// then depends on the offers too (deterministic for a fixed schedule).
    public func sample(
        _ problems: [ArithmeticProblem], groupSize: Int, parameters: GPTParameters, version: Int,
        seed: UInt64,
        firstID: UInt64, weights: (any SamplingWeightsSource)? = nil
    ) throws(ModelError) -> RolloutBatch {
        var nextID = firstID
        var random = SplitMix64(seed: seed)
        var prompts: [[Int32]] = []
        prompts.reserveCapacity(problems.count * groupSize)
        for problem in problems {
            let prompt = problem.prompt.map(Int32.init)
            for _ in 0..<groupSize { prompts.append(prompt) }
        }
        let seeds = prompts.indices.map { _ in random.next() }
        let batch = try sampler.sample(
            parameters: parameters, prompts: prompts, options: options, seeds: seeds, version: version,
            weights: weights)
        var rollouts: [Rollout] = []
        rollouts.reserveCapacity(prompts.count)
        for (row, prompt) in prompts.enumerated() {
            let problem = problems[row / groupSize]
            let generated = batch.generated(row)
            let grade = task.grade(problem, completion: generated)
            let kept = Array(generated.prefix(grade.length))
            let start = row * batch.maxNewTokens
            rollouts.append(
                Rollout(
                    id: nextID, group: row / groupSize, prompt: prompt, completion: kept,
                    behaviourLogProbs: Array(batch.logProbs[start..<(start + kept.count)]),
                    versions: Array(batch.versions[start..<(start + kept.count)]), reward: grade.reward,
                    outcome: grade.outcome))
            nextID += 1
        }
        if let reference { try Self.scoreReference(&rollouts, with: reference) }
        return RolloutBatch(rollouts: rollouts, groupSize: groupSize)
    }

    /// Fills in ``Rollout/referenceLogProbs`` and ``Rollout/referenceRows`` with one forward of
    /// `reference` over the batch, packed exactly as ``Learner`` packs it (so the values are the
    /// ones its own reference forward would give).
    static func scoreReference(_ rollouts: inout [Rollout], with reference: GPTModel) throws(ModelError) {
        guard !rollouts.isEmpty else { return }
        let (tokens, length) = Learner.pack(rollouts)
        let batch = try TokenBatch(
            tokens: tokens, batch: rollouts.count, length: length,
            lengths: rollouts.map(Learner.sequenceLength))
        let out = try reference.forward(batch, logSoftmaxRows: true, keepActivations: false)
        guard let full = out.logSoftmax else {
            throw .invalidArgument("the reference gave no log-softmax rows")
        }
        let positions = length - 1
        let vocab = reference.config.vocab
        let logProbs = Learner.completionRows(out.logProbs, rows: rollouts, positions: positions)
        for b in rollouts.indices {
            let r = rollouts[b]
            let start = (b * positions + r.prompt.count - 1) * vocab
            rollouts[b].referenceLogProbs = logProbs[b]
            rollouts[b].referenceRows = Array(full[start..<(start + r.completion.count * vocab)])
        }
    }

    /// Completions of `problems`, graded: greedy (temperature 0) by default, or sampled at
    /// `temperature` with per-row seeds derived from `seed`.
    public func evaluate(
        _ problems: some Collection<ArithmeticProblem>, parameters: GPTParameters, temperature: Double = 0,
        seed: UInt64 = 0
    ) throws(ModelError) -> EvaluationResult {
        var result = EvaluationResult()
        var random = SplitMix64(seed: seed)
        let greedy = SamplingOptions(
            maxNewTokens: options.maxNewTokens, temperature: Float(temperature), stopToken: options.stopToken)
        let all = Array(problems)
        let chunk = 256
        for start in stride(from: 0, to: all.count, by: chunk) {
            let part = all[start..<min(start + chunk, all.count)]
            let prompts = part.map { $0.prompt.map(Int32.init) }
            let batch = try sampler.sample(
                parameters: parameters, prompts: prompts, options: greedy,
                seeds: prompts.indices.map { _ in random.next() })
            for (row, problem) in part.enumerated() {
                result.record(task.grade(problem, completion: batch.generated(row)))
            }
        }
        return result
    }
}
