import Foundation
import ReinTasks
import Testing

/// Recomputes a problem's answer from its prompt text alone.
func independentAnswer(_ text: String) -> Int? {
    guard text.last == "=" else { return nil }
    let body = text.dropLast()
    guard let index = body.dropFirst().firstIndex(where: { "+-*".contains($0) }),
        let lhs = Int(body[..<index]), let rhs = Int(body[body.index(after: index)...])
    else { return nil }
    switch body[index] {
    case "+": return lhs + rhs
    case "-": return lhs - rhs
    default: return lhs * rhs
    }
}

@Suite("ArithmeticTask")
struct ArithmeticTaskTests {
    @Test("Problems are written, tokenized and answered correctly")
    func problemFormat() throws {
        let task = try ArithmeticTask(config: .default)
        let p = task.problem(7, .add, 58)
        #expect(p.text == "07+58=")
        #expect(p.prompt == [1, 3, 10, 13, 8, 11, 16])
        #expect(p.answerText == "65")
        #expect(p.answer == [9, 8, 2])
        #expect(p.sequence == p.prompt + p.answer)
        #expect(p.description == "07+58=65")
        #expect(task.problem(0, .sub, 0).answerText == "0")

        let unpadded = try ArithmeticTask(
            config: ArithmeticTaskConfig(
                operations: [.sub, .mul], padOperands: false, allowNegative: true, prependBOS: false))
        let q = unpadded.problem(3, .sub, 45)
        #expect(q.text == "3-45=")
        #expect(q.prompt == [6, 14, 7, 8, 16])
        #expect(q.answerText == "-42")
        #expect(q.answer == [14, 7, 5, 2])
        #expect(unpadded.problem(12, .mul, 9).answerText == "108")
    }

