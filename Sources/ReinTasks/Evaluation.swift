/// Accuracy and outcome counts over a set of problems.
public struct EvaluationResult: Sendable, Hashable, Codable {
    /// Problems graded.
    public private(set) var n = 0
    /// Completions that were exactly the answer followed by EOS.
    public private(set) var correct = 0
    /// Well-formed wrong answers.
    public private(set) var wrongAnswer = 0
    /// Completions with EOS after something that is not an integer.
    public private(set) var malformed = 0
    /// Completions without EOS.
    public private(set) var noEOS = 0
    /// The fraction of correct completions (0 when `n` is 0).
    public private(set) var accuracy = 0.0
    /// The mean reward, format reward included (0 when `n` is 0).
    public private(set) var meanReward = 0.0
    private var totalReward = 0.0

    enum CodingKeys: String, CodingKey {
        case n, correct
        case wrongAnswer = "wrong_answer"
        case malformed
        case noEOS = "no_eos"
        case accuracy
        case meanReward = "mean_reward"
        case totalReward = "total_reward"
    }

    /// No problems graded yet.
    public init() {}

    /// The number of completions with `outcome`.
    public subscript(outcome: AnswerOutcome) -> Int {
        switch outcome {
        case .correct: return correct
        case .wrongAnswer: return wrongAnswer
        case .malformed: return malformed
        case .noEOS: return noEOS
        }
    }

    /// Adds one graded completion.
    public mutating func record(_ grade: CompletionGrade) {
        switch grade.outcome {
        case .correct: correct += 1
        case .wrongAnswer: wrongAnswer += 1
        case .malformed: malformed += 1
        case .noEOS: noEOS += 1
        }
        n += 1
        totalReward += grade.reward
        accuracy = Double(correct) / Double(n)
        meanReward = totalReward / Double(n)
    }
}

/// A generator that broke the evaluation contract.
public enum EvaluationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The generator returned a different number of completions than it was given prompts.
    case completionCount(prompts: Int, completions: Int)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .completionCount(let prompts, let completions):
            return "the generator returned \(completions) completions for \(prompts) prompts"
        }
    }
}

extension ArithmeticTask {
    /// Generates a completion for every problem, in batches, and grades them.
    ///
    /// Greedy or sampled accuracy is the generator's choice (temperature 0 or 1). It receives the
    /// prompts of up to `batchSize` problems (equal lengths when ``promptLength`` is set) and must
    /// return one completion per prompt, in order: the generated ids only, without the prompt,
    /// at most ``maxAnswerTokens`` long suffices (anything after the first EOS is ignored).
    ///
    /// - Throws: whatever `generate` throws, or ``EvaluationError/completionCount(prompts:completions:)``.
    public func evaluate(
        _ problems: some Collection<ArithmeticProblem>, batchSize: Int = 64,
        generate: ([[Int]]) throws -> [[Int]]
    ) throws -> EvaluationResult {
        precondition(batchSize >= 1, "batch size must be at least 1, got \(batchSize)")
        var result = EvaluationResult()
        var rest = problems[...]
        while !rest.isEmpty {
            let batch = rest.prefix(batchSize)
            rest = rest.dropFirst(batchSize)
            let completions = try generate(batch.map(\.prompt))
            try record(batch, completions, into: &result)
        }
        return result
    }

    /// ``evaluate(_:batchSize:generate:)`` with an asynchronous generator (batches run one after
    /// another).
    public func evaluate(
        _ problems: some Collection<ArithmeticProblem>, batchSize: Int = 64,
        generate: ([[Int]]) async throws -> [[Int]]
    ) async throws -> EvaluationResult {
        precondition(batchSize >= 1, "batch size must be at least 1, got \(batchSize)")
        var result = EvaluationResult()
        var rest = problems[...]
        while !rest.isEmpty {
            let batch = rest.prefix(batchSize)
            rest = rest.dropFirst(batchSize)
            let completions = try await generate(batch.map(\.prompt))
            try record(batch, completions, into: &result)
        }
        return result
    }

    private func record(
        _ batch: some Collection<ArithmeticProblem>, _ completions: [[Int]],
        into result: inout EvaluationResult
    ) throws(EvaluationError) {
        guard completions.count == batch.count else {
            throw .completionCount(prompts: batch.count, completions: completions.count)
        }
        for (problem, completion) in zip(batch, completions) {
            result.record(grade(problem, completion: completion))
        }
    }
}
