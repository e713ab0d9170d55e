/// Named configurations. Accuracy figures are targets for Rein's default model (0.8M-parameter
/// GPT, pretrained for at most about 5 minutes on 2 CPU cores), not measurements.
extension ArithmeticTaskConfig {
    /// 2-digit addition (`07+58=`): 10,000 problems, answers of at most 3 digits. For smoke tests
    /// and for checking that pretraining works at all; the default model should get close to
    /// solving it, leaving little for RL.
    public static let easy = ArithmeticTaskConfig(operations: [.add], trainSize: 5_000, heldOutSize: 1_000)

    /// 2-digit addition and non-negative subtraction (`37+58=`, `58-37=`): 15,050 problems,
    /// 7-token prompts, answers of at most 3 digits plus the end token. Carries and borrows
    /// make it hard enough that short pretraining should leave held-out accuracy well below 100%
    /// (the aim is roughly 20–60%) while every sequence stays 11 tokens or fewer, so pretraining
    /// and rollouts are cheap and RL has room to improve.
    public static let `default` = ArithmeticTaskConfig()

    /// 3-digit addition and non-negative subtraction (`137+958=`): about 1.5 million problems,
    /// answers of at most 4 digits. For a larger model or a longer run.
    public static let hard = ArithmeticTaskConfig(
        operations: [.add, .sub], minDigits: 1, maxDigits: 3, trainSize: 100_000, heldOutSize: 2_000)

    /// The names ``preset(named:)`` accepts, easiest first.
    public static let presetNames = ["easy", "default", "hard"]

    /// The preset called `name` (one of ``presetNames``).
    public static func preset(named name: String) throws(ArithmeticTaskConfigError) -> ArithmeticTaskConfig {
        switch name {
        case "easy": return .easy
        case "default": return .default
        case "hard": return .hard
        default: throw .unknownPreset(name, allowed: presetNames)
        }
    }
}
