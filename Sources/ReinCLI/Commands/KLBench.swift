import ArgumentParser
import Foundation
import Rein
import ReinKL

/// `rein bench kl`: cost of the production KL objective per token.
struct KLBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kl",
        abstract:
            "Measure ReinKL's production objective (loss, dLoss/dlogπ, KL reward, diagnostics) per token.",
        discussion: "Build with -c release for meaningful numbers: swift run -c release rein bench kl"
    )

    @Option(name: .long, help: "Tokens per batch.")
    var tokens: Int = 1_000_000

    @Option(name: .long, help: "Tokens per sequence.")
    var sequenceLength: Int = 256

    @Option(name: .long, help: "Timed repetitions per configuration (the median is reported).")
    var repeats: Int = 5

    @Option(name: .long, help: "Seed of the synthetic log-probabilities.")
    var seed: UInt64 = 1

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    struct Result: Encodable {
        var id: String
        var tokens: Int
        var medianSeconds: Double
        var minimumSeconds: Double
        var nanosecondsPerToken: Double
        var tokensPerSecond: Double
    }

    func validate() throws {
        guard tokens > 0, sequenceLength > 0, repeats > 0 else {
            throw ValidationError("--tokens, --sequence-length and --repeats must be positive")
        }
    }

    /// Synthetic batch: log π_θ of sampled tokens, a slightly stale μ and a nearby reference;
    /// 10% of the tokens masked (prompt / padding).
    private struct Batch {
        var logPolicy: [Float]
        var logBehaviour: [Float]
        var logReference: [Float]
        var mask: [Bool]
        var lengths: [Int]
    }

    func run() async throws {
        let batch = syntheticBatch()
        var results: [Result] = []
        for (id, configuration) in Self.cases() {
            results.append(try measure(id, configuration, on: batch))
        }

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            emit(String(decoding: try encoder.encode(results), as: UTF8.self))
            return
        }
        emit(
            "ReinKL objective on \(tokens) Float tokens (sequences of \(sequenceLength), 10% masked), "
                + "median of \(repeats) runs")
        let width = max(results.map(\.id.count).max() ?? 0, 13)
        emit(pad("configuration", width) + "   ms/batch   ns/token     tokens/s")
        for r in results {
            emit(
                pad(r.id, width)
                    + String(
                        format: " %10.2f %10.2f %12.3g", r.medianSeconds * 1e3, r.nanosecondsPerToken,
                        r.tokensPerSecond))
        }
    }

    private func syntheticBatch() -> Batch {
        var rng = SeededGenerator(seed: seed)
        var logPolicy = [Float](repeating: 0, count: tokens)
        var logBehaviour = [Float](repeating: 0, count: tokens)
        var logReference = [Float](repeating: 0, count: tokens)
        var mask = [Bool](repeating: true, count: tokens)
        for i in 0..<tokens {
            let a = -3 * rng.nextUniform()
            logPolicy[i] = Float(a)
            logBehaviour[i] = Float(min(0, a + 0.05 * rng.nextGaussian()))
            logReference[i] = Float(min(0, a + 0.3 * rng.nextGaussian()))
            mask[i] = rng.nextUniform() > 0.1
        }
        var lengths = [Int](repeating: sequenceLength, count: tokens / sequenceLength)
        if tokens % sequenceLength != 0 { lengths.append(tokens % sequenceLength) }
        return Batch(
            logPolicy: logPolicy, logBehaviour: logBehaviour, logReference: logReference, mask: mask,
            lengths: lengths)
    }

    /// The required implementations and two production configurations with every guard on.
    private static func cases() -> [(String, KLConfiguration)] {
        var cases: [(String, KLConfiguration)] = KLImplementation.required.map { ($0.id, $0.configuration) }
        cases.append(
            (
                "k3_loss_coefclip_token+dual+cap+token_mean",
                KLConfiguration(
                    estimator: .k3, ratio: .token, normalization: .tokenMean, correction: .coefficient,
                    clip: KLClipRange(low: 0.2, high: 0.28), dualClip: 3, ratioCap: 10)
            ))
        cases.append(
            (
                "k2_loss_sgw_token+bound+clamp",
                KLConfiguration(
                    estimator: .k2, ratio: .token, normalization: .sequenceMean, coefficientBound: 5,
                    valueClamp: 10)
            ))
        return cases
    }

    /// Times one configuration: a warm-up run, then `repeats` timed runs.
    private func measure(_ id: String, _ configuration: KLConfiguration, on batch: Batch) throws -> Result {
        let objective = try KLObjective(configuration)
        var times: [Double] = []
        var sink = 0.0
        for _ in 0..<(repeats + 1) {
            let clock = ContinuousClock()
            let start = clock.now
            let result = try objective.evaluate(
                logPolicy: batch.logPolicy, logBehaviour: batch.logBehaviour,
                logReference: batch.logReference,
                mask: batch.mask, sequenceLengths: batch.lengths)
            let elapsed = clock.now - start
            sink += result.loss + Double(result.dLogPolicy[tokens / 2])
            times.append(
                seconds(elapsed))
        }
        times.removeFirst()  // warm-up
        times.sort()
        let median = times[times.count / 2]
        precondition(sink.isFinite)
        return Result(
            id: id, tokens: tokens, medianSeconds: median, minimumSeconds: times[0],
            nanosecondsPerToken: median / Double(tokens) * 1e9,
            tokensPerSecond: Double(tokens) / median)
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s + String(repeating: " ", count: max(0, width - s.count))
    }
}
