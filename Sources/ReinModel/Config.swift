/// Shape of a GPT policy: pre-LayerNorm blocks, learned positions, GELU MLP (4×), biases everywhere,
/// output head tied to the token embedding. Field names follow the safetensors metadata of a checkpoint.
public struct GPTConfig: Codable, Sendable, Hashable, CustomStringConvertible {
    /// Number of token ids (the tied head has one logit per id).
    public var vocab: Int
    /// Maximum sequence length (rows of the position embedding).
    public var context: Int
    /// Width of the residual stream.
    public var dModel: Int
    /// Number of transformer blocks.
    public var layers: Int
    /// Attention heads per block; must divide `dModel`.
    public var heads: Int

    /// Creates a configuration. Call ``validate()`` before building a model from untrusted values.
    public init(vocab: Int, context: Int, dModel: Int, layers: Int, heads: Int) {
        self.vocab = vocab
        self.context = context
        self.dModel = dModel
        self.layers = layers
        self.heads = heads
    }

    /// The default Rein policy: vocab 32, context 64, d_model 128, 4 layers, 4 heads.
    public static let `default` = GPTConfig(vocab: 32, context: 64, dModel: 128, layers: 4, heads: 4)
    /// A small policy for quick experiments: d_model 64, 2 layers, 2 heads.
    public static let small = GPTConfig(vocab: 32, context: 64, dModel: 64, layers: 2, heads: 2)

    /// Width of one attention head.
    public var headDim: Int { dModel / heads }

    /// Number of float32 parameters (the tied head is counted once).
    public var parameterCount: Int { ParameterLayout(config: self).count }

    /// Throws ``ModelError/invalidConfig(_:)`` unless every field is positive, `heads` divides `dModel`,
    /// and the sizes are small enough to index with `Int32`.
    public func validate() throws(ModelError) {
        for (name, value) in [
            ("vocab", vocab), ("context", context), ("dModel", dModel), ("layers", layers), ("heads", heads),
        ] where value < 1 || value > 1 << 20 {
            throw .invalidConfig("\(name) = \(value) must be in 1...\(1 << 20)")
        }
        if dModel % heads != 0 {
            throw .invalidConfig("heads = \(heads) must divide dModel = \(dModel)")
        }
        if layers > 1024 { throw .invalidConfig("layers = \(layers) is more than 1024") }
    }

    /// One line, e.g. `vocab 32, context 64, d_model 128, 4 layers, 4 heads`.
    public var description: String {
        "vocab \(vocab), context \(context), d_model \(dModel), \(layers) layers, \(heads) heads"
    }
}

/// Every error the engine reports. Each case carries enough context for a one-line message.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// A configuration field is out of range.
    case invalidConfig(String)
    /// An argument's shape or value does not fit the model (batch shape, token id, buffer length).
    case invalidArgument(String)
    /// `backward` was called without a matching `forward`.
    case noForwardPass
    /// A file could not be read or written.
    case io(path: String, reason: String)
    /// A file is not a well-formed safetensors file (bad header, dtype, shape, offsets or length).
    case malformedFile(path: String, reason: String)
    /// A well-formed safetensors file does not hold this model (missing, extra or mis-shaped tensors).
    case incompatibleCheckpoint(path: String, reason: String)

    /// The one-line message shown to users.
    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid GPT config: \(why)"
        case .invalidArgument(let why): "invalid argument: \(why)"
        case .noForwardPass: "backward called without a forward pass over the same batch"
        case .io(let path, let why): "\(path): \(why)"
        case .malformedFile(let path, let why): "\(path): not a valid safetensors file: \(why)"
        case .incompatibleCheckpoint(let path, let why): "\(path): not a compatible checkpoint: \(why)"
        }
    }
}
