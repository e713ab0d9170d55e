/// An integer operation of the arithmetic task.
public enum ArithmeticOperation: String, Sendable, Codable, Hashable, CaseIterable {
    /// `a+b`.
    case add
    /// `a-b` (non-negative unless ``ArithmeticTaskConfig/allowNegative`` is set).
    case sub
    /// `a*b`.
    case mul

    /// The operator's character in prompts.
    public var symbol: Character {
        switch self {
        case .add: return "+"
        case .sub: return "-"
        case .mul: return "*"
        }
    }

    /// The exact result (operands of at most 9 digits cannot overflow).
    public func apply(_ lhs: Int, _ rhs: Int) -> Int {
        switch self {
        case .add: return lhs + rhs
        case .sub: return lhs - rhs
        case .mul: return lhs * rhs
        }
    }
}
