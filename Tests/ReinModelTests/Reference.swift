import Foundation
import ReinModel

/// A plain float64 GPT written straight from the nanoGPT definition, reading weights by tensor name.
/// It is the independent reference for the forward pass and the finite-difference gradient check.
struct ReferenceGPT {
    let config: GPTConfig
    var weights: [String: [Double]]

    init(_ p: GPTParameters) {
        config = p.config
        weights = Dictionary(
            uniqueKeysWithValues: p.layout.tensors.map { ($0.name, p.values[$0.range].map(Double.init)) })
    }

    /// Raw logits `[t][vocab]` for one sequence.
    func logits(_ tokens: [Int32]) -> [[Double]] {
        let (c, h) = (config.dModel, config.heads)
        let hs = c / h
        let wte = weights["transformer.wte.weight"]!
        let wpe = weights["transformer.wpe.weight"]!
        var x: [[Double]] = tokens.enumerated().map { t, tok in
            (0..<c).map { wte[Int(tok) * c + $0] + wpe[t * c + $0] }
        }
        func ln(_ v: [Double], _ name: String) -> [Double] {
            let m = v.reduce(0, +) / Double(c)
            let varc = v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(c)
            let s = 1 / (varc + 1e-5).squareRoot()
            let (w, b) = (weights[name + ".weight"]!, weights[name + ".bias"]!)
            return (0..<c).map { (v[$0] - m) * s * w[$0] + b[$0] }
        }
        func linear(_ v: [Double], _ name: String) -> [Double] {
            let w = weights[name + ".weight"]!
            let b = weights[name + ".bias"]!
            let inDim = v.count
            return (0..<b.count).map { o in (0..<inDim).reduce(b[o]) { $0 + w[o * inDim + $1] * v[$1] } }
        }
        for l in 0..<config.layers {
            let p = "transformer.h.\(l)."
            let qkv = x.map { linear(ln($0, p + "ln_1"), p + "attn.c_attn") }
            var y = [[Double]](repeating: [Double](repeating: 0, count: c), count: x.count)
            for t in 0..<x.count {
                for head in 0..<h {
                    let q = Array(qkv[t][head * hs..<(head + 1) * hs])
                    var s = (0...t).map { j in
                        (0..<hs).reduce(0.0) { $0 + q[$1] * qkv[j][c + head * hs + $1] }
                            / Double(hs).squareRoot()
                    }
                    let mx = s.max()!
                    s = s.map { exp($0 - mx) }
                    let z = s.reduce(0, +)
                    for j in 0...t {
                        for i in 0..<hs { y[t][head * hs + i] += s[j] / z * qkv[j][2 * c + head * hs + i] }
                    }
                }
            }
            for t in 0..<x.count {
                let a = linear(y[t], p + "attn.c_proj")
                for i in 0..<c { x[t][i] += a[i] }
                let f = linear(ln(x[t], p + "ln_2"), p + "mlp.c_fc").map {
                    0.5 * $0 * (1 + erf($0 / 2.0.squareRoot()))
                }
                let m = linear(f, p + "mlp.c_proj")
                for i in 0..<c { x[t][i] += m[i] }
            }
        }
        return x.map { row in
            let n = ln(row, "transformer.ln_f")
            return (0..<config.vocab).map { v in (0..<c).reduce(0.0) { $0 + n[$1] * wte[v * c + $1] } }
        }
    }

    static func logSoftmax(_ z: [Double]) -> [Double] {
        let mx = z.max()!
        let lse = mx + log(z.map { exp($0 - mx) }.reduce(0, +))
        return z.map { $0 - lse }
    }
}
