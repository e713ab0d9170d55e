/// One named tensor inside the flat parameter buffer, with nanoGPT's name and `torch.nn.Linear` shape.
public struct TensorSpec: Sendable, Hashable {
    /// nanoGPT state-dict name, e.g. `transformer.h.0.attn.c_attn.weight`.
    public let name: String
    /// Row-major shape; linear weights are `[out, in]`.
    public let shape: [Int]
    /// First element in the flat buffer.
    public let offset: Int
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Element range in the flat buffer.
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Offsets of one block's tensors in the flat buffer (hot-loop access without name lookups).
struct BlockOffsets: Sendable {
    var ln1W = 0, ln1B = 0, qkvW = 0, qkvB = 0, attnProjW = 0, attnProjB = 0
    var ln2W = 0, ln2B = 0, fcW = 0, fcB = 0, mlpProjW = 0, mlpProjB = 0
}

/// Where every tensor lives in the flat float32 buffer: nanoGPT order, each tensor contiguous.
public struct ParameterLayout: Sendable {
    /// The model shape this layout describes.
    public let config: GPTConfig
    /// All tensors in buffer order.
    public let tensors: [TensorSpec]
    /// Total number of floats.
    public let count: Int
    let wte: Int, wpe: Int, lnfW: Int, lnfB: Int
    let blocks: [BlockOffsets]

    /// Lays out the tensors of `config`.
    public init(config: GPTConfig) {
        self.config = config
        let (v, t, c) = (config.vocab, config.context, config.dModel)
        var specs: [TensorSpec] = []
        var next = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let spec = TensorSpec(name: name, shape: shape, offset: next)
            specs.append(spec)
            next += spec.count
            return spec.offset
        }
        wte = add("transformer.wte.weight", [v, c])
        wpe = add("transformer.wpe.weight", [t, c])
        var blocks: [BlockOffsets] = []
        for i in 0..<config.layers {
            let p = "transformer.h.\(i)."
            var b = BlockOffsets()
            b.ln1W = add(p + "ln_1.weight", [c])
            b.ln1B = add(p + "ln_1.bias", [c])
            b.qkvW = add(p + "attn.c_attn.weight", [3 * c, c])
            b.qkvB = add(p + "attn.c_attn.bias", [3 * c])
            b.attnProjW = add(p + "attn.c_proj.weight", [c, c])
            b.attnProjB = add(p + "attn.c_proj.bias", [c])
            b.ln2W = add(p + "ln_2.weight", [c])
            b.ln2B = add(p + "ln_2.bias", [c])
            b.fcW = add(p + "mlp.c_fc.weight", [4 * c, c])
            b.fcB = add(p + "mlp.c_fc.bias", [4 * c])
            b.mlpProjW = add(p + "mlp.c_proj.weight", [c, 4 * c])
            b.mlpProjB = add(p + "mlp.c_proj.bias", [c])
            blocks.append(b)
        }
        self.blocks = blocks
        lnfW = add("transformer.ln_f.weight", [c])
        lnfB = add("transformer.ln_f.bias", [c])
        tensors = specs
        count = next
    }

    /// The tensor called `name`, if the layout has one.
    public func spec(named name: String) -> TensorSpec? { tensors.first { $0.name == name } }
}

/// A GPT's weights: one contiguous float32 buffer plus the layout naming its tensors.
/// A value type: copying it snapshots the weights (copy-on-write), so a sampler can keep a ring of
/// older versions and the runtime can broadcast `values` as raw bytes.
public struct GPTParameters: Sendable {
    /// The model shape.
    public let config: GPTConfig
    /// Names, shapes and offsets of the tensors in ``values``.
    public let layout: ParameterLayout
    /// All parameters, in ``layout`` order.
    public var values: [Float]

    /// Deterministic nanoGPT initialisation from `seed`: weights and embeddings N(0, 0.02), the two
    /// residual projections (`attn.c_proj`, `mlp.c_proj`) N(0, 0.02/√(2·layers)), biases 0,
    /// LayerNorm weights 1.
    public init(config: GPTConfig, seed: UInt64) throws(ModelError) {
        try config.validate()
        layout = ParameterLayout(config: config)
        self.config = config
        values = [Float](repeating: 0, count: layout.count)
        var rng = SplitMix64(seed: seed)
        let projStd = 0.02 / (2 * Double(config.layers)).squareRoot()
        for spec in layout.tensors {
            let leaf = spec.name.split(separator: ".").suffix(2).joined(separator: ".")
            let isLayerNorm = spec.name.contains("ln_")
            let std: Double?
            if spec.name.hasSuffix(".bias") || isLayerNorm {
                std = nil
            } else if leaf == "c_proj.weight" {
                std = projStd
            } else {
                std = 0.02
            }
            if let std {
                for i in spec.range { values[i] = Float(rng.nextGaussian() * std) }
            } else if isLayerNorm && spec.name.hasSuffix(".weight") {
                for i in spec.range { values[i] = 1 }
            }
        }
    }

    /// Wraps an existing flat buffer (e.g. received from the learner). Throws if its length is wrong.
    public init(config: GPTConfig, values: [Float]) throws(ModelError) {
        try config.validate()
        let layout = ParameterLayout(config: config)
        guard values.count == layout.count else {
            throw .invalidArgument("flat buffer has \(values.count) floats, \(config) needs \(layout.count)")
        }
        self.config = config
        self.layout = layout
        self.values = values
    }

    /// Rebuilds weights from raw float32 bytes (host byte order, as sent by ``withUnsafeBytes(_:)``).
    public init(config: GPTConfig, bytes: UnsafeRawBufferPointer) throws(ModelError) {
        let count = ParameterLayout(config: config).count
        guard bytes.count == 4 * count else {
            throw .invalidArgument("\(bytes.count) bytes cannot hold the \(count) floats of \(config)")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
        try self.init(config: config, values: values)
    }

    /// The flat buffer as raw float32 bytes, e.g. to broadcast without copying.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try values.withUnsafeBytes(body)
    }

    /// The named tensor as a slice of ``values`` (read or write in place). Traps on an unknown name.
    public subscript(tensor name: String) -> ArraySlice<Float> {
        get { values[layout.spec(named: name)!.range] }
        set {
            let range = layout.spec(named: name)!.range
            precondition(newValue.count == range.count, "\(name) holds \(range.count) values")
            values.replaceSubrange(range, with: newValue)
        }
    }

    /// Copy of the tensor called `name` (nil if there is none).
    public func tensor(_ name: String) -> [Float]? {
        layout.spec(named: name).map { Array(values[$0.range]) }
    }

    /// Overwrites all weights from a flat buffer of the same length.
    public mutating func load(flat: [Float]) throws(ModelError) {
        guard flat.count == values.count else {
            throw .invalidArgument("flat buffer has \(flat.count) floats, expected \(values.count)")
        }
        values = flat
    }
}
