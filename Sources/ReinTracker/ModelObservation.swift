import Foundation
import Logging
import Rein
import ReinKL
import ReinModel

extension StalenessTracker {
    /// Recomputes the full rows of a learner batch with the model and analyses them.
    ///
    /// Up to three kinds of forward pass over the batch, each with full log-softmax rows: θ, π_ref
    /// (unless the rollouts carry its rows, ``Rein/Rollout/referenceRows``), and one per distinct
    /// behaviour version of its tokens whose weights differ from θ's (identical
    /// weights reuse θ's rows). μ(·|s) is the softmax of the behaviour
    /// logits divided by `temperature` (top-k sampling is not a softmax and is refused).
    ///
    /// - Parameters:
    ///   - step: the trainer step (1-based).
    ///   - batch: the rollouts the learner is about to train on.
    ///   - version: the learner's version θ.
    ///   - policy: θ's weights.
    ///   - reference: π_ref's weights.
    ///   - behaviour: the weights of a behaviour version (nil if unknown).
    ///   - temperature: the sampling temperature.
    ///   - threads: threads of the scratch model (when `scratch` is nil).
    ///   - scratch: a model of the same shape to run the forwards with (its parameters are
    ///     replaced); one is made when nil.
    ///   - parameterSpace: also back-propagate every implementation's expected logit-space
    ///     gradient through θ (one backward each) and compare in parameter space
    ///     (``TrackerRecord/parameterBias``).
    public func observe(
        step: Int, batch: RolloutBatch, version: Int, policy: GPTParameters, reference: GPTParameters,
        behaviour: (Int) -> GPTParameters?, temperature: Double = 1, threads: Int = 1,
        scratch: GPTModel? = nil, parameterSpace: Bool = false
    ) throws(TrackerError) -> TrackerRecord {
        let clock = ContinuousClock()
        let start = clock.now
        let rollouts = batch.rollouts
        guard !rollouts.isEmpty else { throw .shape("empty batch") }
        guard temperature > 0 else { throw .unsupportedSampling("temperature \(temperature)") }
        for r in rollouts
        where r.versions.count != r.completion.count || r.behaviourLogProbs.count != r.completion.count {
            throw .shape("rollout \(r.id): \(r.completion.count) tokens, \(r.versions.count) versions")
        }
        let length = max(2, rollouts.map { $0.prompt.count + $0.completion.count }.max() ?? 2)
        var tokens = [Int32](repeating: 0, count: rollouts.count * length)
        for (b, r) in rollouts.enumerated() {
            for (t, id) in (r.prompt + r.completion).enumerated() { tokens[b * length + t] = id }
        }
        let model =
            scratch.flatMap { $0.config == policy.config ? $0 : nil }
            ?? GPTModel(parameters: policy, threads: threads)
        let vocab = model.config.vocab
        let positions = length - 1
        func rows(_ parameters: GPTParameters) throws(TrackerError) -> [Float] {
            model.parameters = parameters
            do {
                let tokenBatch = try TokenBatch(
                    tokens: tokens, batch: rollouts.count, length: length,
                    lengths: rollouts.map { $0.prompt.count + $0.completion.count })
                guard let out = try model.forward(tokenBatch, logSoftmaxRows: true).logSoftmax else {
                    throw TrackerError.model("no log-softmax rows")
                }
                return out
            } catch let error as TrackerError {
                throw error
            } catch {
                throw .model("\(error)")
            }
        }
        // π_ref's rows come with the batch when the sampler scored the reference (rollout
        // workers and the trainer do): no forward for them here.
        let ref: [Float]
        if let scored = Learner.scoredReference(rollouts, positions: positions, vocab: vocab) {
            ref = scored.rows
        } else {
            ref = try rows(reference)
        }
        var behaviourRows: [Int: [Float]] = [:]
        // Behaviour weights identical to θ's (lag 0) reuse θ's rows: no extra forward.
        var sameAsPolicy: [Int] = []
        for v in Set(rollouts.flatMap(\.versions)).sorted() {
            guard let weights = behaviour(v) else { throw .missingBehaviour(version: v) }
            if weights.values == policy.values {
                sameAsPolicy.append(v)
            } else {
                behaviourRows[v] = try rows(weights)
            }
        }
        // θ last: its activations stay in the model for the parameter-space backward passes.
        let theta = try rows(policy)
        for v in sameAsPolicy { behaviourRows[v] = theta }
        var tracked: [TrackedPosition] = []
        var sequenceLags: [Int] = []
        var maxError = 0.0
        for (b, r) in rollouts.enumerated() {
            sequenceLags.append(Lag.sequence(r.versions, assigned: r.oldestVersion, learner: version))
            for t in 0..<r.completion.count {
                let base = (b * positions + r.prompt.count - 1 + t) * vocab
                let range = base..<(base + vocab)
                let mu = behaviourRows[r.versions[t]]![range].map { Double($0) / temperature }
                let position: KLPosition
                do {
                    position = try KLPosition(
                        thetaLogits: theta[range].map(Double.init), behaviourLogits: mu,
                        referenceLogits: ref[range].map(Double.init))
                } catch {
                    throw .badRow("\(error)")
                }
                let token = Int(r.completion[t])
                maxError = max(
                    maxError, abs(position.logBehaviour[token] - Double(r.behaviourLogProbs[t])))
                tracked.append(
                    TrackedPosition(
                        lag: Lag.token(r.versions[t], learner: version), sequence: b, token: token,
                        rows: position))
            }
        }
        let recompute = ReinTracker.seconds(clock.now - start)
        var record = try analyse(
            step: step, version: version, positions: tracked, sequenceLags: sequenceLags,
            maxBehaviourLogProbError: maxError, seconds: recompute)
        record.versionSpans = SpanCount.histogram(rollouts.map(\.versions))
        if parameterSpace {
            let t0 = clock.now
            var slots: [Int] = []  // flat offset of each tracked position's logit row
            for (b, r) in rollouts.enumerated() {
                for t in 0..<r.completion.count {
                    slots.append((b * positions + r.prompt.count - 1 + t) * vocab)
                }
            }
            record.parameterBias = try parameterBias(
                model: model, positions: tracked, slots: slots, size: rollouts.count * positions * vocab)
            record.seconds += ReinTracker.seconds(clock.now - t0)
        }
        return record
    }

