import Foundation
import Logging
import Rein
import ReinModel
import ReinTracker

/// The distributed learner's staleness tracker (`train.tracker_every` > 0): one line of
/// `tracker.jsonl` in the run folder every `tracker_every` batches, before they are trained, with
/// the selection skew of trained versus dropped samples.
struct LearnerTracking {
    /// The tracker, if the run has one.
    let tracker: StalenessTracker?
    /// Trained versus dropped samples, for the tracker's selection skew.
    var selection = SelectionAccumulator()
    /// Where each observation is recorded as metrics.
    let metrics: TrackerMetrics

    /// The tracking `config` asks for (none with top-k sampling: it has no softmax μ to compare).
    init(_ config: RunConfig, logger: Logger) {
        let t = config.train
        metrics = TrackerMetrics(t)
        guard t.trackerEvery > 0 else {
            tracker = nil
            return
        }
        guard t.topK == 0 else {
            logger.notice("staleness tracker off: top_k sampling is not a softmax of the logits")
            tracker = nil
            return
        }
        do {
            tracker = try StalenessTracker(
                every: t.trackerEvery, parameterEvery: t.trackerParameterEvery, logger: logger)
        } catch {
            logger.warning("staleness tracker off: \(error)")
            tracker = nil
        }
    }

    /// Whether step `step` (1-based) is observed.
    func shouldObserve(step: Int) -> Bool { tracker?.shouldObserve(step: step) ?? false }

    /// Runs the tracker on the batch of `order` (about to be trained by `policy` at `version`;
    /// `kept`: the weights of the versions still kept) on the learner's thread and appends its
    /// record to `tracker.jsonl`. Failures are logged, never stop training.
    func observe(
        _ order: RunStateMachine<some Hashable & Sendable>.TrainOrder, version: Int, policy: GPTParameters,
        reference: GPTParameters, kept: [Int: GPTParameters], config: RunConfig, core: LearnerCore,
        folder: RunFolder?, logger: Logger
    ) async {
        guard let tracker else { return }
        let (step, batch, sampledBy) = (order.index + 1, order.batch, order.sampledBy)
        let selection = self.selection.summary
        let (temperature, threads) = (config.train.temperature, config.threads)
        let parameterSpace = tracker.shouldCompareParameters(step: step)
        let outcome = await core.observe(threads: threads) { scratch in
            var record = try tracker.observe(
                step: step, batch: batch, version: version, policy: policy, reference: reference,
                behaviour: { kept[$0] }, temperature: temperature, threads: threads, scratch: scratch,
                parameterSpace: parameterSpace)
            record.selection = selection
            return record
        }
        do {
            let record = try outcome.get()
            metrics.record(record)
            try folder?.append(record: record, to: .tracker)
        } catch {
            logger.warning(
                "staleness tracker failed at step \(step) (batch sampled by version \(sampledBy)): \(error)")
        }
    }
}
