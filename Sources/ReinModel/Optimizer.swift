import Foundation

/// AdamW hyper-parameters (defaults as `torch.optim.AdamW`).
public struct AdamWConfig: Codable, Sendable, Hashable {
    /// Decay of the first-moment estimate.
    public var beta1: Float = 0.9
    /// Decay of the second-moment estimate.
    public var beta2: Float = 0.999
    /// Added to √v̂ in the denominator.
    public var eps: Float = 1e-8
    /// Decoupled weight decay, applied to matrices and embeddings only (not biases or LayerNorms).
    public var weightDecay: Float = 0.01
    /// Hyper-parameters; the defaults are PyTorch's.
    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
        (self.beta1, self.beta2, self.eps, self.weightDecay) = (beta1, beta2, eps, weightDecay)
    }
}

/// AdamW with bias correction and decoupled weight decay, over a flat parameter buffer:
///
///     t += 1;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
///     θ = θ·(1 − lr·λ·decay(θ)) − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
///
/// the same arithmetic as `torch.optim.AdamW`. `decay(θ)` is 1 for tensors of rank ≥ 2.
public struct AdamW: Sendable {
    /// Hyper-parameters.
    public var config: AdamWConfig
    /// Steps taken so far.
    public private(set) var stepCount = 0
    /// First and second moment estimates, laid out like the parameters.
    public private(set) var m: [Float], v: [Float]
    /// Ranges of the flat buffer that get weight decay.
    public let decayRanges: [Range<Int>]
    /// Threads that share an update (each takes a contiguous part of the buffer).
    public let threads: Int
    /// The buffer cut into (range, decayed?) segments, in order.
    private let segments: [(range: Range<Int>, decays: Bool)]

    /// An optimizer for parameters laid out as `layout`; `threads` split each update.
    public init(layout: ParameterLayout, config: AdamWConfig = AdamWConfig(), threads: Int = 1) {
        self.config = config
        self.threads = max(1, threads)
        m = [Float](repeating: 0, count: layout.count)
        v = m
        decayRanges = layout.tensors.filter { $0.shape.count >= 2 }.map(\.range)
        var segments: [(Range<Int>, Bool)] = []
        var next = 0
        for r in decayRanges {
            if next < r.lowerBound { segments.append((next..<r.lowerBound, false)) }
            segments.append((r, true))
            next = r.upperBound
        }
        if next < layout.count { segments.append((next..<layout.count, false)) }
        self.segments = segments
    }

