/// The `task:` block of a config file: snake_case keys, each optional (missing keys take their
/// value from ``ArithmeticTaskConfig/default``). Decoding does not validate; call
/// ``ArithmeticTaskConfig/validate()`` (``ArithmeticTask/init(config:)`` does).
extension ArithmeticTaskConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case operations
        case minDigits = "min_digits"
        case maxDigits = "max_digits"
        case padOperands = "pad_operands"
        case allowNegative = "allow_negative"
        case prependBOS = "bos"
        case trainSize = "train_size"
        case heldOutSize = "held_out_size"
        case seed
        case formatReward = "format_reward"
    }

    /// Decodes the keys that are present over ``default``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let base = ArithmeticTaskConfig.default
        self.init(
            operations: try c.decodeIfPresent([ArithmeticOperation].self, forKey: .operations)
                ?? base.operations,
            minDigits: try c.decodeIfPresent(Int.self, forKey: .minDigits) ?? base.minDigits,
            maxDigits: try c.decodeIfPresent(Int.self, forKey: .maxDigits) ?? base.maxDigits,
            padOperands: try c.decodeIfPresent(Bool.self, forKey: .padOperands) ?? base.padOperands,
            allowNegative: try c.decodeIfPresent(Bool.self, forKey: .allowNegative) ?? base.allowNegative,
            prependBOS: try c.decodeIfPresent(Bool.self, forKey: .prependBOS) ?? base.prependBOS,
            trainSize: try c.decodeIfPresent(Int.self, forKey: .trainSize) ?? base.trainSize,
            heldOutSize: try c.decodeIfPresent(Int.self, forKey: .heldOutSize) ?? base.heldOutSize,
            seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? base.seed,
            formatReward: try c.decodeIfPresent(Double.self, forKey: .formatReward) ?? base.formatReward)
    }

    /// Encodes every field.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(operations, forKey: .operations)
        try c.encode(minDigits, forKey: .minDigits)
        try c.encode(maxDigits, forKey: .maxDigits)
        try c.encode(padOperands, forKey: .padOperands)
        try c.encode(allowNegative, forKey: .allowNegative)
        try c.encode(prependBOS, forKey: .prependBOS)
        try c.encode(trainSize, forKey: .trainSize)
        try c.encode(heldOutSize, forKey: .heldOutSize)
        try c.encode(seed, forKey: .seed)
        try c.encode(formatReward, forKey: .formatReward)
    }
}
