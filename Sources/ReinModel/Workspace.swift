/// Saved activations of one block, for `rows × steps` token positions (pointers into a shard's arena).
///
/// Saved: the block's input and its attention residual with their LayerNorm statistics, q|k|v, the
/// attention probabilities and the attention output before c_proj, `6·d_model + 4 + heads·steps`
/// floats per position. The backward pass recomputes the rest one block at a time, into the shard's
/// shared buffers, with the kernels and products the forward pass ran (bit-identical): the
/// LayerNorm outputs (from `res`/`res2` and their mean and 1/σ), the MLP's hidden layer (the c_fc
/// product again, from the ln_2 output), Φ of it and the GELU output — `10·d_model` floats per
/// position and block fewer, for one more c_fc product per block — and the first block's input
/// (the embeddings, which live in the tail of ``Workspace/gelu``).
struct BlockActivations {
    let res: FloatPtr  // block input (residual stream), N×C
    let ln1Mean: FloatPtr, ln1Rstd: FloatPtr  // N, N
    let qkv: FloatPtr  // N×3C
    let att: FloatPtr  // rows×H×T×T softmax probabilities (zero above the diagonal)
    let atty: FloatPtr  // attention output before c_proj, N×C
    let res2: FloatPtr  // residual after attention, N×C
    let ln2Mean: FloatPtr, ln2Rstd: FloatPtr
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
/// one block's activations, reused by every layer, the shared buffers but ``gelu`` (the GELU runs
/// in place in ``fch``), and no backward scratch.
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
    /// LayerNorm output of the block being computed (N×C), shared by every block's ln_1 and ln_2,
    /// then ln_f's.
    private(set) var ln = FloatPtr(bitPattern: 64)!
    /// The MLP's hidden layer of the block being computed, N×4C. When no backward follows, the
    /// block's q|k|v (N×3C) before it, and the GELU output after it, in place. In the backward pass:
    /// dL/dlogits (N×V) and ``dln`` after it, then block by block the recomputed hidden layer, the
    /// GELU's slope over it, and ``dln`` again.
    private(set) var fch = FloatPtr(bitPattern: 64)!
    /// GELU output of the block being computed (N×4C), only when ``keepsActivations``; before it,
    /// the first block's input (``BlockActivations/res`` of block 0, in its last `N×C`). In the
    /// backward pass it holds, in turn, the recomputed GELU output, dL/d(GELU output), dL/dfch, and
    /// dL/dqkv (N×3C) beside the recomputed block-0 input.
    private(set) var gelu = FloatPtr(bitPattern: 64)!
    private(set) var resFinal = FloatPtr(bitPattern: 64)!
    private(set) var lnfMean = FloatPtr(bitPattern: 64)!, lnfRstd = FloatPtr(bitPattern: 64)!
    /// Log-softmax of the logits, N×V.
    private(set) var logp = FloatPtr(bitPattern: 64)!
    // Backward scratch: dL/d(residual stream) (N×C), and dL/d(a LayerNorm's output) or dL/d(attention
    // output) (N×C, in ``fch``), dL/dP (T×T).
    private(set) var dres = FloatPtr(bitPattern: 64)!, dln = FloatPtr(bitPattern: 64)!
    private(set) var datt = FloatPtr(bitPattern: 64)!
    /// dL/dlogits (N×V) in ``fch``, dL/dfch (N×4C) and dL/dqkv (N×3C) in ``gelu``, dL/d(attention
    /// output) in ``dln``: each is dead before the other use of its buffer begins.
    var dlogits: FloatPtr { fch }
    var dfc: FloatPtr { gelu }
    var dqkv: FloatPtr { gelu }
    var dy: FloatPtr { dln }
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
        func aligned(_ floats: Int) -> Int { (floats + 15) & ~15 }
        ln = c.take(n * d)
        fch = c.take(keep ? max(n * 4 * d, aligned(n * v) + n * d) : n * 4 * d)
        gelu = keep ? c.take(max(n * 4 * d, aligned(n * 3 * d) + n * d)) : none
        func block(_ l: Int) -> BlockActivations {
            BlockActivations(
                res: keep && l == 0 ? gelu + aligned(n * 3 * d) : c.take(n * d), ln1Mean: c.take(n),
                ln1Rstd: c.take(n), qkv: keep ? c.take(n * 3 * d) : fch,
                att: c.take(rows * h * steps * steps),
                atty: keep ? c.take(n * d) : ln, res2: c.take(n * d), ln2Mean: c.take(n), ln2Rstd: c.take(n))
        }
        if keep {
            blocks = (0..<config.layers).map(block)
            resFinal = c.take(n * d)
        } else {
            // Inference: every layer, and the final LayerNorm, reads its input from and writes its
            // output to the same block (a block's input is dead once its attention residual is
            // formed); q|k|v live in `fch` and the attention output in `ln` (each is dead before the
            // next use of its buffer).
            let shared = block(0)
            blocks = Array(repeating: shared, count: config.layers)
            resFinal = shared.res
        }
        lnfMean = c.take(n)
        lnfRstd = c.take(n)
        logp = c.take(n * v)
        guard keep else {  // no backward scratch
            (dres, dln, datt) = (none, none, none)
            return
        }
        dres = c.take(n * d)
        dln = fch + aligned(n * v)
        datt = c.take(steps * steps)
    }
}
