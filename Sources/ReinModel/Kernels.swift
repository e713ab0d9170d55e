import CReinKernels
import Dispatch
import Foundation

// Small numeric kernels shared by the forward, backward and sampler: BLAS wrappers for the linear
// layers, LayerNorm, GELU, softmax rows, and SIMD dot/axpy for attention. All row-major float32.
// Vector loops use `SIMD8<Float>` with separate multiply and add, so they round like the scalar tails.

typealias FloatPtr = UnsafeMutablePointer<Float>
typealias ConstFloatPtr = UnsafePointer<Float>

/// A raw pointer that may cross into a concurrent loop; each iteration touches a disjoint part.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

/// Runs `body(i)` for `i` in `0..<n`, concurrently when `n > 1` (the calling thread takes part).
func parallel(_ n: Int, _ body: @Sendable (Int) -> Void) {
    if n <= 1 {
        body(0)
    } else {
        DispatchQueue.concurrentPerform(iterations: n, execute: body)
    }
}

/// Row range of shard `s` when `total` rows are split into `shards` nearly equal parts.
func shardRange(_ s: Int, of shards: Int, total: Int) -> Range<Int> {
    (total * s / shards)..<(total * (s + 1) / shards)
}

/// `out[n×o] = inp[n×i] · W[o×i]ᵀ + bias` (the `torch.nn.Linear` layout).
func linearForward(
    _ out: FloatPtr, _ inp: ConstFloatPtr, weight: ConstFloatPtr, bias: ConstFloatPtr?,
    rows n: Int, inDim: Int, outDim: Int, gemm: GemmBackend
) {
    if let bias {
        for r in 0..<n { (out + r * outDim).update(from: bias, count: outDim) }
    }
    gemm.sgemm(
        transA: false, transB: true, m: n, n: outDim, k: inDim, inp, lda: inDim, weight, ldb: inDim,
        beta: bias == nil ? 0 : 1, out, ldc: outDim)
}

/// Backward of ``linearForward(_:_:weight:bias:rows:inDim:outDim:)``: `dInp (+)= dOut · W`,
/// `dW += dOutᵀ · inp`, `dBias += Σ_rows dOut`. `dInp` is overwritten unless `accumulate`.
func linearBackward(
    dInp: FloatPtr?, dWeight: FloatPtr, dBias: FloatPtr?, dOut: ConstFloatPtr, inp: ConstFloatPtr,
    weight: ConstFloatPtr, rows n: Int, inDim: Int, outDim: Int, accumulate: Bool = false, gemm: GemmBackend
) {
    if let dInp {
        gemm.sgemm(
            transA: false, transB: false, m: n, n: inDim, k: outDim, dOut, lda: outDim, weight, ldb: inDim,
            beta: accumulate ? 1 : 0, dInp, ldc: inDim)
    }
    gemm.sgemm(
        transA: true, transB: false, m: outDim, n: inDim, k: n, dOut, lda: outDim, inp, ldb: inDim,
        beta: 1, dWeight, ldc: inDim)
    if let dBias {
        for r in 0..<n { add(dBias, dOut + r * outDim, outDim) }
    }
}

/// `linearBackward`'s input gradient alone, `dInp = dOut · W` (the same product), for a caller that
/// needs `inp` until the weight gradient is taken and then writes `dInp` over it.
func linearBackwardInput(
    _ dInp: FloatPtr, dOut: ConstFloatPtr, weight: ConstFloatPtr, rows n: Int, inDim: Int, outDim: Int,
    gemm: GemmBackend
) {
    gemm.sgemm(
        transA: false, transB: false, m: n, n: inDim, k: outDim, dOut, lda: outDim, weight, ldb: inDim,
        beta: 0, dInp, ldc: inDim)
}

// MARK: - Vector helpers

typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: ConstFloatPtr) -> F8 { UnsafeRawPointer(p).loadUnaligned(as: F8.self) }
@inline(__always) func store8(_ v: F8, _ p: FloatPtr) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// Σ a[i]·b[i], 8 lanes at a time (multiply then add: no fused op on the x86-64 baseline).
@inline(__always)
func dot(_ a: ConstFloatPtr, _ b: ConstFloatPtr, _ n: Int) -> Float {
    var acc = F8()
    var i = 0
    while i + 8 <= n {
        acc += load8(a + i) * load8(b + i)
        i += 8
    }
    var s = acc.sum()
    while i < n {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// y[i] += alpha · x[i], 8 lanes at a time.
@inline(__always)
func axpy(_ alpha: Float, _ x: ConstFloatPtr, _ y: FloatPtr, _ n: Int) {
    var i = 0
    while i + 8 <= n {
        store8(load8(y + i) + alpha * load8(x + i), y + i)
        i += 8
    }
    while i < n {
        y[i] += alpha * x[i]
        i += 1
    }
}

/// y[i] += x[i], 8 lanes at a time.
@inline(__always)
func add(_ y: FloatPtr, _ x: ConstFloatPtr, _ n: Int) {
    var i = 0
    while i + 8 <= n {
        store8(load8(y + i) + load8(x + i), y + i)
        i += 8
    }
    while i < n {
        y[i] += x[i]
        i += 1
    }
}

/// Σ x[i], 8 lanes at a time.
@inline(__always)
func sum(_ x: ConstFloatPtr, _ n: Int) -> Float {
    var acc = F8()
    var i = 0
    while i + 8 <= n {
        acc += load8(x + i)
        i += 8
    }
    var s = acc.sum()
    while i < n {
        s += x[i]
        i += 1
    }
    return s
}

/// Lane-wise clamp (the generic `clamped` is not specialised and would dominate these kernels).
@inline(__always)
func clamp(_ x: F8, _ lo: Float, _ hi: Float) -> F8 {
    var x = x
    x.replace(with: F8(repeating: lo), where: x .< lo)
    x.replace(with: F8(repeating: hi), where: x .> hi)
    return x
}

/// eˣ on 8 lanes: Cephes `expf` polynomial after range reduction by ln 2 (relative error < 2e-7);
/// inputs are clamped to [−87, 88].
@inline(__always)
func exp8(_ x: F8) -> F8 {
    let x = clamp(x, -87, 88)
    let magic = F8(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer in the low bits
    let t = x * 1.442_695_040_888_963_4 + magic
    let n = t - magic
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p = F8(repeating: 1.987_569_150_0e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * (r * r) + r + 1
    let k = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    return p * unsafeBitCast((k &+ 127) &<< 23, to: F8.self)
}

// MARK: - LayerNorm (eps 1e-5, like torch.nn.LayerNorm)

let layerNormEps: Float = 1e-5

/// Normalises each of `n` rows of width `c`, saving mean and 1/std for the backward pass.
func layerNormForward(
    _ out: FloatPtr, mean: FloatPtr?, rstd: FloatPtr?, _ inp: ConstFloatPtr,
    weight: ConstFloatPtr, bias: ConstFloatPtr, rows n: Int, width c: Int
) {
    for r in 0..<n {
        let x = inp + r * c
        let y = out + r * c
        let m = sum(x, c) / Float(c)
        var v: Float = 0
        var i = 0
        var acc = F8()
        while i + 8 <= c {
            let d = load8(x + i) - m
            acc += d * d
            i += 8
        }
        v = acc.sum()
        for j in i..<c { v += (x[j] - m) * (x[j] - m) }
        let s = 1 / (v / Float(c) + layerNormEps).squareRoot()
        layerNormRow(y, x, mean: m, rstd: s, weight: weight, bias: bias, width: c)
        mean?[r] = m
        rstd?[r] = s
    }
}

/// LayerNorm output from saved statistics: the same arithmetic as ``layerNormForward``, so the
/// backward pass recomputes bit-identical outputs instead of keeping them.
func layerNormRecompute(
    _ out: FloatPtr, _ inp: ConstFloatPtr, mean: ConstFloatPtr, rstd: ConstFloatPtr, weight: ConstFloatPtr,
    bias: ConstFloatPtr, rows n: Int, width c: Int
) {
    for r in 0..<n {
        layerNormRow(
            out + r * c, inp + r * c, mean: mean[r], rstd: rstd[r], weight: weight, bias: bias, width: c)
    }
}

/// `y = (x − mean) · rstd · weight + bias` over one row: the one definition of LayerNorm's output.
@inline(__always)
private func layerNormRow(
    _ y: FloatPtr, _ x: ConstFloatPtr, mean m: Float, rstd s: Float, weight: ConstFloatPtr,
    bias: ConstFloatPtr, width c: Int
) {
    var i = 0
    while i + 8 <= c {
        store8((load8(x + i) - m) * s * load8(weight + i) + load8(bias + i), y + i)
        i += 8
    }
    for j in i..<c { y[j] = (x[j] - m) * s * weight[j] + bias[j] }
}

/// Backward of LayerNorm: accumulates into `dInp`, `dWeight`, `dBias`.
func layerNormBackward(
    dInp: FloatPtr, dWeight: FloatPtr, dBias: FloatPtr, dOut: ConstFloatPtr, inp: ConstFloatPtr,
    weight: ConstFloatPtr, mean: ConstFloatPtr, rstd: ConstFloatPtr, rows n: Int, width c: Int
) {
    let simd = c - c % 8
    for r in 0..<n {
        let (x, dy, dx) = (inp + r * c, dOut + r * c, dInp + r * c)
        let (m, s) = (mean[r], rstd[r])
        // Means over the row of g = dy·w and g·x̂.
        var (accG, accGX) = (F8(), F8())
        for i in stride(from: 0, to: simd, by: 8) {
            let g = load8(dy + i) * load8(weight + i)
            accG += g
            accGX += g * ((load8(x + i) - m) * s)
        }
        var (meanG, meanGX) = (accG.sum(), accGX.sum())
        for i in simd..<c {
            meanG += dy[i] * weight[i]
            meanGX += dy[i] * weight[i] * (x[i] - m) * s
        }
        meanG /= Float(c)
        meanGX /= Float(c)
        for i in stride(from: 0, to: simd, by: 8) {
            let (g, xhat) = (load8(dy + i), (load8(x + i) - m) * s)
            store8(load8(dBias + i) + g, dBias + i)
            store8(load8(dWeight + i) + g * xhat, dWeight + i)
            store8(load8(dx + i) + (g * load8(weight + i) - meanG - xhat * meanGX) * s, dx + i)
        }
        for i in simd..<c {
            let xhat = (x[i] - m) * s
            dBias[i] += dy[i]
            dWeight[i] += dy[i] * xhat
            dx[i] += (dy[i] * weight[i] - meanG - xhat * meanGX) * s
        }
    }
}

// MARK: - GELU (exact erf form, like torch.nn.GELU())

/// `out = x · Φ(x)` elementwise, Φ(x) = ½(1 + erf(x/√2)) (`out` may be `inp`). In C
/// (`CReinKernels`): built for the x86-64 baseline and for AVX2 + FMA, one chosen per process
/// (``GELUKernels/current``; the AVX2 build, about twice as fast, with `REIN_KERNELS=avx2`). The backward pass's
/// ``geluOutputAndSlope(_:_:_:)`` computes the same output bit for bit.
@inline(__always)
func geluForward(_ out: FloatPtr, _ inp: ConstFloatPtr, _ n: Int) {
    rein_gelu_forward(out, inp, n)
}

/// For the backward pass: `out = x · Φ(x)` (the GELU output, bit-identical to
/// ``geluForward(_:_:_:)``'s) and, in place of x, the GELU's slope `Φ(x) + x·φ(x)`, which turns
/// dL/dGELU into dL/dx (``multiply(_:_:_:)``; the product the old GELU backward took with a saved Φ).
@inline(__always)
func geluOutputAndSlope(_ out: FloatPtr, _ x: FloatPtr, _ n: Int) {
    rein_gelu_output_and_slope(out, x, n)
}

/// A build of the GELU kernels (`CReinKernels`).
public enum GELUKernels: String, Sendable, CaseIterable {
    /// The architecture's baseline (x86-64: SSE2).
    case baseline
    /// AVX2 with FMA.
    case avx2FMA = "avx2+fma"

    /// The build this process runs: ``baseline`` unless `REIN_KERNELS=avx2` on a CPU with AVX2 and
    /// FMA (opt-in: its rounding took the default reference recipe from 67% to 54% on an AMD EPYC
    /// Zen 3).
    public static var current: GELUKernels { rein_kernels_variant() == 1 ? .avx2FMA : .baseline }

    /// The builds this CPU can run.
    public static var runnable: [GELUKernels] {
        rein_kernels_cpu_has_avx2_fma() == 1 ? allCases : [.baseline]
    }

    /// The C kernels' name for this build.
    var code: Int32 { self == .avx2FMA ? 1 : 0 }
}

/// y[i] *= x[i], 8 lanes at a time.
func multiply(_ y: FloatPtr, _ x: ConstFloatPtr, _ n: Int) {
    var i = 0
    while i + 8 <= n {
        store8(load8(y + i) * load8(x + i), y + i)
        i += 8
    }
    while i < n {
        y[i] *= x[i]
        i += 1
    }
}

// MARK: - Softmax rows

/// In-place log-softmax of a row of length `n`.
@inline(__always)
func logSoftmaxInPlace(_ row: FloatPtr, _ n: Int) {
    var mx = -Float.infinity
    for i in 0..<n { mx = max(mx, row[i]) }
    var s: Float = 0
    var i = 0
    while i + 8 <= n {
        s += exp8(load8(row + i) - mx).sum()
        i += 8
    }
    while i < n {
        s += exp(row[i] - mx)
        i += 1
    }
    let lse = mx + log(s)
    i = 0
    while i + 8 <= n {
        store8(load8(row + i) - lse, row + i)
        i += 8
    }
    while i < n {
        row[i] -= lse
        i += 1
    }
}

/// `out[i] = scale · exp(x[i])`, 8 lanes at a time.
@inline(__always)
func scaledExp(_ out: FloatPtr, _ x: ConstFloatPtr, scale: Float, _ n: Int) {
    var i = 0
    while i + 8 <= n {
        store8(scale * exp8(load8(x + i)), out + i)
        i += 8
    }
    while i < n {
        out[i] = scale * exp(x[i])
        i += 1
    }
}

/// In-place softmax of a row of length `n`.
@inline(__always)
func softmaxInPlace(_ row: FloatPtr, _ n: Int) {
    var mx = -Float.infinity
    for i in 0..<n { mx = max(mx, row[i]) }
    var total: Float = 0
    var i = 0
    while i + 8 <= n {
        let e = exp8(load8(row + i) - mx)
        store8(e, row + i)
        total += e.sum()
        i += 8
    }
    while i < n {
        row[i] = exp(row[i] - mx)
        total += row[i]
        i += 1
    }
    let inv = 1 / total
    for j in 0..<n { row[j] *= inv }
}
