import Foundation
import ReinTasks
import Testing

@Suite("Evaluation")
struct EvaluationTests {
    let task: ArithmeticTask
    let data: ArithmeticDataset

    init() throws {
        task = try ArithmeticTask(config: ArithmeticTaskConfig(formatReward: 0.25))
        data = ArithmeticDataset(task: task)
    }

    /// Answers a prompt by reading it (the oracle a perfect model would be).
    func oracle(_ prompt: [Int]) -> [Int] {
        let text = try! Tokenizer.standard.decode(prompt.filter { $0 != Tokenizer.standard.bos })
        return try! Tokenizer.standard.encode(String(independentAnswer(text)!)) + [Tokenizer.standard.eos]
    }

    @Test("An oracle scores 1 on the held-out set, in batches of the requested size")
    func perfect() throws {
        var batchSizes: [Int] = []
        let result = try task.evaluate(data.heldOut, batchSize: 64) { prompts in
            batchSizes.append(prompts.count)
            #expect(Set(prompts.map(\.count)) == [task.promptLength!])
            return prompts.map(oracle)
        }
        #expect(result.n == 1_000)
        #expect(result.correct == 1_000)
        #expect(result.accuracy == 1)
        #expect(result.meanReward == 1)
        #expect(batchSizes == Array(repeating: 64, count: 15) + [40])
    }

    @Test("A constant answer scores the exact fraction of problems with that answer")
    func constant() throws {
        let problems = data.heldOut(prefix: 300)
        let zeros = problems.count(where: { $0.result == 0 })
        let result = try task.evaluate(problems, batchSize: 7) { prompts in
            prompts.map { _ in [3, 2] }  // "0$"
        }
        #expect(result.n == 300)
        #expect(result.correct == zeros)
        #expect(result.wrongAnswer == 300 - zeros)
        #expect(result[.correct] + result[.wrongAnswer] == 300)
        #expect(result.accuracy == Double(zeros) / 300)
        #expect(abs(result.meanReward - (Double(zeros) + 0.25 * Double(300 - zeros)) / 300) < 1e-12)
    }

    @Test("Outcomes are counted separately")
    func mixed() throws {
        let problems = Array(data.heldOut.prefix(8))
        var i = -1
        let result = try task.evaluate(problems, batchSize: 3) { prompts in
            prompts.map { prompt in
                i += 1
                switch i % 4 {
                case 0: return oracle(prompt)  // correct
                case 1: return Array(oracle(prompt).dropLast())  // no EOS
                case 2: return [13, 2]  // "+$": malformed
                default: return [14, 4, 3, 3, 3, 2]  // "-1000$": wrong
                }
            }
        }
        #expect(result.n == 8)
        for outcome in AnswerOutcome.allCases {
            #expect(result[outcome] == 2, "\(outcome)")
        }
        #expect(result.accuracy == 0.25)
        #expect(result.meanReward == 2.5 / 8)  // 2 correct, 2 wrong at 0.25
        let empty = try task.evaluate([ArithmeticProblem]()) { _ in
            Issue.record("called")
            return []
        }
        #expect(empty == EvaluationResult())
        #expect(empty.accuracy == 0)
    }

    @Test("A generator returning the wrong number of completions is an error")
    func countMismatch() {
        #expect(throws: EvaluationError.completionCount(prompts: 4, completions: 3)) {
            try task.evaluate(data.heldOut.prefix(4)) { prompts in Array(prompts.map(oracle).dropLast()) }
        }
    }

    @Test("Asynchronous generators give the same result; results encode as JSON")
    func asynchronous() async throws {
        let problems = data.heldOut(prefix: 50)
        let sync = try task.evaluate(problems, batchSize: 16) { prompts in prompts.map(oracle) }
        let async = try await task.evaluate(problems, batchSize: 16) { (prompts: [[Int]]) async throws in
            await Task.yield()
            return prompts.map(oracle)
        }
        #expect(sync == async)
        let json = String(decoding: try JSONEncoder().encode(sync), as: UTF8.self)
        #expect(json.contains("\"accuracy\":1"))
        #expect(json.contains("\"no_eos\":0"))
        #expect(try JSONDecoder().decode(EvaluationResult.self, from: Data(json.utf8)) == sync)
    }
}
