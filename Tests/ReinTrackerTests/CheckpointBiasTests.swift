import Foundation
import Logging
import Rein
import ReinKL
import ReinModel
import ReinTasks
import Testing

@testable import ReinTracker

@Suite("rein bias: the tracker's measurement on three checkpoints")
struct CheckpointBiasTests {
    let task = ArithmeticTaskConfig.default
    var gpt: GPTConfig {
        GPTConfig(vocab: Tokenizer.standard.vocabSize, context: 16, dModel: 16, layers: 1, heads: 2)
    }
    func options(samples: Int = 12) -> CheckpointBias.Options {
        CheckpointBias.Options(task: task, samples: samples, temperature: 1, seed: 3, threads: 1)
    }

    @Test func staleBehaviourBiasesTheNaiveFormsButNotTheCorrectedOnes() throws {
        let reference = try GPTParameters(config: gpt, seed: 5)
        let policy = try GPTParameters(config: gpt, seed: 6)
        let behaviour = try GPTParameters(config: gpt, seed: 7)
        let r = try CheckpointBias.measure(
            policy: policy, behaviour: behaviour, reference: reference, options: options(),
            logger: Logger(label: "test"))
        #expect(r.sequences == 12 && r.positions > 12 && !r.onPolicy)
        func form(_ id: String) throws -> CheckpointBias.Form { try #require(r.forms.first { $0.id == id }) }
        #expect(try form("k2_loss_sgw_token").relativeError < 1e-6)
        #expect(try form("k3_loss_w_token").relativeError < 1e-6)
        #expect(try form("k2_loss").relativeError > 1e-3)
        #expect(r.behaviourKL > 0 && r.reverseKL > 0 && r.tokenESSFraction <= 1 && r.prefixShift != nil)
        // Deterministic: the same seed gives the same measurement.
        let again = try CheckpointBias.measure(
            policy: policy, behaviour: behaviour, reference: reference, options: options(),
            logger: Logger(label: "test"))
        #expect(again == r)
    }

    @Test func onPolicyTheNaiveK2IsExact() throws {
        let reference = try GPTParameters(config: gpt, seed: 5)
        let policy = try GPTParameters(config: gpt, seed: 6)
        let r = try CheckpointBias.measure(
            policy: policy, behaviour: policy, reference: reference, options: options(),
            logger: Logger(label: "test"))
        #expect(r.onPolicy && r.behaviourKL < 1e-12)
        #expect(r.forms.first { $0.id == "k2_loss" }!.relativeError < 1e-6)
        #expect(abs(r.forms.first { $0.id == "k1_loss" }!.relativeError - 1) < 1e-6)
    }

    @Test func checkpointsOfDifferentShapesAreRefused() throws {
        let small = try GPTParameters(config: gpt, seed: 5)
        var other = gpt
        other.dModel = 32
        let large = try GPTParameters(config: other, seed: 5)
        #expect(throws: TrackerError.self) {
            try CheckpointBias.measure(
                policy: small, behaviour: large, reference: small, options: options(),
                logger: Logger(label: "test"))
        }
        #expect(throws: TrackerError.self) {
            try CheckpointBias.measure(
                policy: small, behaviour: small, reference: small, options: options(samples: 0),
                logger: Logger(label: "test"))
        }
    }
}
