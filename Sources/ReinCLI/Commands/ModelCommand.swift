import ArgumentParser
import Foundation
import ReinModel

/// `rein model …`: create and inspect GPT policy checkpoints.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Create and score GPT policy checkpoints (safetensors, nanoGPT tensor names).",
        subcommands: [Score.self, Init.self]
    )

    /// `rein model score`: per-token log-probs of token sequences under a checkpoint.
    struct Score: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print log π(token[t+1] | tokens[…t]) for each sequence of a tokens file.",
            discussion: """
                The tokens file is JSON: {"sequences": [[int, …], …]}. Output has one fewer value than each \
                sequence: {"logprobs": [[…], …]}.
                """
        )

        @Option(help: "Checkpoint (.safetensors) to score with.")
        var checkpoint: String

        @Option(help: "JSON file {\"sequences\": [[int, …], …]}.")
        var tokens: String

        @Flag(help: "Print JSON instead of one line of log-probs per sequence.")
        var json = false

        @Option(help: "Threads to use.")
        var threads: Int = 1

        func run() async throws {
            let (parameters, _) = try Checkpoint.load(from: checkpoint)
            let sequences = try readSequences(tokens)
            guard !sequences.isEmpty else { throw ModelCLIError("\(tokens): no sequences") }
            if let short = sequences.firstIndex(where: { $0.count < 2 }) {
                throw ModelCLIError("\(tokens): sequence \(short) has fewer than 2 tokens")
            }
            let model = GPTModel(parameters: parameters, threads: threads)
            let out = try model.forward(try TokenBatch(sequences: sequences))
            let rows = sequences.enumerated().map { b, s in
                Array(out.logProbs[(b * out.positions)..<(b * out.positions + s.count - 1)])
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: [
                    "logprobs": rows.map { $0.map(Double.init) }
                ])
                emit(String(decoding: data, as: UTF8.self))
            } else {
                for row in rows { emit(row.map { String($0) }.joined(separator: " ")) }
            }
        }
    }

    /// `rein model init`: a freshly initialised checkpoint.
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a freshly initialised checkpoint.",
            discussion: """
                --config is `default`, `small`, or a JSON file / literal with fields vocab, context, dModel, \
                layers, heads.
                """
        )

        @Option(help: "default | small | JSON file | JSON literal.")
        var config: String = "default"

        @Option(help: "Output .safetensors path.")
        var out: String

        @Option(help: "Initialisation seed.")
        var seed: UInt64 = 0

        @Option(help: "Tokenizer description stored in the metadata.")
        var tokenizer: String?

        func run() async throws {
            let cfg = try parseConfig(config)
            let parameters = try GPTParameters(config: cfg, seed: seed)
            var meta = [Checkpoint.policyVersionKey: "0", "seed": String(seed)]
            if let tokenizer { meta[Checkpoint.tokenizerKey] = tokenizer }
            try Checkpoint.save(parameters, metadata: meta, to: out)
            emit("wrote \(out): \(cfg), \(parameters.values.count) parameters")
        }
    }
}

/// Parses `default`, `small`, a JSON file path or a JSON literal into a config.
func parseConfig(_ text: String) throws -> GPTConfig {
    switch text {
    case "default": return .default
    case "small": return .small
    default:
        let data: Data
        if text.trimmingCharacters(in: .whitespaces).hasPrefix("{") {
            data = Data(text.utf8)
        } else {
            guard let d = FileManager.default.contents(atPath: text) else {
                throw ModelCLIError("cannot read config file \(text)")
            }
            data = d
        }
        do {
            let cfg = try JSONDecoder().decode(GPTConfig.self, from: data)
            try cfg.validate()
            return cfg
        } catch let e as ModelError {
            throw ModelCLIError(e.description)
        } catch {
            throw ModelCLIError("config \(text): expected JSON with vocab, context, dModel, layers, heads")
        }
    }
}

/// Reads `{"sequences": [[int, …], …]}`.
func readSequences(_ path: String) throws -> [[Int32]] {
    struct File: Decodable { let sequences: [[Int32]] }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ModelCLIError("cannot read tokens file \(path)")
    }
    do {
        return try JSONDecoder().decode(File.self, from: data).sequences
    } catch {
        throw ModelCLIError("\(path): expected {\"sequences\": [[int, …], …]}")
    }
}

/// A command-line failure reported as one line (`Error: …`), without the usage text.
struct ModelCLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
