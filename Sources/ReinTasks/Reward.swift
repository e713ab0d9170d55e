/// How a completion ended, for rewards and metrics.
public enum AnswerOutcome: String, Sendable, Codable, Hashable, CaseIterable {
    /// The tokens before the first EOS are exactly the answer. Reward 1.
    case correct
    /// An EOS follows a well-formed integer (`0`, or an optional `-` then digits without a
    /// leading zero) that is not the answer. Reward ``ArithmeticTaskConfig/formatReward``.
    case wrongAnswer = "wrong_answer"
    /// An EOS follows anything else: nothing, a leading zero, `-0`, an operator, `=`, PAD, BOS,
    /// or an id outside the tokenizer's table. Reward 0.
    case malformed
    /// No EOS anywhere in the completion (it ran out of tokens), even if it begins with the
    /// answer. Reward 0.
    case noEOS = "no_eos"
}

/// The verdict on one completion.
public struct CompletionGrade: Sendable, Hashable {
    /// How the completion ended.
    public let outcome: AnswerOutcome
    /// 1 for ``AnswerOutcome/correct``, the format reward for ``AnswerOutcome/wrongAnswer``,
    /// else 0.
    public let reward: Double
    /// The tokens that count: up to and including the first EOS, or all of them if there is
    /// none. Tokens after the first EOS are ignored by grading and should get no loss.
    public let length: Int
}

extension ArithmeticTask {
    /// Grades generated tokens (the completion only, without the prompt) against `problem`.
    ///
    /// The completion is read up to its first EOS; whatever follows (more tokens of a batch that
    /// kept sampling, padding) is ignored. A completion without EOS is never correct: the answer
    /// must be ended, so that a policy is not rewarded for rambling on.
    public func grade<Completion: Collection>(
        _ problem: ArithmeticProblem, completion: Completion
    ) -> CompletionGrade where Completion.Element: BinaryInteger {
        grade(answer: problem.answer, completion: completion)
    }

    /// The reward of a completion: the ``CompletionGrade/reward`` of ``grade(_:completion:)``.
    public func reward<Completion: Collection>(
        _ problem: ArithmeticProblem, completion: Completion
    ) -> Double where Completion.Element: BinaryInteger {
        grade(problem, completion: completion).reward
    }

    /// Grades a completion against a target completion `answer` (answer ids then EOS, as in
    /// ``ArithmeticProblem/answer``), for callers that kept only the target tokens.
    public func grade<Completion: Collection>(
        answer: [Int], completion: Completion
    ) -> CompletionGrade where Completion.Element: BinaryInteger {
        let ids = completion.map { Int(exactly: $0) ?? -1 }
        guard let end = ids.firstIndex(of: tokenizer.eos) else {
            return CompletionGrade(outcome: .noEOS, reward: 0, length: ids.count)
        }
        let body = ids[..<end]
        let outcome: AnswerOutcome
        if answer.last == tokenizer.eos && body.elementsEqual(answer.dropLast()) {
            outcome = .correct
        } else if isCanonicalInteger(body) {
            outcome = .wrongAnswer
        } else {
            outcome = .malformed
        }
        let reward = outcome == .correct ? 1 : outcome == .wrongAnswer ? config.formatReward : 0
        return CompletionGrade(outcome: outcome, reward: reward, length: end + 1)
    }

    /// Whether `ids` spell `0` or `-?[1-9][0-9]*`.
    private func isCanonicalInteger(_ ids: ArraySlice<Int>) -> Bool {
        var symbols = ids.compactMap { tokenizer.symbol(of: $0) }
        guard symbols.count == ids.count else { return false }
        let negative = symbols.first == "-"
        if negative { symbols.removeFirst() }
        guard let first = symbols.first, symbols.allSatisfy({ ("0"..."9").contains($0) }) else {
            return false
        }
        return first != "0" || (symbols.count == 1 && !negative)
    }
}
