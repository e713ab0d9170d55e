/// One training sequence for pretraining: prompt then completion, with the loss on the
/// completion.
public struct SupervisedExample: Sendable, Hashable, Codable {
    /// Prompt ids followed by completion ids (answer and EOS).
    public let tokens: [Int]
    /// One flag per token: true on the completion (answer and EOS), the tokens the model must
    /// learn to predict; false on the prompt.
    public let lossMask: [Bool]
    /// The number of prompt tokens (the first masked-in position).
    public let promptLength: Int

    /// The example `prompt + completion` with the loss on `completion`.
    public init(prompt: [Int], completion: [Int]) {
        tokens = prompt + completion
        lossMask =
            Array(repeating: false, count: prompt.count) + Array(repeating: true, count: completion.count)
        promptLength = prompt.count
    }
}

/// Examples padded to one length and laid out row-major, as a model's training batch takes them.
///
/// Positions: ``tokens`` and ``lossMask`` are `rows × length`. A next-token model predicts
/// `tokens[b, t + 1]` from `tokens[b, ...t]`; ``targetMask`` (`rows × (length − 1)`) is
/// ``lossMask`` shifted to that layout: `targetMask[b, t] = lossMask[b, t + 1]`.
public struct SupervisedBatch: Sendable, Hashable {
    /// The number of rows.
    public let rows: Int
    /// The padded length of every row (the longest example, or more if asked).
    public let length: Int
    /// `rows × length` ids; each row is its example followed by the padding id.
    public let tokens: [Int]
    /// The valid (unpadded) tokens of each row.
    public let lengths: [Int]
    /// `rows × length`: true on answer and EOS tokens; false on prompts and padding.
    public let lossMask: [Bool]

    /// Pads `examples` with `padID` to `length` (default: the longest example).
    ///
    /// - Precondition: `examples` is not empty and no example is longer than `length`.
    public init(_ examples: [SupervisedExample], padID: Int, length: Int? = nil) {
        precondition(!examples.isEmpty, "a batch needs at least one example")
        let longest = examples.map(\.tokens.count).max()!
        let length = length ?? longest
        precondition(length >= longest, "an example of \(longest) tokens does not fit in length \(length)")
        var tokens: [Int] = []
        var lossMask: [Bool] = []
        tokens.reserveCapacity(examples.count * length)
        lossMask.reserveCapacity(examples.count * length)
        for example in examples {
            let padding = length - example.tokens.count
            tokens += example.tokens + Array(repeating: padID, count: padding)
            lossMask += example.lossMask + Array(repeating: false, count: padding)
        }
        self.rows = examples.count
        self.length = length
        self.tokens = tokens
        self.lengths = examples.map(\.tokens.count)
        self.lossMask = lossMask
    }

    /// The ids of row `b`, padding included.
    public func row(_ b: Int) -> ArraySlice<Int> {
        tokens[(b * length)..<((b + 1) * length)]
    }

    /// `rows × (length − 1)`: whether the target at each next-token position is a masked-in token.
    public var targetMask: [Bool] {
        var mask: [Bool] = []
        mask.reserveCapacity(rows * max(length - 1, 0))
        for b in 0..<rows {
            mask += lossMask[(b * length + 1)..<((b + 1) * length)]
        }
        return mask
    }

    /// The ids as `Int32` (the model's token type), same layout.
    public var int32Tokens: [Int32] { tokens.map { Int32($0) } }

    /// The number of masked-in tokens (the loss's denominator for a per-token mean).
    public var maskedTokenCount: Int { lossMask.count(where: { $0 }) }
}

/// An endless, seeded stream of padded minibatches of supervised examples (shuffled epochs).
public struct SupervisedBatcher: Sendable {
    /// Rows per batch.
    public let batchSize: Int
    /// The id padding fills rows with.
    public let padID: Int
    /// The padded length of every batch (the longest example), so all batches have one shape.
    public let length: Int
    private var sampler: EpochSampler<SupervisedExample>

    /// Batches of `batchSize` examples drawn from `examples` by an ``EpochSampler`` fixed by `seed`,
    /// each padded with `padID` to the length of the longest of all `examples`.
    ///
    /// - Precondition: `examples` is not empty and `batchSize ≥ 1`.
    public init(examples: [SupervisedExample], batchSize: Int, padID: Int, seed: UInt64) {
        precondition(batchSize >= 1, "batch size must be at least 1, got \(batchSize)")
        self.batchSize = batchSize
        self.padID = padID
        self.sampler = EpochSampler(examples, seed: seed)
        self.length = examples.map(\.tokens.count).max() ?? 0
    }

    /// Completed passes over the examples.
    public var epoch: Int { sampler.epoch }

    /// The next batch.
    public mutating func next() -> SupervisedBatch {
        SupervisedBatch(sampler.next(batchSize), padID: padID, length: length)
    }
}