    /// One update of `params` from `grads` at learning rate `lr`.
    public mutating func step(params: inout [Float], grads: [Float], lr: Float) {
        precondition(
            params.count == m.count && grads.count == m.count, "buffer sizes differ from the optimizer's")
        stepCount += 1
        let c = config
        let bc1 = 1 - pow(c.beta1, Float(stepCount))
        let bc2Sqrt = (1 - pow(c.beta2, Float(stepCount))).squareRoot()
        let stepSize = lr / bc1
        let decay = 1 - lr * c.weightDecay
        let (segments, threads, count) = (segments, threads, m.count)
        params.withUnsafeMutableBufferPointer { p in
            grads.withUnsafeBufferPointer { g in
                m.withUnsafeMutableBufferPointer { m in
                    v.withUnsafeMutableBufferPointer { v in
                        let (pp, gp) = (
                            SendablePointer(p.baseAddress!),
                            SendablePointer(UnsafeMutablePointer(mutating: g.baseAddress!))
                        )
                        let (mp, vp) = (SendablePointer(m.baseAddress!), SendablePointer(v.baseAddress!))
                        parallel(threads) { part in
                            let mine = shardRange(part, of: threads, total: count)
                            let (p, g, m, v) = (pp.pointer, gp.pointer, mp.pointer, vp.pointer)
                            for (range, decays) in segments where range.overlaps(mine) {
                                let d = decays ? decay : 1
                                let r = range.clamped(to: mine)
                                // 8 lanes at a time, then the tail; the same operations in the same
                                // order, so both round alike.
                                var i = r.lowerBound
                                while i + 8 <= r.upperBound {
                                    let gi = load8(g + i)
                                    let mi = c.beta1 * load8(m + i) + (1 - c.beta1) * gi
                                    let vi = c.beta2 * load8(v + i) + (1 - c.beta2) * gi * gi
                                    store8(mi, m + i)
                                    store8(vi, v + i)
                                    store8(
                                        load8(p + i) * d - stepSize * mi
                                            / (vi.squareRoot() / bc2Sqrt + c.eps),
                                        p + i)
                                    i += 8
                                }
                                while i < r.upperBound {
                                    let gi = g[i]
                                    m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi
                                    v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi
                                    p[i] = p[i] * d - stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + c.eps)
                                    i += 1
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: State

    /// The optimizer state as safetensors: tensors `m` and `v`, metadata `step` and `config`.
    public func encode() -> SafeTensors {
        SafeTensors(
            tensors: ["m": .init(shape: [m.count], values: m), "v": .init(shape: [v.count], values: v)],
            metadata: [
                "format": "rein-adamw", "step": String(stepCount),
                "config": String(decoding: try! JSONEncoder.sorted.encode(config), as: UTF8.self),
            ])
    }

    /// Writes the state to `path`.
    public func save(to path: String) throws(ModelError) { try encode().write(to: path) }

    /// Restores state saved by ``save(to:)``; the moment buffers must match this optimizer's size.
    public mutating func load(from path: String) throws(ModelError) {
        try restore(from: try SafeTensors.read(from: path), path: path)
    }

    /// Restores state from parsed safetensors contents.
    public mutating func restore(from file: SafeTensors, path: String = "<memory>") throws(ModelError) {
        func bad(_ reason: String) -> ModelError { .incompatibleCheckpoint(path: path, reason: reason) }
        guard file.metadata["format"] == "rein-adamw", let step = file.metadata["step"].flatMap(Int.init),
            step >= 0,
            let json = file.metadata["config"],
            let config = try? JSONDecoder().decode(AdamWConfig.self, from: Data(json.utf8))
        else { throw bad("not a Rein AdamW state (format, step or config metadata missing)") }
        guard let m = file.tensors["m"], let v = file.tensors["v"], m.values.count == self.m.count,
            v.values.count == self.v.count, file.tensors.count == 2
        else { throw bad("optimizer state must hold tensors m and v of \(self.m.count) floats") }
        (self.config, stepCount, self.m, self.v) = (config, step, m.values, v.values)
    }
}

/// Scales `grads` so that their global L2 norm is at most `maxNorm` (as
/// `torch.nn.utils.clip_grad_norm_`: factor `maxNorm / (norm + 1e-6)` when that is below 1).
/// Returns the norm before clipping (accumulated in float64).
@discardableResult
public func clipGradientNorm(_ grads: inout [Float], maxNorm: Float) -> Float {
    var total = 0.0
    grads.withUnsafeBufferPointer { g in
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= g.count {
            let x = SIMD8<Double>(
                Double(g[i]), Double(g[i + 1]), Double(g[i + 2]), Double(g[i + 3]), Double(g[i + 4]),
                Double(g[i + 5]), Double(g[i + 6]), Double(g[i + 7]))
            acc += x * x
            i += 8
        }
        total = acc.sum()
        while i < g.count {
            total += Double(g[i]) * Double(g[i])
            i += 1
        }
    }
    let norm = Float(total.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 {
        grads.withUnsafeMutableBufferPointer { g in
            for i in g.indices { g[i] *= factor }
        }
    }
    return norm
}

/// Learning-rate schedule: linear warmup to `maxLR` over `warmupSteps`, then cosine decay to `minLR`
/// at `totalSteps`, then constant `minLR`.
public struct LRSchedule: Codable, Sendable, Hashable {
    /// Peak learning rate, reached at the end of warmup.
    public var maxLR: Float
    /// Floor of the cosine decay (and the rate after `totalSteps`).
    public var minLR: Float
    /// Steps of linear warmup: step `s` < `warmupSteps` gets `maxLR · (s + 1) / warmupSteps`.
    public var warmupSteps: Int
    /// Step at which the cosine reaches `minLR`.
    public var totalSteps: Int

    /// A schedule; `totalSteps` should exceed `warmupSteps`.
    public init(maxLR: Float, minLR: Float = 0, warmupSteps: Int = 0, totalSteps: Int) {
        (self.maxLR, self.minLR, self.warmupSteps, self.totalSteps) = (maxLR, minLR, warmupSteps, totalSteps)
    }

    /// Learning rate for optimizer step `step` (0-based).
    public func callAsFunction(_ step: Int) -> Float {
        if step < warmupSteps { return maxLR * Float(step + 1) / Float(warmupSteps) }
        if step >= totalSteps { return minLR }
        let ratio = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        return minLR + Float(0.5 * (1 + cos(Double.pi * ratio))) * (maxLR - minLR)
    }
}