    /// Back-propagates the target and every implementation's expected logit-space gradient
    /// through the model's last forward pass and compares them in parameter space.
    func parameterBias(model: GPTModel, positions: [TrackedPosition], slots: [Int], size: Int)
        throws(TrackerError) -> [ParameterBias]
    {
        var perPosition: [[[Double]]] = []  // [position][implementation][vocab]
        var targets: [[Double]] = []
        for p in positions {
            do {
                perPosition.append(try p.rows.expectedGradients(of: implementations))
            } catch {
                throw .badImplementation("\(error)")
            }
            targets.append(p.rows.reverseKLGradient)
        }
        func backPropagate(_ row: (Int) -> [Double]) throws(TrackerError) -> [Double] {
            var dLogits = [Float](repeating: 0, count: size)
            for (k, slot) in slots.enumerated() {
                for (j, x) in row(k).enumerated() { dLogits[slot + j] = Float(x) }
            }
            model.zeroGradients()
            do {
                try model.backward(dLogits: dLogits)
            } catch {
                throw .model("\(error)")
            }
            return model.gradients.map(Double.init)
        }
        let target = try backPropagate { targets[$0] }
        let targetNorm = GradientComparison.norm(target)
        var result: [ParameterBias] = []
        for (i, implementation) in implementations.enumerated() {
            let g = try backPropagate { perPosition[$0][i] }
            let norm = GradientComparison.norm(g)
            result.append(
                ParameterBias(
                    id: implementation.id, relativeError: GradientComparison.relativeError(g, to: target),
                    cosine: norm <= 1e-12 * targetNorm ? 0 : GradientComparison.cosine(g, target), norm: norm,
                    targetNorm: targetNorm))
        }
        model.zeroGradients()
        return result
    }

    /// Installs the tracker on `trainer`: every ``every`` steps, before the learner step, the
    /// batch is analysed and one line is appended to `tracker.jsonl` in the run folder.
    /// Failures are logged and never stop training.
    public func attach(to trainer: Trainer) throws(TrackerError) {
        guard trainer.config.train.topK == 0 else {
            throw .unsupportedSampling("top_k \(trainer.config.train.topK) (μ is not a softmax)")
        }
        let tracker = self
        let temperature = trainer.config.train.temperature
        let threads = trainer.config.threads
        let logger = self.logger
        let scratch = GPTModel(parameters: trainer.referenceParameters, threads: threads)
        final class Box { var selection = SelectionAccumulator() }
        let box = Box()
        trainer.onDroppedBatch = { batch, _ in box.selection.addDropped(batch) }
        trainer.beforeLearnerStep = { [unowned trainer] batch, samplingVersion, weights in
            box.selection.addTrained(batch)
            let step = trainer.step + 1
            guard tracker.shouldObserve(step: step) else { return }
            do {
                var record = try tracker.observe(
                    step: step, batch: batch, version: trainer.learner.version,
                    policy: trainer.learner.model.parameters, reference: trainer.referenceParameters,
                    behaviour: { $0 == samplingVersion ? weights : trainer.parameters(ofVersion: $0) },
                    temperature: temperature, threads: threads, scratch: scratch,
                    parameterSpace: tracker.shouldCompareParameters(step: step))
                record.selection = box.selection.summary
                try trainer.folder.append(record: record, to: .tracker)
            } catch {
                logger.warning("staleness tracker failed at step \(step): \(error)")
            }
        }
    }
}
