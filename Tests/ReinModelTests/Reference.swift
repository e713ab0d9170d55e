import Foundation
import ReinModel

/// A plain float64 GPT written straight from the nanoGPT definition, reading weights by tensor name.
/// It is the independent reference for the forward pass and the finite-difference gradient check.
struct ReferenceGPT {
    let config: GPTConfig
    let layout: ParameterLayout
    /// The weights in float64, in `layout` order.
    var w: [Double]

    init(_ p: GPTParameters) {
        config = p.config
        layout = p.layout
        w = p.values.map(Double.init)
    }

    func offset(_ name: String) -> Int { layout.spec(named: name)!.offset }

    private func layerNorm(_ x: [Double], _ name: String) -> [Double] {
        let c = x.count
        let (wo, bo) = (offset(name + ".weight"), offset(name + ".bias"))
        var m = 0.0
        for v in x { m += v }
        m /= Double(c)
        var variance = 0.0
        for v in x { variance += (v - m) * (v - m) }
        let s = 1 / (variance / Double(c) + 1e-5).squareRoot()
        var y = [Double](repeating: 0, count: c)
        for i in 0..<c { y[i] = (x[i] - m) * s * w[wo + i] + w[bo + i] }
        return y
    }

    private func linear(_ x: [Double], _ name: String, out: Int) -> [Double] {
        let (wo, bo) = (offset(name + ".weight"), offset(name + ".bias"))
        var y = [Double](repeating: 0, count: out)
        for o in 0..<out {
            var s = w[bo + o]
            for i in 0..<x.count { s += w[wo + o * x.count + i] * x[i] }
            y[o] = s
        }
        return y
    }

    /// Raw logits `[t][vocab]` for one sequence.
    func logits(_ tokens: [Int32]) -> [[Double]] {
        let (c, h, hs, n) = (config.dModel, config.heads, config.headDim, tokens.count)
        let (wte, wpe) = (offset("transformer.wte.weight"), offset("transformer.wpe.weight"))
        var x = [[Double]](repeating: [], count: n)
        for t in 0..<n { x[t] = (0..<c).map { w[wte + Int(tokens[t]) * c + $0] + w[wpe + t * c + $0] } }
        for l in 0..<config.layers {
            let p = "transformer.h.\(l)."
            var qkv = [[Double]](repeating: [], count: n)
            for t in 0..<n { qkv[t] = linear(layerNorm(x[t], p + "ln_1"), p + "attn.c_attn", out: 3 * c) }
            for t in 0..<n {
                var y = [Double](repeating: 0, count: c)
                for head in 0..<h {
                    var s = [Double](repeating: 0, count: t + 1)
                    for j in 0...t {
                        for i in 0..<hs { s[j] += qkv[t][head * hs + i] * qkv[j][c + head * hs + i] }
                        s[j] /= Double(hs).squareRoot()
                    }
                    let mx = s.max()!
                    var z = 0.0
                    for j in 0...t {
                        s[j] = exp(s[j] - mx)
                        z += s[j]
                    }
                    for j in 0...t {
                        for i in 0..<hs { y[head * hs + i] += s[j] / z * qkv[j][2 * c + head * hs + i] }
                    }
                }
                let a = linear(y, p + "attn.c_proj", out: c)
                for i in 0..<c { x[t][i] += a[i] }
            }
            for t in 0..<n {
                var f = linear(layerNorm(x[t], p + "ln_2"), p + "mlp.c_fc", out: 4 * c)
                for i in 0..<f.count { f[i] = 0.5 * f[i] * (1 + erf(f[i] / 2.0.squareRoot())) }
                let m = linear(f, p + "mlp.c_proj", out: c)
                for i in 0..<c { x[t][i] += m[i] }
            }
        }
        return x.map { row in
            let y = layerNorm(row, "transformer.ln_f")
            var z = [Double](repeating: 0, count: config.vocab)
            for v in 0..<config.vocab {
                for i in 0..<c { z[v] += y[i] * w[wte + v * c + i] }
            }
            return z
        }
    }

    static func logSoftmax(_ z: [Double]) -> [Double] {
        let mx = z.max()!
        let lse = mx + log(z.map { exp($0 - mx) }.reduce(0, +))
        return z.map { $0 - lse }
    }
}
