import ArgumentParser
import Foundation
import Logging
import Rein
import ReinModel
import ReinTracker

/// `rein bias --policy P --behaviour M --reference R`: the tracker's exact measurement on any
/// three checkpoints.
struct BiasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bias",
        abstract: "Measure every KL form's gradient bias exactly on three checkpoints (π_θ, μ, π_ref).",
        discussion: """
            Prompts come from the task's training problems (--config / --task / --set choose the task, \
            train.temperature and threads); one completion per prompt is sampled from the behaviour μ. At \
            every visited prefix each form's expected logit-space gradient under μ is computed exactly over \
            the vocabulary and compared with ∇KL(π_θ‖π_ref); the table pools the positions. Also: the \
            prefix shift (what token ratios cannot correct), ESS/N of token, sequence and prefix ratios, \
            KL(μ‖π_θ) and KL(π_θ‖π_ref). Any nanoGPT-compatible checkpoint of the task's vocabulary \
            that `rein model score` reads works.
            """
    )

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: "π_θ: the policy being trained (safetensors).") var policy: String
    @Option(name: .long, help: "μ: the behaviour policy that sampled (safetensors).") var behaviour: String
    @Option(name: .long, help: "π_ref: the reference policy (safetensors).") var reference: String
    @Option(name: .long, help: "Sequences sampled from μ.") var samples = 256
    @Option(name: .long, help: "Seed of the prompts and the sampling.") var seed: UInt64 = 1
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let config = try options.load()
        let result: CheckpointBias
        do {
            result = try CheckpointBias.measure(
                policy: Checkpoint.load(from: policy).parameters,
                behaviour: Checkpoint.load(from: behaviour).parameters,
                reference: Checkpoint.load(from: reference).parameters,
                options: CheckpointBias.Options(
                    task: config.task, samples: samples, temperature: config.train.temperature, seed: seed,
                    threads: config.threads),
                logger: Logger(label: "rein.bias"))
        } catch {
            throw CLIError("\(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(
                positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            emit(String(decoding: try encoder.encode(result), as: UTF8.self))
            return
        }
        Self.emitTable(result)
    }

    static func emitTable(_ r: CheckpointBias) {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4g", $0) } ?? "–" }
        emit(
            "\(r.sequences) sequences, \(r.positions) positions" + (r.onPolicy ? " (μ = π_θ: on-policy)" : "")
                + "; KL(μ‖π_θ) \(f(r.behaviourKL)), KL(π_θ‖π_ref) \(f(r.reverseKL)) per position")
        emit(
            "ESS/N: token \(f(r.tokenESSFraction)), sequence \(f(r.sequenceESSFraction)), prefix "
                + "\(f(r.prefixESSFraction)); prefix shift \(f(r.prefixShift))")
        emit("")
        emit("| form | relative error to ∇KL(π_θ‖π_ref) | cosine | relative error to ∇KL(π_ref‖π_θ) |")
        emit("|---|---|---|---|")
        for form in r.forms {
            emit(
                "| `\(form.id)` | \(f(form.relativeError)) | \(f(form.cosine)) | \(f(form.forwardRelativeError)) |"
            )
        }
    }
}
