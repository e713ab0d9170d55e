/// What problems the arithmetic task asks, how they are written, how splits are drawn and how
/// answers are rewarded.
///
/// A problem is `a op b` with `op` drawn uniformly from ``operations`` and each operand drawn
/// uniformly from ``operandRange`` (every integer with ``minDigits`` to ``maxDigits`` digits;
/// 0 counts as one digit). For ``ArithmeticOperation/sub`` without ``allowNegative`` the operands
/// are swapped when `a < b`, so every answer is non-negative.
///
/// In config files the keys are snake_case (`operations`, `min_digits`, `max_digits`,
/// `pad_operands`, `allow_negative`, `bos`, `train_size`, `held_out_size`, `seed`,
/// `format_reward`); a missing key takes its value from ``default``.
public struct ArithmeticTaskConfig: Sendable, Hashable {
    /// The operations to draw from (distinct, at least one).
    public var operations: [ArithmeticOperation]
    /// The fewest digits of an operand (1...``maxDigits``).
    public var minDigits: Int
    /// The most digits of an operand (``minDigits``...9).
    public var maxDigits: Int
    /// Writes every operand zero-padded to ``maxDigits`` digits (`07+58=`), so that all prompts
    /// have the same length (the sampler takes equal-length prompts).
    public var padOperands: Bool
    /// Lets subtraction have negative answers (`-21`); otherwise `a ≥ b` in every `a-b`.
    public var allowNegative: Bool
    /// Starts every prompt with the beginning-of-sequence token.
    public var prependBOS: Bool
    /// Problems in the training split (1...1,000,000).
    public var trainSize: Int
    /// Problems in the held-out split (0...100,000), none of them in the training split.
    public var heldOutSize: Int
    /// Fixes both splits.
    public var seed: UInt64
    /// The reward of a well-formed but wrong answer (0 ≤ value < 1; a correct answer gets 1).
    public var formatReward: Double

    /// A configuration; every argument defaults to its value in ``default``.
    public init(
        operations: [ArithmeticOperation] = [.add, .sub], minDigits: Int = 1, maxDigits: Int = 2,
        padOperands: Bool = true, allowNegative: Bool = false, prependBOS: Bool = true,
        trainSize: Int = 14_000, heldOutSize: Int = 1_000, seed: UInt64 = 1, formatReward: Double = 0
    ) {
        self.operations = operations
        self.minDigits = minDigits
        self.maxDigits = maxDigits
        self.padOperands = padOperands
        self.allowNegative = allowNegative
        self.prependBOS = prependBOS
        self.trainSize = trainSize
        self.heldOutSize = heldOutSize
        self.seed = seed
        self.formatReward = formatReward
    }

    /// Every operand value: `0...99` for 1 to 2 digits, `100...999` for exactly 3 digits.
    public var operandRange: ClosedRange<Int> {
        let low = minDigits <= 1 ? 0 : power10(minDigits - 1)
        return low...(power10(maxDigits) - 1)
    }

    /// The number of distinct problems the configuration can ask (`Int.max` if it overflows).
    public var problemCount: Int {
        let values = operandRange.count
        let (square, overflow) = values.multipliedReportingOverflow(by: values)
        if overflow { return .max }
        return operations.reduce(0) { total, operation in
            let count = operation == .sub && !allowNegative ? square / 2 + values / 2 + values % 2 : square
            let (sum, overflow) = total.addingReportingOverflow(count)
            return overflow ? .max : sum
        }
    }

    /// Checks every field; the error names the field (by its config-file key) and the allowed
    /// values.
    public func validate() throws(ArithmeticTaskConfigError) {
        func invalid(_ field: String, _ value: Any, _ allowed: String) -> ArithmeticTaskConfigError {
            .invalid(field: field, value: "\(value)", allowed: allowed)
        }
        let names = ArithmeticOperation.allCases.map(\.rawValue).joined(separator: ", ")
        guard !operations.isEmpty, Set(operations).count == operations.count else {
            throw invalid(
                "operations", operations.map(\.rawValue), "a non-empty list of distinct names from \(names)")
        }
        guard (1...9).contains(minDigits) else { throw invalid("min_digits", minDigits, "1...9") }
        guard (minDigits...9).contains(maxDigits) else {
            throw invalid("max_digits", maxDigits, "\(minDigits)...9 (min_digits...9)")
        }
        guard (1...1_000_000).contains(trainSize) else {
            throw invalid("train_size", trainSize, "1...1000000")
        }
        guard (0...100_000).contains(heldOutSize) else {
            throw invalid("held_out_size", heldOutSize, "0...100000")
        }
        guard trainSize + heldOutSize <= problemCount else {
            throw invalid(
                "train_size + held_out_size", trainSize + heldOutSize,
                "at most \(problemCount), the number of distinct problems of this configuration")
        }
        guard formatReward.isFinite, formatReward >= 0, formatReward < 1 else {
            throw invalid("format_reward", formatReward, "0 ≤ format_reward < 1")
        }
    }
}

/// 10^exponent, held at 10^18 (the largest power of ten an `Int` holds).
func power10(_ exponent: Int) -> Int {
    var value = 1
    for _ in 0..<min(exponent, 18) { value *= 10 }
    return value
}

/// A configuration that breaks a rule, or an unknown preset.
public enum ArithmeticTaskConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A field (by its config-file key), the rejected value and what is allowed.
    case invalid(field: String, value: String, allowed: String)
    /// A preset name that does not exist, and the names that do.
    case unknownPreset(String, allowed: [String])

    /// One line naming the field and the allowed values.
    public var description: String {
        switch self {
        case .invalid(let field, let value, let allowed):
            return "invalid task config: \(field) = \(value); allowed: \(allowed)"
        case .unknownPreset(let name, let allowed):
            return "unknown task preset '\(name)'; allowed: \(allowed.joined(separator: ", "))"
        }
    }
}
