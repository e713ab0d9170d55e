import COpenBLAS
import Dispatch
import Foundation

// Small numeric kernels shared by the forward, backward and sampler: BLAS wrappers for the linear
// layers, LayerNorm, GELU, softmax rows, and SIMD dot/axpy for attention. All row-major float32.

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

enum BLAS {
    /// Makes OpenBLAS single-threaded: the engine runs its own shards on separate threads, and a
    /// single-threaded kernel gives bit-identical results for a given shard split.
    static let configureOnce: Void = { openblas_set_num_threads(1) }()

    /// `C[m×n] = alpha · op(A) · op(B) + beta · C`, row-major, with leading dimensions.
    @inline(__always)
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        _ a: ConstFloatPtr, lda: Int, _ b: ConstFloatPtr, ldb: Int,
        beta: Float, _ c: FloatPtr, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// `out[n×o] = inp[n×i] · W[o×i]ᵀ + bias` (the `torch.nn.Linear` layout).
func linearForward(
    _ out: FloatPtr, _ inp: ConstFloatPtr, weight: ConstFloatPtr, bias: ConstFloatPtr?,
    rows n: Int, inDim: Int, outDim: Int
) {
    if let bias {
        for r in 0..<n { (out + r * outDim).update(from: bias, count: outDim) }
    }
    BLAS.gemm(
        transA: false, transB: true, m: n, n: outDim, k: inDim, inp, lda: inDim, weight, ldb: inDim,
        beta: bias == nil ? 0 : 1, out, ldc: outDim)
}

/// Backward of ``linearForward(_:_:weight:bias:rows:inDim:outDim:)``: `dInp (+)= dOut · W`,
/// `dW += dOutᵀ · inp`, `dBias += Σ_rows dOut`. `dInp` is overwritten unless `accumulate`.
func linearBackward(
    dInp: FloatPtr?, dWeight: FloatPtr, dBias: FloatPtr?, dOut: ConstFloatPtr, inp: ConstFloatPtr,
    weight: ConstFloatPtr, rows n: Int, inDim: Int, outDim: Int, accumulate: Bool = false
) {
    if let dInp {
        BLAS.gemm(
            transA: false, transB: false, m: n, n: inDim, k: outDim, dOut, lda: outDim, weight, ldb: inDim,
            beta: accumulate ? 1 : 0, dInp, ldc: inDim)
    }
    BLAS.gemm(
        transA: true, transB: false, m: outDim, n: inDim, k: n, dOut, lda: outDim, inp, ldb: inDim,
        beta: 1, dWeight, ldc: inDim)
    if let dBias {
        for r in 0..<n { add(dBias, dOut + r * outDim, outDim) }
    }
}

// MARK: - Vector helpers

/// Σ a[i]·b[i] with 16-wide accumulators.
@inline(__always)
func dot(_ a: ConstFloatPtr, _ b: ConstFloatPtr, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
        let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
        acc = acc.addingProduct(x, y)
        i += 16
    }
    var s = acc.sum()
    while i < n {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// y[i] += alpha · x[i].
@inline(__always)
func axpy(_ alpha: Float, _ x: ConstFloatPtr, _ y: FloatPtr, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

/// y[i] += x[i].
@inline(__always)
func add(_ y: FloatPtr, _ x: ConstFloatPtr, _ n: Int) {
    for i in 0..<n { y[i] += x[i] }
}

/// Σ x[i], 16 lanes at a time.
@inline(__always)
func sum(_ x: ConstFloatPtr, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        i += 16
    }
    var s = acc.sum()
    while i < n {
        s += x[i]
        i += 1
    }
    return s
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
        for i in 0..<c {
            let d = x[i] - m
            v += d * d
        }
        let s = 1 / (v / Float(c) + layerNormEps).squareRoot()
        for i in 0..<c { y[i] = (x[i] - m) * s * weight[i] + bias[i] }
        mean?[r] = m
        rstd?[r] = s
    }
}

/// Backward of LayerNorm: accumulates into `dInp`, `dWeight`, `dBias`.
func layerNormBackward(
    dInp: FloatPtr, dWeight: FloatPtr, dBias: FloatPtr, dOut: ConstFloatPtr, inp: ConstFloatPtr,
    weight: ConstFloatPtr, mean: ConstFloatPtr, rstd: ConstFloatPtr, rows n: Int, width c: Int
) {
    for r in 0..<n {
        let x = inp + r * c
        let dy = dOut + r * c
        let dx = dInp + r * c
        let (m, s) = (mean[r], rstd[r])
        var meanG: Float = 0
        var meanGX: Float = 0
        for i in 0..<c {
            let g = dy[i] * weight[i]
            meanG += g
            meanGX += g * (x[i] - m) * s
        }
        meanG /= Float(c)
        meanGX /= Float(c)
        for i in 0..<c {
            let xhat = (x[i] - m) * s
            dBias[i] += dy[i]
            dWeight[i] += dy[i] * xhat
            dx[i] += (dy[i] * weight[i] - meanG - xhat * meanGX) * s
        }
    }
}

// MARK: - GELU (exact erf form, like torch.nn.GELU())

/// `out = x · Φ(x)` elementwise.
func geluForward(_ out: FloatPtr, _ inp: ConstFloatPtr, _ n: Int) {
    for i in 0..<n {
        let x = inp[i]
        out[i] = 0.5 * x * (1 + erf(x * 0.707_106_781))
    }
}

/// `d[i] *= Φ(x) + x·φ(x)` in place, turning dL/dGELU into dL/dx.
func geluBackward(_ d: FloatPtr, _ inp: ConstFloatPtr, _ n: Int) {
    for i in 0..<n {
        let x = inp[i]
        let cdf = 0.5 * (1 + erf(x * 0.707_106_781))
        let pdf = exp(-0.5 * x * x) * 0.398_942_280
        d[i] *= cdf + x * pdf
    }
}

// MARK: - Softmax rows

/// In-place log-softmax of a row of length `n`.
@inline(__always)
func logSoftmaxInPlace(_ row: FloatPtr, _ n: Int) {
    var mx = -Float.infinity
    for i in 0..<n { mx = max(mx, row[i]) }
    var s: Float = 0
    for i in 0..<n { s += exp(row[i] - mx) }
    let lse = mx + log(s)
    for i in 0..<n { row[i] -= lse }
}
