/// The verifiable arithmetic task: writes problems as prompts (`^37+58=`), knows their answers
/// (`95$`), and bounds prompt and answer lengths.
///
/// ```swift
/// let task = try ArithmeticTask(config: .default)
/// let data = ArithmeticDataset(task: task)       // seeded, disjoint train / held-out splits
/// let grade = task.grade(data.heldOut[0], completion: generatedTokens)
/// ```
public struct ArithmeticTask: Sendable, Hashable {
    /// The validated configuration.
    public let config: ArithmeticTaskConfig
    /// The tokenizer (always ``Tokenizer/standard``).
    public let tokenizer: Tokenizer

    /// A task; validates `config`.
    public init(config: ArithmeticTaskConfig = .default) throws(ArithmeticTaskConfigError) {
        try config.validate()
        self.config = config
        self.tokenizer = .standard
    }

    /// The problem `lhs operation rhs`, written and tokenized.
    ///
    /// - Precondition: both operands are in ``ArithmeticTaskConfig/operandRange``.
    public func problem(_ lhs: Int, _ operation: ArithmeticOperation, _ rhs: Int) -> ArithmeticProblem {
        precondition(
            config.operandRange.contains(lhs) && config.operandRange.contains(rhs),
            "operands \(lhs), \(rhs) are outside \(config.operandRange)")
        let text = operand(lhs) + String(operation.symbol) + operand(rhs) + "="
        let answerText = String(operation.apply(lhs, rhs))
        // The table holds every digit, operator, sign and "=", so encoding cannot fail.
        let prompt = (config.prependBOS ? [tokenizer.bos] : []) + (try! tokenizer.encode(text))
        let answer = (try! tokenizer.encode(answerText)) + [tokenizer.eos]
        return ArithmeticProblem(
            lhs: lhs, operation: operation, rhs: rhs, text: text, prompt: prompt, answerText: answerText,
            answer: answer)
    }

    /// A problem drawn from the task's distribution: the operation uniformly, each operand
    /// uniformly from ``ArithmeticTaskConfig/operandRange``, swapped when a non-negative
    /// subtraction would go below zero.
    public func randomProblem(using random: inout TaskRandom) -> ArithmeticProblem {
        let draw = randomOperands(using: &random)
        return problem(draw.lhs, draw.operation, draw.rhs)
    }

    /// The operands and operation of ``randomProblem(using:)``, without writing the problem.
    func randomOperands(using random: inout TaskRandom) -> ProblemKey {
        let operation = config.operations[random.next(below: config.operations.count)]
        var lhs = random.next(in: config.operandRange)
        var rhs = random.next(in: config.operandRange)
        if operation == .sub && !config.allowNegative && lhs < rhs {
            swap(&lhs, &rhs)
        }
        return ProblemKey(lhs: lhs, operation: operation, rhs: rhs)
    }

    /// The prompt length in tokens when every prompt has the same length (operands padded, or
    /// all with the same number of digits), else nil.
    public var promptLength: Int? {
        config.padOperands || config.minDigits == config.maxDigits ? maxPromptLength : nil
    }

    /// The longest prompt in tokens: BOS (if used), two operands, the operator and `=`.
    public var maxPromptLength: Int { (config.prependBOS ? 1 : 0) + 2 * config.maxDigits + 2 }

    /// The longest answer in characters (sign included), without EOS.
    public var maxAnswerLength: Int {
        let range = config.operandRange
        var longest = 1
        for operation in config.operations {
            let extremes: [Int]
            switch operation {
            case .add, .mul: extremes = [operation.apply(range.upperBound, range.upperBound)]
            case .sub:
                extremes = [
                    range.upperBound - range.lowerBound,
                    config.allowNegative ? range.lowerBound - range.upperBound : 0,
                ]
            }
            longest = max(longest, extremes.map { String($0).count }.max()!)
        }
        return longest
    }

    /// The longest target completion in tokens (answer plus EOS): the `max_new_tokens` that lets
    /// every correct answer finish.
    public var maxAnswerTokens: Int { maxAnswerLength + 1 }

    /// The longest prompt plus target completion, in tokens.
    public var maxSequenceLength: Int { maxPromptLength + maxAnswerTokens }

    /// An operand as written in prompts (zero-padded if configured).
    private func operand(_ value: Int) -> String {
        let digits = String(value)
        guard config.padOperands, digits.count < config.maxDigits else { return digits }
        return String(repeating: "0", count: config.maxDigits - digits.count) + digits
    }
}

/// What identifies a problem: its operands and operation.
struct ProblemKey: Hashable {
    var lhs: Int
    var operation: ArithmeticOperation
    var rhs: Int
}
