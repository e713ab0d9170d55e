import ArgumentParser
import Foundation
import ReinTasks

/// `rein task`: the verifiable arithmetic task.
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Inspect the verifiable arithmetic task.",
        subcommands: [TaskSampleCommand.self]
    )
}

/// `rein task sample [--preset NAME] [--count N] [--seed S] [--split train|held-out]`.
struct TaskSampleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Print a preset's shape and example problems with their prompt and answer tokens."
    )

    @Option(name: .long, help: "Task preset: \(ArithmeticTaskConfig.presetNames.joined(separator: ", ")).")
    var preset = "default"

    @Option(name: .long, help: "Problems to print.")
    var count = 5

    @Option(name: .long, help: "Split seed (default: the preset's).")
    var seed: UInt64?

    @Option(name: .long, help: "Split to print from: train or held-out.")
    var split = "train"

    func run() async throws {
        guard count >= 0 else { throw CLIError("--count must be at least 0, got \(count)") }
        guard split == "train" || split == "held-out" else {
            throw CLIError("--split must be train or held-out, got '\(split)'")
        }
        let task: ArithmeticTask
        do {
            var config = try ArithmeticTaskConfig.preset(named: preset)
            if let seed { config.seed = seed }
            task = try ArithmeticTask(config: config)
        } catch {
            throw CLIError(error.description)
        }
        let config = task.config
        let data = ArithmeticDataset(task: task)
        let operands =
            "operands \(config.operandRange)"
            + (config.padOperands ? " zero-padded to \(config.maxDigits) digits" : "")
        emit(
            "preset \(preset): \(config.operations.map(\.rawValue).joined(separator: ", ")); \(operands); "
                + (config.allowNegative ? "negative answers allowed" : "non-negative answers"))
        emit(
            "\(config.problemCount) problems; train \(config.trainSize), held-out \(config.heldOutSize), "
                + "seed \(config.seed); format reward \(config.formatReward)")
        emit(
            "prompt \(task.promptLength.map { "\($0)" } ?? "≤ \(task.maxPromptLength)") tokens; "
                + "answer ≤ \(task.maxAnswerLength) characters + EOS (max new tokens \(task.maxAnswerTokens)); "
                + "sequence ≤ \(task.maxSequenceLength) tokens")
        emit("tokenizer \(task.tokenizer.jsonDescription)")
        emit("")
        let problems = split == "train" ? Array(data.train.prefix(count)) : Array(data.heldOut.prefix(count))
        let width = (problems.prefix(count).map(\.description.count).max() ?? 0) + 2
        for problem in problems.prefix(count) {
            let name = problem.description.padding(toLength: width, withPad: " ", startingAt: 0)
            emit("\(name)prompt \(problem.prompt)  answer \(problem.answer)")
        }
    }
}
