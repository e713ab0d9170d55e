import ArgumentParser
import Foundation
import ReinKL

/// `rein kl`: exact KL-gradient computations on tabular policies.
struct KLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kl",
        abstract: "Exact expected gradients of every KL implementation on tabular policies.",
        subcommands: [KLExactCommand.self, KLTableCommand.self]
    )
}

/// `rein kl exact --policy FILE [--json]`.
struct KLExactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exact",
        abstract: "Print the exact expected gradient (w.r.t. the theta logits) of each KL implementation.",
        discussion: """
            FILE is JSON: {"vocab": V, "length": T, "theta": [...], "behaviour": [...], "reference": [...]}, \
            each a list of rows of V logits, one row per prefix of length 0 … T−1, ordered by length and \
            then lexicographically by token id. Sequences are drawn from behaviour; V^T must be at most 10^6.
            """
    )

    @Option(name: .long, help: "Tabular policy JSON file.")
    var policy: String

    @Option(name: .long, help: "Comma-separated implementation ids (default: the ten required ids).")
    var ids: String?

    @Flag(name: .long, help: "Print {\"gradients\": {ID: rows}, \"targets\": {ID: rows}} as JSON.")
    var json = false

    func run() async throws {
        let tabular = try loadTabularPolicy(path: policy)
        let implementations = try implementationList(ids)
        let gradients: [String: [[Double]]]
        do {
            gradients = try tabular.expectedGradients(of: implementations)
        } catch {
            throw CLIError("\(error)")
        }
        var targets: [String: [[Double]]] = [:]
        for target in KLTarget.required { targets[target.rawValue] = tabular.exactGradient(of: target) }

        if json {
            try emitJSON(gradients: gradients, targets: targets)
        } else {
            emitText(tabular, implementations, gradients: gradients, targets: targets)
        }
    }

    private func emitJSON(gradients: [String: [[Double]]], targets: [String: [[Double]]]) throws {
        struct Output: Encodable {
            var gradients: [String: [[Double]]]
            var targets: [String: [[Double]]]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(Output(gradients: gradients, targets: targets))
        emit(String(decoding: data, as: UTF8.self))
    }

    private func emitText(
        _ tabular: TabularPolicy, _ implementations: [KLImplementation],
        gradients: [String: [[Double]]], targets: [String: [[Double]]]
    ) {
        let rkl = targets[KLTarget.rklSeq.rawValue]!
        let fkl = targets[KLTarget.fklSeq.rawValue]!
        emit(
            "vocab \(tabular.vocab), length \(tabular.length), \(tabular.sequenceCount) sequences drawn from behaviour; "
                + "KL(θ‖ref) = \(format(tabular.reverseKL)), KL(ref‖θ) = \(format(tabular.forwardKL))")
        emit("")
        func show(_ name: String, _ formula: String, _ rows: [[Double]]) {
            let cosR = cosineOrNil(rows, rkl).map(format) ?? "—"
            let cosF = cosineOrNil(rows, fkl).map(format) ?? "—"
            emit("\(name)  [\(formula)]  cos(rkl_seq) \(cosR)  cos(fkl_seq) \(cosF)")
            for (r, row) in rows.enumerated() {
                emit("  row \(r): " + row.map { format($0) }.joined(separator: "  "))
            }
        }
        for implementation in implementations {
            show(implementation.id, implementation.formula, gradients[implementation.id]!)
        }
        emit("")
        for target in KLTarget.required {
            show(target.rawValue, "target", targets[target.rawValue]!)
        }
    }
}

