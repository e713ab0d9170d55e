import ReinTasks
import Testing

@Suite("Reward")
struct RewardTests {
    let task = try! ArithmeticTask(config: .default)
    let shaped = try! ArithmeticTask(config: ArithmeticTaskConfig(formatReward: 0.1))
    let signed = try! ArithmeticTask(
        config: ArithmeticTaskConfig(operations: [.sub], allowNegative: true, trainSize: 100, heldOutSize: 10)
    )

    /// The ids of `text` (glyphs: `$` EOS, `_` PAD, `^` BOS).
    func ids(_ text: String) -> [Int] { try! Tokenizer.standard.encode(text) }

    func check(
        _ task: ArithmeticTask, _ problem: ArithmeticProblem, _ completion: [Int], _ outcome: AnswerOutcome,
        reward: Double, length: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let grade = task.grade(problem, completion: completion)
        #expect(grade.outcome == outcome, sourceLocation: sourceLocation)
        #expect(grade.reward == reward, sourceLocation: sourceLocation)
        #expect(grade.length == length, sourceLocation: sourceLocation)
        #expect(task.reward(problem, completion: completion) == reward, sourceLocation: sourceLocation)
    }

    @Test("Exactly the answer then EOS is correct; trailing tokens after EOS are ignored")
    func correct() {
        let p = task.problem(37, .add, 58)
        check(task, p, ids("95$"), .correct, reward: 1, length: 3)
        check(task, p, p.answer, .correct, reward: 1, length: 3)
        check(task, p, ids("95$__"), .correct, reward: 1, length: 3)
        check(task, p, ids("95$17+3$"), .correct, reward: 1, length: 3)
        check(shaped, p, ids("95$"), .correct, reward: 1, length: 3)
        let zero = task.problem(12, .sub, 12)
        check(task, zero, ids("0$"), .correct, reward: 1, length: 2)
        let negative = signed.problem(3, .sub, 45)
        check(signed, negative, ids("-42$"), .correct, reward: 1, length: 4)
        #expect(task.grade(p, completion: ids("95$").map { Int32($0) }).outcome == .correct)
        #expect(task.grade(p, completion: ids("95$")[...]).outcome == .correct)
    }

    @Test("A well-formed wrong answer gets the format reward (0 by default)")
    func wrong() {
        let p = task.problem(37, .add, 58)
        check(task, p, ids("96$"), .wrongAnswer, reward: 0, length: 3)
        check(task, p, ids("195$"), .wrongAnswer, reward: 0, length: 4)
        check(task, p, ids("9$5$"), .wrongAnswer, reward: 0, length: 2)
        check(task, p, ids("0$"), .wrongAnswer, reward: 0, length: 2)
        check(shaped, p, ids("96$"), .wrongAnswer, reward: 0.1, length: 3)
        check(shaped, p, ids("-95$"), .wrongAnswer, reward: 0.1, length: 4)
        let negative = signed.problem(3, .sub, 45)
        check(signed, negative, ids("42$"), .wrongAnswer, reward: 0, length: 3)
    }

    @Test("Without EOS a completion is wrong, even if it spells the answer")
    func missingEOS() {
        let p = task.problem(37, .add, 58)
        check(shaped, p, ids("95"), .noEOS, reward: 0, length: 2)
        check(shaped, p, ids("9500"), .noEOS, reward: 0, length: 4)
        check(shaped, p, ids("95__"), .noEOS, reward: 0, length: 4)
        check(shaped, p, [], .noEOS, reward: 0, length: 0)
    }

    @Test("Anything but a canonical integer before EOS is malformed")
    func malformed() {
        let p = task.problem(37, .add, 58)
        for text in [
            "$", "095$", "00$", "-0$", "-$", "9+5$", "95=$", "^95$", "_95$", "9-5$", "--95$", "95-$",
        ] {
            let completion = ids(text)
            check(shaped, p, completion, .malformed, reward: 0, length: completion.firstIndex(of: 2)! + 1)
        }
        check(shaped, p, [12, 27, 2], .malformed, reward: 0, length: 3)  // an id outside the table
        check(shaped, p, [12, -5, 2], .malformed, reward: 0, length: 3)
        check(shaped, p, [Int.max, 2], .malformed, reward: 0, length: 2)
        #expect(shaped.grade(p, completion: [UInt64.max, 2] as [UInt64]).outcome == .malformed)
    }

    @Test("Grading against answer tokens alone agrees")
    func byAnswer() {
        let p = task.problem(99, .add, 99)
        #expect(task.grade(answer: p.answer, completion: ids("198$")).outcome == .correct)
        #expect(task.grade(answer: p.answer, completion: ids("198")).outcome == .noEOS)
    }
}
