import Foundation

/// Rein checkpoints: safetensors files with nanoGPT tensor names and shapes, and metadata
/// `format` = `rein-gpt`, `config` (JSON of ``GPTConfig``) plus whatever the caller adds
/// (by convention `tokenizer` and `policy_version`). PyTorch or numpy can load them as they are.
public enum Checkpoint {
    /// Metadata key of the JSON-encoded ``GPTConfig``.
    public static let configKey = "config"
    /// Metadata key naming the format.
    public static let formatKey = "format"
    /// Conventional metadata key for the tokenizer description.
    public static let tokenizerKey = "tokenizer"
    /// Conventional metadata key for the policy version (the learner's optimizer step).
    public static let policyVersionKey = "policy_version"
    static let format = "rein-gpt"

    /// The safetensors contents of `parameters` with `metadata` (config and format added).
    public static func encode(_ parameters: GPTParameters, metadata: [String: String] = [:]) -> SafeTensors {
        var meta = metadata
        meta[formatKey] = format
        meta[configKey] = String(decoding: try! JSONEncoder.sorted.encode(parameters.config), as: UTF8.self)
        var file = SafeTensors(metadata: meta)
        for spec in parameters.layout.tensors {
            file.tensors[spec.name] = .init(shape: spec.shape, values: Array(parameters.values[spec.range]))
        }
        return file
    }

    /// Writes `parameters` to `path`.
    public static func save(
        _ parameters: GPTParameters, metadata: [String: String] = [:], to path: String
    ) throws(ModelError) {
        try encode(parameters, metadata: metadata).write(to: path)
    }

    /// Reads a checkpoint, checking the config and every tensor's name and shape.
    public static func load(from path: String) throws(ModelError) -> (
        parameters: GPTParameters, metadata: [String: String]
    ) {
        try decode(try SafeTensors.read(from: path), path: path)
    }

    /// Builds parameters from parsed safetensors contents. A tied `lm_head.weight` equal to the
    /// token embedding (as some nanoGPT exports carry) is accepted and ignored.
    public static func decode(
        _ file: SafeTensors, path: String = "<memory>"
    ) throws(ModelError) -> (parameters: GPTParameters, metadata: [String: String]) {
        func bad(_ reason: String) -> ModelError { .incompatibleCheckpoint(path: path, reason: reason) }
        guard let json = file.metadata[configKey] else {
            throw bad("no '\(configKey)' entry in the metadata (not a Rein checkpoint)")
        }
        let config: GPTConfig
        do {
            config = try JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8))
            try config.validate()
        } catch {
            throw bad("metadata config \(json) is not a valid GPTConfig (\(error))")
        }
        // Check every tensor before allocating, so a forged config cannot request a huge buffer.
        let layout = ParameterLayout(config: config)
        for spec in layout.tensors {
            guard let t = file.tensors[spec.name] else { throw bad("missing tensor '\(spec.name)'") }
            guard t.shape == spec.shape else {
                throw bad("tensor '\(spec.name)' has shape \(t.shape), expected \(spec.shape) for \(config)")
            }
        }
        var values = [Float](repeating: 0, count: layout.count)
        for spec in layout.tensors {
            values.replaceSubrange(spec.range, with: file.tensors[spec.name]!.values)
        }
        let parameters = try GPTParameters(config: config, values: values)
        let known = Set(layout.tensors.map(\.name))
        for name in file.tensors.keys where !known.contains(name) {
            if name == "lm_head.weight",
                file.tensors[name]!.values == parameters.tensor("transformer.wte.weight")
            {
                continue
            }
            throw bad("unexpected tensor '\(name)'")
        }
        return (parameters, file.metadata)
    }
}

extension JSONEncoder {
    /// An encoder with sorted keys, for reproducible files.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
