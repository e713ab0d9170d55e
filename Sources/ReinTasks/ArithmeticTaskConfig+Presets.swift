/// Named configurations. Accuracy figures are targets for Rein's default model (0.2M-parameter
/// GPT, d_model 64, pretrained for at most about 90 seconds on 2 CPU cores), not measurements.
extension ArithmeticTaskConfig {
    /// 2-digit addition (`07+58=`): 10,000 problems, answers of at most 3 digits. For smoke tests
    /// and for checking that pretraining works at all; the default model should get close to
    /// solving it, leaving little for RL.
    public static let easy = ArithmeticTaskConfig(operations: [.add], trainSize: 5_000, heldOutSize: 1_000)

    /// 2-digit addition and non-negative subtraction (`37+58=`, `58-37=`): 15,050 problems
    /// (14,000 for training, 1,000 held out), 7-token prompts, answers of at most 3 digits plus
    /// the end token. Carries and borrows make a small model learn it in a sudden jump after a
    /// plateau of varying length, so Rein's recipe stops pretraining at a validation target
    /// (about 67%) and leaves RL room to improve, while every sequence stays 11 tokens or fewer,
    /// so pretraining and rollouts are cheap. The training split takes almost every problem that
    /// is not held out: with 10,000 the plateau lasted longer and some seeds never left it.
    public static let `default` = ArithmeticTaskConfig()

    /// 3-digit addition and non-negative subtraction (`137+958=`): about 1.5 million problems,
    /// answers of at most 4 digits. For a larger model or a longer run.
    public static let hard = ArithmeticTaskConfig(
        operations: [.add, .sub], minDigits: 1, maxDigits: 3, trainSize: 100_000, heldOutSize: 2_000)

    /// 2-digit multiplication (`37*58=`): 10,000 problems, 7-token prompts, answers of at most
    /// 4 digits plus the end token. A different answer structure from ``default``: every digit of
    /// a product depends on every digit of both operands (a sum of digit products with carries),
    /// where a digit of a sum or difference depends on two digits and a carry.
    public static let multiply = ArithmeticTaskConfig(
        operations: [.mul], trainSize: 8_000, heldOutSize: 1_000)

    /// The names ``preset(named:)`` accepts.
    public static let presetNames = ["easy", "default", "hard", "multiply"]

    /// The preset called `name` (one of ``presetNames``).
    public static func preset(named name: String) throws(ArithmeticTaskConfigError) -> ArithmeticTaskConfig {
        switch name {
        case "easy": return .easy
        case "default": return .default
        case "hard": return .hard
        case "multiply": return .multiply
        default: throw .unknownPreset(name, allowed: presetNames)
        }
    }
}
