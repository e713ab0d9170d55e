/// A tabular autoregressive policy small enough to enumerate every sequence: three tables of
/// logits (θ, behaviour μ, reference), one row of `vocab` logits per prefix.
///
/// Sequences have fixed length `length` (no end token). Rows are ordered by prefix length
/// 0 … length−1 and then lexicographically by token id, first token most significant: the
/// prefix (y_1, …, y_k) is row Σ_{j<k} V^j + Σ_i y_i·V^{k−i}.
///
/// This is the JSON layout of `rein kl exact --policy FILE`:
/// `{"vocab": V, "length": T, "theta": [...], "behaviour": [...], "reference": [...]}`.
public struct TabularPolicy: Sendable, Hashable, Codable {
    /// The most sequences an enumeration may visit (V^T).
    public static let maximumSequenceCount = 1_000_000

    /// Vocabulary size V ≥ 1.
    public let vocab: Int
    /// Sequence length T ≥ 1.
    public let length: Int
    /// Logits of π_θ, one row per prefix.
    public let theta: [[Double]]
    /// Logits of the behaviour policy μ that samples.
    public let behaviour: [[Double]]
    /// Logits of π_ref.
    public let reference: [[Double]]

    /// Validates the sizes and values.
    public init(
        vocab: Int, length: Int, theta: [[Double]], behaviour: [[Double]], reference: [[Double]]
    ) throws(TabularPolicyError) {
        guard vocab >= 1 else { throw .badVocab(vocab) }
        guard length >= 1 else { throw .badLength(length) }
        guard let sequences = Self.sequenceCount(vocab: vocab, length: length) else {
            throw .tooManySequences(vocab: vocab, length: length)
        }
        _ = sequences
        let rows = Self.rowCount(vocab: vocab, length: length)
        for (name, table) in [("theta", theta), ("behaviour", behaviour), ("reference", reference)] {
            guard table.count == rows else {
                throw .wrongRowCount(name: name, expected: rows, actual: table.count)
            }
            for (r, row) in table.enumerated() {
                guard row.count == vocab else {
                    throw .wrongRowWidth(name: name, row: r, expected: vocab, actual: row.count)
                }
                if let c = row.firstIndex(where: { !$0.isFinite }) {
                    throw .nonFinite(name: name, row: r, column: c)
                }
            }
        }
        self.vocab = vocab
        self.length = length
        self.theta = theta
        self.behaviour = behaviour
        self.reference = reference
    }

    enum CodingKeys: String, CodingKey {
        case vocab, length, theta, behaviour, reference
    }

    /// Decodes the JSON layout and validates it; a validation failure is thrown as
    /// ``TabularPolicyError``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            vocab: try c.decode(Int.self, forKey: .vocab),
            length: try c.decode(Int.self, forKey: .length),
            theta: try c.decode([[Double]].self, forKey: .theta),
            behaviour: try c.decode([[Double]].self, forKey: .behaviour),
            reference: try c.decode([[Double]].self, forKey: .reference))
    }

    /// V^T if it is at most ``maximumSequenceCount``, else nil.
    public static func sequenceCount(vocab: Int, length: Int) -> Int? {
        var count = 1
        for _ in 0..<length {
            let (product, overflow) = count.multipliedReportingOverflow(by: vocab)
            guard !overflow, product <= maximumSequenceCount else { return nil }
            count = product
        }
        return count
    }

    /// The number of prefixes, Σ_{k<T} V^k.
    public static func rowCount(vocab: Int, length: Int) -> Int {
        var rows = 0
        var power = 1
        for _ in 0..<length {
            rows += power
            power *= vocab
        }
        return rows
    }

    /// V^T.
    public var sequenceCount: Int { Self.sequenceCount(vocab: vocab, length: length)! }

    /// The number of prefixes (rows of each table).
    public var rowCount: Int { theta.count }

    /// The row of a prefix (length < T).
    public func rowIndex(prefix: some Collection<Int>) -> Int {
        var offset = 0
        var power = 1
        for _ in 0..<prefix.count {
            offset += power
            power *= vocab
        }
        var index = 0
        for y in prefix { index = index * vocab + y }
        return offset + index
    }

    /// The same θ and reference with another behaviour table.
    public func replacingBehaviour(_ behaviour: [[Double]]) throws(TabularPolicyError) -> TabularPolicy {
        try TabularPolicy(
            vocab: vocab, length: length, theta: theta, behaviour: behaviour, reference: reference)
    }

    /// A seeded random policy: θ ~ N(0, thetaScale²), reference = θ + referenceScale·N(0, 1),
    /// behaviour = θ + drift·N(0, 1). The noise is fixed by the seed, so policies with the same
    /// seed and different drifts share θ, the reference and the drift direction (drift 0 is
    /// on-policy).
    public static func random(
        vocab: Int, length: Int, seed: UInt64, thetaScale: Double = 1, referenceScale: Double = 0.5,
        drift: Double = 0
    ) throws(TabularPolicyError) -> TabularPolicy {
        guard vocab >= 1 else { throw .badVocab(vocab) }
        guard length >= 1 else { throw .badLength(length) }
        guard sequenceCount(vocab: vocab, length: length) != nil else {
            throw .tooManySequences(vocab: vocab, length: length)
        }
        var rng = SeededGenerator(seed: seed)
        let rows = rowCount(vocab: vocab, length: length)
        var theta: [[Double]] = []
        var reference: [[Double]] = []
        var behaviour: [[Double]] = []
        for _ in 0..<rows {
            let t = (0..<vocab).map { _ in thetaScale * rng.nextGaussian() }
            let r = t.map { $0 + referenceScale * rng.nextGaussian() }
            let b = t.map { $0 + drift * rng.nextGaussian() }
            theta.append(t)
            reference.append(r)
            behaviour.append(b)
        }
        return try TabularPolicy(
            vocab: vocab, length: length, theta: theta, behaviour: behaviour, reference: reference)
    }
}