/// `rein kl table`: the paper's table, computed.
struct KLTableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Cosine and relative error of every KL implementation against rkl_seq and fkl_seq.",
        discussion: """
            A random tabular policy (theta ~ N(0,1), reference = theta + 0.5·N(0,1)) is fixed by the seed; \
            the behaviour policy is theta + drift·N(0,1) with the same noise direction at every drift \
            (drift 0 is on-policy). Every number is an exact expectation over all vocab^length sequences.
            """
    )

    @Option(name: .long, help: "Seed of the random tabular policy.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Vocabulary size.")
    var vocab: Int = 4

    @Option(name: .long, help: "Sequence length.")
    var length: Int = 3

    @Option(name: .long, help: "Standard deviation of the reference's offset from theta.")
    var referenceScale: Double = 0.5

    @Option(name: .long, help: "Comma-separated behaviour drift levels.")
    var drifts: String = "0,0.25,0.5,1"

    @Option(name: .long, help: "Comma-separated implementation ids (default: all).")
    var ids: String?

    @Flag(name: .long, help: "Print JSON instead of Markdown tables.")
    var json = false

    func run() async throws {
        let driftLevels = try parseDrifts(drifts)
        let implementations = try ids.map { try implementationList($0) } ?? KLImplementation.catalog
        let table = try computeTable(driftLevels, implementations)
        guard let base = table.base else { throw CLIError("--drifts must list at least one level") }

        if json {
            try emitJSON(base: base, driftInfo: table.driftInfo, rows: table.rows)
        } else {
            emitMarkdown(base: base, driftLevels: driftLevels, driftInfo: table.driftInfo, rows: table.rows)
        }
    }

    /// Every row at every drift level; `base` is the first level's policy (nil when there is none).
    private func computeTable(_ driftLevels: [Double], _ implementations: [KLImplementation]) throws
        -> (rows: [TableRow], driftInfo: [DriftInfo], base: TabularPolicy?)
    {
        var rows: [TableRow] = []
        var driftInfo: [DriftInfo] = []
        var base: TabularPolicy?
        for drift in driftLevels {
            let policy: TabularPolicy
            do {
                policy = try TabularPolicy.random(
                    vocab: vocab, length: length, seed: seed, referenceScale: referenceScale, drift: drift)
            } catch {
                throw CLIError("\(error)")
            }
            base = base ?? policy
            let rkl = policy.exactGradient(of: .rklSeq)
            let fkl = policy.exactGradient(of: .fklSeq)
            driftInfo.append(
                DriftInfo(
                    drift: drift, behaviourKL: behaviourKL(policy),
                    sequenceESSFraction: sequenceESSFraction(policy)))
            for implementation in implementations {
                let g: [[Double]]
                do {
                    g = try policy.expectedGradient(of: implementation.configuration)
                } catch {
                    throw CLIError("\(error)")
                }
                rows.append(row(implementation.id, drift, g, rkl, fkl))
            }
            for target in [KLTarget.k2TokenOnPolicy, .fklToken] {
                rows.append(
                    row(target.rawValue + " (target)", drift, policy.exactGradient(of: target), rkl, fkl))
            }
        }
        return (rows, driftInfo, base)
    }

    private func emitJSON(base: TabularPolicy, driftInfo: [DriftInfo], rows: [TableRow]) throws {
        struct Output: Encodable {
            var seed: UInt64
            var vocab: Int
            var length: Int
            var referenceScale: Double
            var reverseKL: Double
            var forwardKL: Double
            var drifts: [DriftInfo]
            var rows: [TableRow]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let output = Output(
            seed: seed, vocab: vocab, length: length, referenceScale: referenceScale,
            reverseKL: base.reverseKL, forwardKL: base.forwardKL, drifts: driftInfo, rows: rows)
        emit(String(decoding: try encoder.encode(output), as: UTF8.self))
    }

    private func emitMarkdown(
        base: TabularPolicy, driftLevels: [Double], driftInfo: [DriftInfo], rows: [TableRow]
    ) {
        emit(
            "Tabular policy: vocab \(vocab), length \(length), seed \(seed), reference scale \(format(referenceScale)); "
                + "KL(θ‖ref) = \(format(base.reverseKL)), KL(ref‖θ) = \(format(base.forwardKL)) (whole sequences)."
        )
        emit(
            "Behaviour drift: "
                + driftInfo.map {
                    "σ=\(format($0.drift)): KL(μ‖θ) = \(format($0.behaviourKL)), ESS/N of W = \(format($0.sequenceESSFraction))"
                }.joined(separator: "; ") + ".")
        emit(
            "Each cell: cosine / relative L2 error of the exact expected gradient (sequences drawn from μ).")
        for (title, pick) in [
            ("against rkl_seq = ∇KL(π_θ‖π_ref)", { (r: TableRow) in (r.cosineRKL, r.relativeErrorRKL) }),
            ("against fkl_seq = ∇KL(π_ref‖π_θ)", { (r: TableRow) in (r.cosineFKL, r.relativeErrorFKL) }),
        ] as [(String, (TableRow) -> (Double?, Double))] {
            emit("")
            emit("### \(title)")
            emit("")
            emit("| id | " + driftLevels.map { "σ = \(format($0))" }.joined(separator: " | ") + " |")
            emit("|---|" + driftLevels.map { _ in "---|" }.joined())
            var ids: [String] = []
            for r in rows where !ids.contains(r.id) { ids.append(r.id) }
            for id in ids {
                let cells = driftLevels.map { drift -> String in
                    guard let r = rows.first(where: { $0.id == id && $0.drift == drift }) else { return "" }
                    let (c, e) = pick(r)
                    return "\(c.map { fixed($0) } ?? "—") / \(fixed(e))"
                }
                emit("| `\(id)` | " + cells.joined(separator: " | ") + " |")
            }
        }
    }
}

/// One row of `rein kl table`.
struct TableRow: Encodable {
    var id: String
    var drift: Double
    /// nil when the gradient is zero to rounding (on-policy k1-as-loss).
    var cosineRKL: Double?
    var relativeErrorRKL: Double
    var cosineFKL: Double?
    var relativeErrorFKL: Double
}

