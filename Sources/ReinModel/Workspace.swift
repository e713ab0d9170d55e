/// Saved activations of one block, for `rows × steps` token positions (pointers into a shard's arena).
///
/// The LayerNorm outputs and the GELU output are not saved: they are cheap elementwise functions of
/// what is (`res`/`res2` with their mean and 1/σ, `fch` with Φ(fch)), so the forward pass writes
/// them to the shard's shared ``Workspace/ln`` and ``Workspace/gelu`` buffers and the backward pass
/// recomputes them there with the same kernels (bit-identical), six `d_model`-wide rows per position
/// and block fewer.
struct BlockActivations {
    let res: FloatPtr  // block input (residual stream), N×C
    let ln1Mean: FloatPtr, ln1Rstd: FloatPtr  // N, N
    let qkv: FloatPtr  // N×3C
    let att: FloatPtr  // rows×H×T×T softmax probabilities (zero above the diagonal)
    let atty: FloatPtr  // attention output before c_proj, N×C
    let res2: FloatPtr  // residual after attention, N×C
    let ln2Mean: FloatPtr, ln2Rstd: FloatPtr
    let fch: FloatPtr  // N×4C before GELU (after it, in place, when no backward follows)
    let fchCdf: FloatPtr  // N×4C: Φ(fch), kept for the GELU backward
}

/// Carves named buffers out of one allocation (64-byte aligned). With a nil base it only counts.
private struct Carver {
    let base: FloatPtr?
    var used = 0
    mutating func take(_ n: Int) -> FloatPtr {
        defer { used += (n + 15) & ~15 }
        // A counting pass hands out a dummy address that is never dereferenced.
        return (base ?? FloatPtr(bitPattern: 64)!) + used
    }
}

/// All memory of one shard (a contiguous range of batch rows): activations saved by the forward
/// pass and scratch for the backward pass. Allocated once, reused while the shape fits.
///
/// A forward pass that will not be followed by a backward pass (``keepsActivations`` false) gets
/// one block's activations, reused by every layer, and no backward scratch: about `1/layers` of the
/// training arena.
final class Workspace: @unchecked Sendable {
    let config: GPTConfig
    private(set) var rows = 0
    private(set) var steps = 0
    /// Whether the arena holds every block's activations (and backward scratch), or one block's.
    private(set) var keepsActivations = true
    /// The model whose forward pass the arena holds now (models may share workspaces).
    var heldBy: ObjectIdentifier?
    private var arena: FloatPtr?
    /// Floats allocated for the arena (it grows, never shrinks).
    private(set) var capacity = 0

    private(set) var blocks: [BlockActivations] = []
    /// LayerNorm output of the block being computed (N×C), shared by every block's ln_1 and ln_2.
    private(set) var ln = FloatPtr(bitPattern: 64)!
    /// GELU output of the block being computed (N×4C), shared by every block; only when
    /// ``keepsActivations`` (else the GELU runs in place in the block's `fch`).
    private(set) var gelu = FloatPtr(bitPattern: 64)!
    private(set) var resFinal = FloatPtr(bitPattern: 64)!, lnf = FloatPtr(bitPattern: 64)!
    private(set) var lnfMean = FloatPtr(bitPattern: 64)!, lnfRstd = FloatPtr(bitPattern: 64)!
    /// Log-softmax of the logits, N×V.
    private(set) var logp = FloatPtr(bitPattern: 64)!
    // Backward scratch.
    private(set) var dres = FloatPtr(bitPattern: 64)!, dln = FloatPtr(bitPattern: 64)!
    private(set) var dqkv = FloatPtr(bitPattern: 64)!, dy = FloatPtr(bitPattern: 64)!
    private(set) var dfc = FloatPtr(bitPattern: 64)!, dlogits = FloatPtr(bitPattern: 64)!
    private(set) var datt = FloatPtr(bitPattern: 64)!
    /// Private gradient buffer (shards other than the first accumulate here, then get summed).
    private(set) var grads: FloatPtr?

    /// The library that runs this shard's matrix products.
    let gemm: GemmBackend

    init(config: GPTConfig, gemm: GemmBackend) {
        self.config = config
        self.gemm = gemm
    }

    deinit {
        arena?.deallocate()
        grads?.deallocate()
    }

    /// Makes room for `rows × steps` positions (every block's activations and the backward scratch
    /// if `keepActivations`, else one block's), reallocating only when the arena is too small.
    func ensure(rows: Int, steps: Int, keepActivations: Bool = true) {
        if rows == self.rows && steps == self.steps && keepActivations == keepsActivations && arena != nil {
            return
        }
        var counter = Carver(base: nil)
        carve(&counter, rows: rows, steps: steps, keep: keepActivations)
        if counter.used > capacity {
            arena?.deallocate()
            arena = nil
            arena = FloatPtr.allocate(capacity: counter.used)
            capacity = counter.used
        }
        var carver = Carver(base: arena)
        carve(&carver, rows: rows, steps: steps, keep: keepActivations)
        self.rows = rows
        self.steps = steps
        self.keepsActivations = keepActivations
    }

    /// A zeroed private gradient buffer of `count` floats.
    func zeroedGradients(count: Int) -> FloatPtr {
        if grads == nil { grads = FloatPtr.allocate(capacity: count) }
        grads!.initialize(repeating: 0, count: count)
        return grads!
    }

    private func carve(_ c: inout Carver, rows: Int, steps: Int, keep: Bool) {
        let (d, h, v) = (config.dModel, config.heads, config.vocab)
        let n = rows * steps
        let none = FloatPtr(bitPattern: 64)!  // never dereferenced: only the backward pass reads it
        func block() -> BlockActivations {
            BlockActivations(
                res: c.take(n * d), ln1Mean: c.take(n), ln1Rstd: c.take(n), qkv: c.take(n * 3 * d),
                att: c.take(rows * h * steps * steps), atty: c.take(n * d), res2: c.take(n * d),
                ln2Mean: c.take(n), ln2Rstd: c.take(n), fch: c.take(n * 4 * d),
                fchCdf: keep ? c.take(n * 4 * d) : none)
        }
        ln = c.take(n * d)
        gelu = keep ? c.take(n * 4 * d) : none
        if keep {
            blocks = (0..<config.layers).map { _ in block() }
        } else {
            // Inference: every layer reads its input from and writes its output to the same block
            // (a block's input is dead once its attention residual is formed).
            let shared = block()
            blocks = Array(repeating: shared, count: config.layers)
        }
        resFinal = c.take(n * d)
        lnf = c.take(n * d)
        lnfMean = c.take(n)
        lnfRstd = c.take(n)
        logp = c.take(n * v)
        guard keep else {  // no backward scratch
            (dres, dln, dqkv, dy, dfc, dlogits, datt) = (none, none, none, none, none, none, none)
            return
        }
        dres = c.take(n * d)
        dln = c.take(n * d)
        dqkv = c.take(n * 3 * d)
        dy = c.take(n * d)
        dfc = c.take(n * 4 * d)
        dlogits = c.take(n * v)
        datt = c.take(steps * steps)
    }
}