extension TabularPolicy {
    /// This policy with the behaviour of partial rollouts: a sequence whose token at position t
    /// (after a prefix of t tokens) is drawn by behaviour version `versionAt[t]`, so μ(·|s) at a
    /// prefix of length t is row s of `behaviours[versionAt[t]]` — the exact behaviour
    /// distribution per position, rebuilt from per-token versions as the staleness tracker does.
    /// (A real sampler's versions never decrease; any schedule is accepted here.)
    /// - Throws: ``TabularPolicyError/badVersionSchedule(_:)`` if `versionAt` does not have
    ///   `length` entries naming tables of `behaviours`; a table's own shape errors otherwise.
    public func mixingBehaviour(_ behaviours: [[[Double]]], versionAt: [Int]) throws(TabularPolicyError)
        -> TabularPolicy
    {
        guard versionAt.count == length else {
            throw .badVersionSchedule("\(versionAt.count) positions, the sequences have \(length)")
        }
        if let bad = versionAt.first(where: { !behaviours.indices.contains($0) }) {
            throw .badVersionSchedule("version \(bad) is not one of the \(behaviours.count) tables")
        }
        for table in behaviours where table.count != rowCount {
            throw .wrongRowCount(name: "behaviour", expected: rowCount, actual: table.count)
        }
        var mixed: [[Double]] = []
        mixed.reserveCapacity(rowCount)
        var width = 1  // rows of prefixes of length t: V^t
        for t in 0..<length {
            let start = mixed.count
            mixed += behaviours[versionAt[t]][start..<(start + width)]
            width *= vocab
        }
        return try TabularPolicy(
            vocab: vocab, length: length, theta: theta, behaviour: mixed, reference: reference)
    }
}

/// A tabular policy that cannot be used.
public enum TabularPolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// vocab < 1.
    case badVocab(Int)
    /// length < 1.
    case badLength(Int)
    /// V^T above ``TabularPolicy/maximumSequenceCount``.
    case tooManySequences(vocab: Int, length: Int)
    /// A table with the wrong number of rows.
    case wrongRowCount(name: String, expected: Int, actual: Int)
    /// A row with the wrong number of logits.
    case wrongRowWidth(name: String, row: Int, expected: Int, actual: Int)
    /// A NaN or infinite logit.
    case nonFinite(name: String, row: Int, column: Int)
    /// A per-position version schedule that does not fit (``TabularPolicy/mixingBehaviour(_:versionAt:)``).
    case badVersionSchedule(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .badVocab(let v): return "vocab must be at least 1, got \(v)"
        case .badLength(let t): return "length must be at least 1, got \(t)"
        case .tooManySequences(let v, let t):
            return "vocab^length = \(v)^\(t) exceeds \(TabularPolicy.maximumSequenceCount) sequences"
        case .wrongRowCount(let name, let expected, let actual):
            return "\(name) has \(actual) rows, expected \(expected) (one per prefix of length 0..<length)"
        case .wrongRowWidth(let name, let row, let expected, let actual):
            return "\(name) row \(row) has \(actual) logits, expected \(expected) (vocab)"
        case .nonFinite(let name, let row, let column):
            return "\(name) row \(row) column \(column) is not a finite number"
        case .badVersionSchedule(let why): return "version schedule: \(why)"
        }
    }
}
