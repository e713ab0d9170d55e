/// One arithmetic problem with its prompt and target completion, already tokenized.
///
/// Build problems with ``ArithmeticTask/problem(_:_:_:)``; two problems of one task are equal
/// exactly when their operands and operation are.
public struct ArithmeticProblem: Sendable, Hashable, Codable {
    /// The left operand (≥ 0).
    public let lhs: Int
    /// The operation.
    public let operation: ArithmeticOperation
    /// The right operand (≥ 0).
    public let rhs: Int
    /// The prompt as written, without special tokens: `37+58=`.
    public let text: String
    /// The prompt's ids (beginning with BOS if the task is so configured): what the model is
    /// given.
    public let prompt: [Int]
    /// The correct answer in canonical decimal form: `95`, `0`, `-21`.
    public let answerText: String
    /// The target completion's ids: the answer's digits (and sign) followed by EOS.
    public let answer: [Int]

    /// The exact result.
    public var result: Int { operation.apply(lhs, rhs) }

    /// The whole training sequence: prompt, answer and EOS.
    public var sequence: [Int] { prompt + answer }

    /// The sequence with a loss mask on the answer and EOS.
    public var supervisedExample: SupervisedExample {
        SupervisedExample(prompt: prompt, completion: answer)
    }

    init(
        lhs: Int, operation: ArithmeticOperation, rhs: Int, text: String, prompt: [Int], answerText: String,
        answer: [Int]
    ) {
        self.lhs = lhs
        self.operation = operation
        self.rhs = rhs
        self.text = text
        self.prompt = prompt
        self.answerText = answerText
        self.answer = answer
    }
}

extension ArithmeticProblem: CustomStringConvertible {
    /// `37+58=95`.
    public var description: String { text + answerText }
}