    @Test(
        "Random problems follow the configuration, and their answers are right",
        arguments: [
            ArithmeticTaskConfig.easy, .default, .hard,
            ArithmeticTaskConfig(
                operations: [.mul, .sub], minDigits: 2, maxDigits: 3, padOperands: false, allowNegative: true,
                prependBOS: false, trainSize: 100, heldOutSize: 10),
        ])
    func randomProblems(config: ArithmeticTaskConfig) throws {
        let task = try ArithmeticTask(config: config)
        var random = TaskRandom(seed: 42)
        var operations = Set<ArithmeticOperation>()
        for _ in 0..<2_000 {
            let p = task.randomProblem(using: &random)
            operations.insert(p.operation)
            #expect(config.operandRange.contains(p.lhs) && config.operandRange.contains(p.rhs))
            let answer = try #require(independentAnswer(p.text))
            #expect(p.result == answer)
            #expect(p.answerText == String(answer))
            #expect(try Tokenizer.standard.decode(p.prompt) == (config.prependBOS ? "^" : "") + p.text)
            #expect(try Tokenizer.standard.decode(p.answer) == p.answerText + "$")
            if !config.allowNegative { #expect(answer >= 0) }
            if let length = task.promptLength { #expect(p.prompt.count == length) }
            #expect(p.prompt.count <= task.maxPromptLength)
            #expect(p.answer.count <= task.maxAnswerTokens)
        }
        #expect(operations == Set(config.operations))
    }

    @Test("Prompt and answer lengths of the presets")
    func lengths() throws {
        let standard = try ArithmeticTask(config: .default)
        #expect(standard.promptLength == 7)
        #expect(standard.maxAnswerLength == 3)
        #expect(standard.maxAnswerTokens == 4)
        #expect(standard.maxSequenceLength == 11)
        #expect(ArithmeticTaskConfig.default.operandRange == 0...99)
        #expect(ArithmeticTaskConfig.default.problemCount == 10_000 + 5_050)

        let hard = try ArithmeticTask(config: .hard)
        #expect(hard.promptLength == 9)
        #expect(hard.maxAnswerTokens == 5)  // 999+999 = 1998

        let negative = try ArithmeticTask(
            config: ArithmeticTaskConfig(
                operations: [.sub], padOperands: false, allowNegative: true, trainSize: 100, heldOutSize: 10))
        #expect(negative.promptLength == nil)
        #expect(negative.maxPromptLength == 7)
        #expect(negative.maxAnswerLength == 3)  // -99

        let product = try ArithmeticTask(
            config: ArithmeticTaskConfig(operations: [.mul], minDigits: 2, trainSize: 5_000))
        #expect(product.config.operandRange == 10...99)
        #expect(product.promptLength == 7)
        #expect(product.maxAnswerLength == 4)  // 99*99 = 9801
        #expect(product.config.problemCount == 8_100)
    }

    @Test("Validation names the field and the allowed values")
    func validation() {
        func failure(_ config: ArithmeticTaskConfig) -> String? {
            do {
                try config.validate()
                return nil
            } catch {
                return error.description
            }
        }
        #expect(failure(.default) == nil)
        #expect(failure(.easy) == nil)
        #expect(failure(.hard) == nil)
        #expect(failure(ArithmeticTaskConfig(operations: []))?.contains("operations") == true)
        #expect(failure(ArithmeticTaskConfig(operations: [.add, .add]))?.contains("distinct") == true)
        #expect(
            failure(ArithmeticTaskConfig(minDigits: 0))
                == "invalid task config: min_digits = 0; allowed: 1...9")
        #expect(failure(ArithmeticTaskConfig(minDigits: 3, maxDigits: 2))?.contains("max_digits = 2") == true)
        #expect(failure(ArithmeticTaskConfig(maxDigits: 10))?.contains("max_digits = 10") == true)
        #expect(
            failure(ArithmeticTaskConfig(trainSize: 0))?.contains("train_size = 0; allowed: 1...") == true)
        #expect(failure(ArithmeticTaskConfig(heldOutSize: -1))?.contains("held_out_size") == true)
        #expect(
            failure(ArithmeticTaskConfig(operations: [.add], maxDigits: 1, trainSize: 90, heldOutSize: 11))
                == "invalid task config: train_size + held_out_size = 101; allowed: at most 100, "
                + "the number of distinct problems of this configuration")
        #expect(failure(ArithmeticTaskConfig(formatReward: 1))?.contains("format_reward = 1.0") == true)
        #expect(failure(ArithmeticTaskConfig(formatReward: .nan))?.contains("format_reward") == true)
        #expect(throws: ArithmeticTaskConfigError.self) {
            try ArithmeticTask(config: ArithmeticTaskConfig(minDigits: 0))
        }
    }

    @Test("Presets by name")
    func presets() throws {
        #expect(ArithmeticTaskConfig.presetNames == ["easy", "default", "hard", "multiply"])
        #expect(try ArithmeticTaskConfig.preset(named: "multiply") == .multiply)
        #expect(try ArithmeticTaskConfig.preset(named: "default") == .default)
        #expect(try ArithmeticTaskConfig.preset(named: "hard") == .hard)
        #expect(
            throws: ArithmeticTaskConfigError.unknownPreset(
                "medium", allowed: ["easy", "default", "hard", "multiply"])
        ) {
            try ArithmeticTaskConfig.preset(named: "medium")
        }
        #expect(ArithmeticTaskConfig.default.operations == [.add, .sub])
        #expect(ArithmeticTaskConfig.default.padOperands)
        #expect(!ArithmeticTaskConfig.default.allowNegative)
        #expect(ArithmeticTaskConfig.default.formatReward == 0)
    }

    @Test("The multiply preset: 2-digit products, answers of up to 4 digits, disjoint splits")
    func multiplyPreset() throws {
        let task = try ArithmeticTask(config: .multiply)
        #expect(task.config.operations == [.mul])
        #expect(task.config.problemCount == 10_000)
        #expect(task.promptLength == 7)
        #expect(task.maxAnswerLength == 4)
        #expect(task.maxSequenceLength == 12)
        let problem = task.problem(7, .mul, 58)
        #expect(problem.text == "07*58=")
        #expect(problem.answerText == "406")
        #expect(task.grade(problem, completion: problem.answer).outcome == .correct)
        let data = ArithmeticDataset(task: task)
        #expect(data.train.count == 8_000 && data.heldOut.count == 1_000)
        #expect(Set(data.train).isDisjoint(with: Set(data.heldOut)))
        #expect(data.heldOut.allSatisfy { $0.operation == .mul && $0.result == $0.lhs * $0.rhs })
    }

    @Test("Config JSON uses snake_case keys; missing keys take the defaults")
    func configCoding() throws {
        let config = ArithmeticTaskConfig(
            operations: [.mul], minDigits: 2, maxDigits: 3, padOperands: false, allowNegative: true,
            prependBOS: false,
            trainSize: 7, heldOutSize: 3, seed: 99, formatReward: 0.1)
        let data = try JSONEncoder().encode(config)
        let json = String(decoding: data, as: UTF8.self)
        for key in [
            "min_digits", "max_digits", "pad_operands", "allow_negative", "train_size", "held_out_size",
        ] {
            #expect(json.contains("\"\(key)\""), "\(key) in \(json)")
        }
        #expect(try JSONDecoder().decode(ArithmeticTaskConfig.self, from: data) == config)

        let partial = #"{"operations": ["add"], "format_reward": 0.1}"#
        var expected = ArithmeticTaskConfig.default
        expected.operations = [.add]
        expected.formatReward = 0.1
        #expect(try JSONDecoder().decode(ArithmeticTaskConfig.self, from: Data(partial.utf8)) == expected)
        #expect(try JSONDecoder().decode(ArithmeticTaskConfig.self, from: Data("{}".utf8)) == .default)
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(ArithmeticTaskConfig.self, from: Data(#"{"operations": ["div"]}"#.utf8))
        }
    }
}
