import Foundation
import ReinTasks
import Testing

@testable import Rein

/// The arithmetic task's values that the Python client (`clients/python/rein_worker/task.py`)
/// reproduces, from the fixture its own tests read (`clients/python/tests/golden/task.json`): a
/// worker in another language must draw the same prompts for a batch index and grade the same way,
/// or the learner's audit benches it.
@Suite("Python client golden values")
struct PythonClientGoldenTests {
    struct Grade: Decodable {
        var answer: String
        var completion: String
        var outcome: String
        var reward: Double
        var length: Int
    }

    struct Golden: Decodable {
        var randomNext: [String]
        var randomBelow: [Int]
        var trainPrompts: [String]
        var heldOutPrompts: [String]
        var lastTrainPrompt: String
        var maxAnswerTokens: Int
        var problemsForStep: [String: [String]]
        var samplingSeed: String
        var firstID: UInt64
        var grades: [Grade]

        enum CodingKeys: String, CodingKey {
            case randomNext = "task_random_seed1_stream0_next"
            case randomBelow = "task_random_seed1_stream_0x7261696E_below_14000"
            case trainPrompts = "train_prompts_first5"
            case heldOutPrompts = "held_out_prompts_first3"
            case lastTrainPrompt = "train_prompts_last"
            case maxAnswerTokens = "max_answer_tokens"
            case problemsForStep = "problems_for_step"
            case samplingSeed = "sampling_seed_step3_seed1"
            case firstID = "first_id_index2_attempt1"
            case grades
        }
    }

    static func golden() throws -> Golden {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../clients/python/tests/golden/task.json").standardized
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    @Test func theTaskMatchesThePythonClient() throws {
        let golden = try Self.golden()
        var random = TaskRandom(seed: 1, stream: 0)
        #expect((0..<3).map { _ in String(random.next()) } == golden.randomNext)
        random = TaskRandom(seed: 1, stream: 0x7261_696E)
        #expect((0..<5).map { _ in random.next(below: 14_000) } == golden.randomBelow)
        let task = try ArithmeticTask(config: .default)
        let dataset = ArithmeticDataset(task: task)
        let tokenizer = task.tokenizer
        func text(_ problem: ArithmeticProblem) throws -> String { try tokenizer.decode(problem.prompt) }
        #expect(try dataset.train.prefix(5).map(text) == golden.trainPrompts)
        #expect(try dataset.heldOut.prefix(3).map(text) == golden.heldOutPrompts)
        #expect(try text(dataset.train.last!) == golden.lastTrainPrompt)
        #expect(task.maxAnswerTokens == golden.maxAnswerTokens)
        var config = RunConfig()
        config.seed = 1
        config.task = .default
        config.train.promptsPerStep = 4
        for (step, prompts) in golden.problemsForStep {
            let problems = Trainer.problems(forStep: Int(step)!, config: config, dataset: dataset)
            #expect(try problems.map(text) == prompts, "step \(step)")
        }
        #expect(String(Trainer.samplingSeed(forStep: 3, seed: 1)) == golden.samplingSeed)
        #expect(Rollout.firstID(index: 2, attempt: 1) == golden.firstID)
        for grade in golden.grades {
            let got = task.grade(
                answer: try tokenizer.encode(grade.answer), completion: try tokenizer.encode(grade.completion)
            )
            #expect(
                got.outcome.rawValue == grade.outcome && got.reward == grade.reward
                    && got.length == grade.length,
                "\(grade.completion) for \(grade.answer)")
        }
    }
}
