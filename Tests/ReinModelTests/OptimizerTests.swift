import Foundation
import ReinModel
import Testing

@Suite struct OptimizerTests {
    @Test func adamWMatchesHandComputedSteps() throws {
        let layout = ParameterLayout(config: tiny)
        var opt = AdamW(
            layout: layout, config: AdamWConfig(beta1: 0.8, beta2: 0.9, eps: 1e-3, weightDecay: 0.5))
        var rng = SplitMix64(seed: 1)
        var params = (0..<layout.count).map { _ in Float(rng.nextGaussian()) }
        let start = params
        let g1 = (0..<layout.count).map { _ in Float(rng.nextGaussian()) }
        let g2 = (0..<layout.count).map { _ in Float(rng.nextGaussian()) }
        opt.step(params: &params, grads: g1, lr: 0.1)
        opt.step(params: &params, grads: g2, lr: 0.05)
        #expect(opt.stepCount == 2)
        // One thread gives the same bits as two (elementwise update, split only by range).
        var single = AdamW(layout: layout, config: opt.config)
        var again = start
        single.step(params: &again, grads: g1, lr: 0.1)
        single.step(params: &again, grads: g2, lr: 0.05)
        #expect(again == params)

        // By hand, in float64, for one matrix element (decayed) and one bias element (not decayed).
        let matrix = layout.spec(named: "transformer.h.0.attn.c_attn.weight")!.offset + 5
        let bias = layout.spec(named: "transformer.h.0.attn.c_attn.bias")!.offset + 2
        for (i, decays) in [(matrix, true), (bias, false)] {
            var (p, m, v) = (Double(start[i]), 0.0, 0.0)
            for (t, g, lr) in [(1, Double(g1[i]), 0.1), (2, Double(g2[i]), 0.05)] {
                m = 0.8 * m + 0.2 * g
                v = 0.9 * v + 0.1 * g * g
                if decays { p *= 1 - lr * 0.5 }
                let mHat = m / (1 - pow(0.8, Double(t)))
                let vHat = v / (1 - pow(0.9, Double(t)))
                p -= lr * mHat / (vHat.squareRoot() + 1e-3)
            }
            #expect(abs(Double(params[i]) - p) < 1e-6, "element \(i): \(params[i]) vs \(p)")
        }
    }

    @Test func clippingReturnsPreClipNorm() {
        var g: [Float] = [3, 4] + [Float](repeating: 0, count: 13)
        #expect(abs(clipGradientNorm(&g, maxNorm: 10) - 5) < 1e-6)
        #expect(g[0] == 3 && g[1] == 4)
        #expect(abs(clipGradientNorm(&g, maxNorm: 1) - 5) < 1e-6)
        #expect(abs(g[0] - 0.6) < 1e-6 && abs(g[1] - 0.8) < 1e-6)
    }

    @Test func scheduleWarmsUpThenCosineDecays() {
        let s = LRSchedule(maxLR: 1, minLR: 0.1, warmupSteps: 4, totalSteps: 14)
        #expect(s(0) == 0.25 && s(3) == 1)
        #expect(abs(s(4) - 1) < 1e-6)
        #expect(abs(s(9) - 0.55) < 1e-6)  // half way: min + (max − min)/2
        #expect(abs(s(14) - 0.1) < 1e-6 && s(1000) == 0.1)
    }

    @Test func stateRoundTrips() throws {
        let layout = ParameterLayout(config: tiny)
        var opt = AdamW(layout: layout)
        var params = [Float](repeating: 1, count: layout.count)
        opt.step(params: &params, grads: [Float](repeating: 0.5, count: layout.count), lr: 0.01)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "adamw-\(UUID()).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try opt.save(to: path)
        var restored = AdamW(layout: layout, config: AdamWConfig(weightDecay: 0))
        try restored.load(from: path)
        #expect(
            restored.stepCount == 1 && restored.m == opt.m && restored.v == opt.v
                && restored.config == opt.config)
        var other = AdamW(layout: ParameterLayout(config: .small))
        #expect(throws: ModelError.self) { try other.load(from: path) }
    }
}

@Suite struct TrainingTests {
    /// Forward, backward, clipping, schedule and AdamW together: maximum likelihood on four fixed
    /// sequences must drive the mean negative log-likelihood well below its starting value.
    @Test func learnerStepsFitFixedSequences() throws {
        let model = GPTModel(parameters: try GPTParameters(config: tiny, seed: 2), threads: 2)
        var opt = AdamW(layout: model.parameters.layout)
        let schedule = LRSchedule(maxLR: 2e-2, minLR: 2e-3, warmupSteps: 5, totalSteps: 60)
        let batch = try TokenBatch(sequences: [
            [1, 2, 3, 4, 5, 6, 0], [6, 5, 4, 3], [2, 2, 2, 2, 2], [0, 1, 0, 1, 0, 1],
        ])
        var first = 0.0
        var last = 0.0
        for step in 0..<60 {
            model.zeroGradients()
            let out = try model.forward(batch)
            let count = Float(out.mask.filter { $0 }.count)
            let nll = -zip(out.logProbs, out.mask).map { $1 ? Double($0) : 0 }.reduce(0, +) / Double(count)
            if step == 0 { first = nll }
            last = nll
            try model.backward(dLogProbs: out.mask.map { $0 ? -1 / count : 0 })
            var grads = model.gradients
            clipGradientNorm(&grads, maxNorm: 1)
            opt.step(params: &model.parameters.values, grads: grads, lr: schedule(step))
        }
        #expect(last < 0.3 * first, "NLL \(first) → \(last)")
    }
}