/// The size of one drift level.
struct DriftInfo: Encodable {
    var drift: Double
    var behaviourKL: Double
    var sequenceESSFraction: Double
}

private func row(_ id: String, _ drift: Double, _ g: [[Double]], _ rkl: [[Double]], _ fkl: [[Double]])
    -> TableRow
{
    TableRow(
        id: id, drift: drift,
        cosineRKL: cosineOrNil(g, rkl), relativeErrorRKL: GradientComparison.relativeError(g, to: rkl),
        cosineFKL: cosineOrNil(g, fkl), relativeErrorFKL: GradientComparison.relativeError(g, to: fkl))
}

/// The cosine, or nil when `g` is zero to rounding relative to the target.
private func cosineOrNil(_ g: [[Double]], _ target: [[Double]]) -> Double? {
    let flat = Array(g.joined())
    let t = Array(target.joined())
    guard GradientComparison.norm(flat) > 1e-12 * max(GradientComparison.norm(t), 1e-300) else { return nil }
    return GradientComparison.cosine(flat, t)
}

/// KL(μ‖π_θ) over whole sequences.
private func behaviourKL(_ policy: TabularPolicy) -> Double {
    var kl = 0.0
    policy.forEachSequence { s in
        let logMu = s.logBehaviour.reduce(0, +)
        kl += exp(logMu) * (logMu - s.logPolicy.reduce(0, +))
    }
    return kl
}

/// Kish ESS/N of the sequence ratio W under μ: 1 / E_μ[W²].
private func sequenceESSFraction(_ policy: TabularPolicy) -> Double {
    var second = 0.0
    policy.forEachSequence { s in
        let logMu = s.logBehaviour.reduce(0, +)
        let logW = s.logPolicy.reduce(0, +) - logMu
        second += exp(logMu + 2 * logW)
    }
    return 1 / second
}

private func parseDrifts(_ text: String) throws -> [Double] {
    try text.split(separator: ",").map { (part: Substring) throws -> Double in
        let trimmed = String(part).trimmingCharacters(in: .whitespaces)
        guard let value = Double(trimmed), value.isFinite, value >= 0 else {
            throw CLIError("--drifts: '\(trimmed)' is not a non-negative number")
        }
        return value
    }
}

private func implementationList(_ ids: String?) throws -> [KLImplementation] {
    guard let ids else { return KLImplementation.required }
    return try ids.split(separator: ",").map { (id: Substring) throws -> KLImplementation in
        do {
            return try KLImplementation.named(String(id).trimmingCharacters(in: .whitespaces))
        } catch {
            throw CLIError(
                "\(error)" + "; known ids: " + KLImplementation.catalog.map(\.id).joined(separator: ", "))
        }
    }
}

/// Reads and validates a tabular policy file; every failure is one line.
func loadTabularPolicy(path: String) throws -> TabularPolicy {
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw CLIError("cannot read policy file \(path)")
    }
    do {
        return try JSONDecoder().decode(TabularPolicy.self, from: data)
    } catch let error as TabularPolicyError {
        throw CLIError("bad policy file \(path): \(error.description)")
    } catch let error as DecodingError {
        if let token = nonFiniteNumber(in: data) {
            throw CLIError("bad policy file \(path): '\(token)' is not a finite number")
        }
        throw CLIError("bad policy file \(path): \(describe(error))")
    } catch {
        throw CLIError("bad policy file \(path): not valid JSON")
    }
}

/// The first bare token that reads as NaN, an infinity or a number beyond Double's range.
private func nonFiniteNumber(in data: Data) -> String? {
    let text = String(decoding: data, as: UTF8.self)
    let separators = Set<Character>(",[]{}: \t\r\n")
    for token in text.split(whereSeparator: { separators.contains($0) }) where !token.hasPrefix("\"") {
        if let value = Double(token), !value.isFinite { return String(token) }
    }
    return nil
}

private func describe(_ error: DecodingError) -> String {
    func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty
            ? "top level"
            : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
    switch error {
    case .keyNotFound(let key, _): return "missing key \"\(key.stringValue)\""
    case .typeMismatch(let type, let context):
        return
            "at \(path(context.codingPath)): expected \(type == Double.self ? "a finite number" : "\(type)")"
    case .valueNotFound(_, let context): return "at \(path(context.codingPath)): null value"
    case .dataCorrupted(let context):
        return context.codingPath.isEmpty
            ? "not valid JSON" : "at \(path(context.codingPath)): \(context.debugDescription)"
    @unknown default: return "cannot decode"
    }
}

private func format(_ x: Double) -> String {
    String(format: "%.6g", x)
}

private func fixed(_ x: Double) -> String {
    String(format: "%.3f", x)
}
