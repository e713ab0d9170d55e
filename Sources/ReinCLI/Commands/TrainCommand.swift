import ArgumentParser
import Foundation
import Logging
import Rein
import ReinMetricsServer
import ReinModel
import ReinRuntime
import ReinTasks
import ReinTracker
import ServiceLifecycle

/// `rein train`: GRPO with the configured KL form, in one process.
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Run RL (GRPO + a KL term) from the reference policy; writes a run folder.",
        discussion: """
            Reads train.reference (write it with `rein pretrain`). The run folder (run_dir) gets \
            config.yaml, metrics.jsonl (one JSON line per step), checkpoint/ (policy, optimizer, lag \
            ring, loop state; atomic, checksummed, the previous one kept as checkpoint.prev/ and used \
            if the newest is damaged), ledger.json and eval.json. With --workers the learner \
            checkpoints the same way and resumes the same way; SIGTERM or Ctrl-C then drains, \
            checkpoints and exits 0.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Continue from run_dir/checkpoint (started automatically if it exists).")
    var resume = false

    @Flag(name: .long, help: "Start over even if run_dir has a checkpoint.")
    var fresh = false

    @Option(
        name: .long,
        help: """
            Run the learner and this many rollout workers as distributed actors in this process \
            (ZeroMQ inproc://), as `rein launch` does across processes; 0: the plain loop.
            """)
    var workers = 0

    @OptionGroup var reference: ReferenceOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup(title: "Metrics (with --workers)") var metrics: MetricsOptions

    func validate() throws {
        if metrics.metricsBind != nil, workers == 0 {
            throw ValidationError("--metrics-bind needs --workers")
        }
    }

    func run() async throws {
        let logger = Logger(label: "rein.train")
        let config = try options.load()
        if workers > 0 {
            try await runDistributed(config: config, logger: logger)
            return
        }
        let reference = try reference.load(config)
        let folder = try RunFolder(path: config.runDir)
        let lock = try folder.lock()
        defer { withExtendedLifetime(lock) {} }
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        try resumeOrStart(trainer, folder: folder, logger: logger)
        try folder.writeConfig(config)
        try attachTracker(to: trainer, train: config.train, logger: logger)
        if trainer.step == 0 {
            let (greedy, sampled) = try trainer.evaluate()
            let evaluation = HeldOutEvaluation(greedy: greedy, sampled: sampled)
            logger.info("start: \(evaluation.summary)")
            try folder.writeEvaluation(evaluation, start: true)
        }
        try train(trainer, folder: folder, train: config.train)
        try trainer.saveCheckpoint()
        let (greedy, sampled) = try trainer.evaluate()
        let end = HeldOutEvaluation(greedy: greedy, sampled: sampled)
        try folder.writeEvaluation(end)
        guard trainer.ledger.balances else {
            throw CLIError("sample ledger does not balance: \(trainer.ledger)")
        }
        try folder.writeLedger(trainer.ledger)
        emitRunSummary(
            runDir: config.runDir, evaluation: end, steps: trainer.step, version: trainer.learner.version)
    }
}

extension TrainCommand {
    /// Resumes `trainer` from the run folder's checkpoint (cutting metrics and tracker records back
    /// to it), unless `--fresh` or there is none; `--resume` requires one.
    func resumeOrStart(_ trainer: Trainer, folder: RunFolder, logger: Logger) throws {
        let store = CheckpointStore(folder: folder)
        if !fresh, let stored = try store.load(kind: Trainer.checkpointKind, logger: logger) {
            try trainer.resume(from: stored)
            // The steps after the checkpoint are trained again: their records go.
            try folder.keep(first: trainer.step, of: .metrics, as: StepMetrics.self)
            try folder.keepRecords(TrackerRecord.self, of: .tracker) { $0.step <= trainer.step }
            logger.info(
                "resumed from \(stored.directory) at step \(trainer.step), version \(trainer.learner.version)"
            )
        } else if resume {
            throw CLIError("--resume: no checkpoint in \(store.current)")
        } else {
            try store.removeAll()
            try folder.remove(.metrics)
            try folder.remove(.tracker)
        }
    }

    /// The staleness tracker every `train.tracker_every` steps (off under top-k sampling).
    func attachTracker(to trainer: Trainer, train t: TrainConfig, logger: Logger) throws {
        guard t.trackerEvery > 0 else { return }
        if t.topK > 0 {
            logger.notice("staleness tracker off: top_k sampling is not a softmax of the logits")
        } else {
            try StalenessTracker(
                every: t.trackerEvery, parameterEvery: t.trackerParameterEvery, logger: logger
            )
            .attach(to: trainer)
        }
    }

    /// Trains to `train.steps`: metrics (with the held-out evaluation every `train.eval_every`
    /// steps), checkpoints every `train.checkpoint_every`, the progress line.
    func train(_ trainer: Trainer, folder: RunFolder, train t: TrainConfig) throws {
        let progress = TrainingProgress(total: t.steps)
        while trainer.step < t.steps {
            var metrics = try trainer.runStep()
            let done = trainer.step
            if t.evalEvery > 0 && done % t.evalEvery == 0 && done < t.steps {
                let (greedy, sampled) = try trainer.evaluate()
                metrics.evalGreedy = greedy.accuracy
                metrics.evalSampled = sampled.accuracy
            }
            try folder.appendMetrics(metrics)
            if t.checkpointEvery > 0 && done % t.checkpointEvery == 0 { try trainer.saveCheckpoint() }
            progress.record(metrics)
        }
        progress.finish()
    }

    /// `--workers N`: the learner and N workers as distributed actors over `inproc://`, as a
    /// service (SIGTERM or Ctrl-C drains, checkpoints and finishes normally, as `rein learner` does).
    func runDistributed(config: RunConfig, logger: Logger) async throws {
        let metricsEndpoint = try await metrics.start(config, logger: logger)
        let parameters = try reference.load(config)
        let run = try LearnerRun(config: config, resume: resume, fresh: fresh, logger: logger)
        defer { withExtendedLifetime(run) {} }
        let progress = TrainingProgress(total: config.train.steps)
        let trainer = DistributedTrainer(
            config: config, reference: parameters, folder: run.folder, workers: workers, transport: .inproc,
            settings: node.settings(config), resume: run.checkpoint,
            evaluator: try HeldOutEvaluator(config: config, gpt: parameters.config),
            onStep: progress.record, logger: logger)
        let result = Outcome<DistributedRunResult>()
        try await ServiceGroup.node(
            [DistributedTrainerService(trainer, finished: result.set)],
            also: MetricsOptions.services(metricsEndpoint), logger: logger
        )
        .run()
        progress.finish()
        guard let result = result.get() else { throw CLIError("the run stopped without a result") }
        emitRunSummary(runDir: config.runDir, result: result)
    }
}
