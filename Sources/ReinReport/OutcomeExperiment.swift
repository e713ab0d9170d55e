import Foundation
import Logging
import Rein
import ReinKL
import ReinModel
import ReinTasks
import ReinTracker

/// The outcome experiment (`rein experiment outcome`): every KL form × injected lag × seed trained
/// from the same π_ref with the staleness tracker (and its parameter-space comparison) on, one
/// ``OutcomeRecord`` per run. Resumable: a run whose record (same steps and β) exists is skipped;
/// records are written atomically once a run has finished, so an interrupted run is redone from
/// its start.
public struct OutcomeExperiment: Sendable {
    /// One form of the comparison: `implementation` nil is "no KL" (β = 0).
    public struct Form: Sendable, Hashable {
        /// The id used in names and tables (`no_kl` or a `KLImplementation` id).
        public var id: String
        /// The `KLImplementation` id, nil for no KL.
        public var implementation: String?
    }

    /// The forms: no KL; k1, k2, k3 as loss; k1 in reward; the token-corrected sg(w)·k2 and w·k3;
    /// and k1 in reward with the sequence ratio sg(W·G_t).
    public static let forms: [Form] = [
        Form(id: "no_kl", implementation: nil), Form(id: "k1_loss", implementation: "k1_loss"),
        Form(id: "k2_loss", implementation: "k2_loss"), Form(id: "k3_loss", implementation: "k3_loss"),
        Form(id: "k1_reward", implementation: "k1_reward"),
        Form(id: "k2_loss_sgw_token", implementation: "k2_loss_sgw_token"),
        Form(id: "k3_loss_w_token", implementation: "k3_loss_w_token"),
        Form(id: "k1_reward_sgW", implementation: "k1_reward_sgW"),
    ]

    /// Each naive form with its importance-corrected counterpart (same expected gradient at lag 0).
    public static let corrections: [(naive: String, corrected: String)] = [
        ("k2_loss", "k2_loss_sgw_token"), ("k3_loss", "k3_loss_w_token"), ("k1_reward", "k1_reward_sgW"),
    ]

    /// The design: which forms, lags (in versions) and seeds, how long each run is.
    public struct Plan: Sendable, Hashable {
        /// The forms, in ``OutcomeExperiment/forms`` order by default.
        public var forms: [Form]
        /// Injected lags in policy versions.
        public var lags: [Int]
        /// Seeds (each run's `seed`; π_ref is the same for all).
        public var seeds: [Int]
        /// Learner steps per run.
        public var steps: Int
        /// The output folder: `runs/<name>/` run folders, `results/<name>.json` records.
        public var out: String
        /// Tracker observations per run at least (the interval is min(`train.tracker_every`,
        /// steps / this)); each also runs the parameter-space comparison, the costly part.
        public var trackerObservations = 5

        /// A plan.
        public init(forms: [Form], lags: [Int], seeds: [Int], steps: Int, out: String) {
            self.forms = forms
            self.lags = lags
            self.seeds = seeds
            self.steps = steps
            self.out = out
        }

        /// Every run, form-major then lag then seed.
        public var runs: [(form: Form, lag: Int, seed: Int)] {
            forms.flatMap { form in lags.flatMap { lag in seeds.map { (form, lag, $0) } } }
        }

        /// A run's name: `<form>-lag<L>-seed<S>`.
        public static func name(form: String, lag: Int, seed: Int) -> String {
            "\(form)-lag\(lag)-seed\(seed)"
        }

        /// The run folder of a run.
        public func runFolder(_ name: String) -> String {
            ((out as NSString).appendingPathComponent("runs") as NSString).appendingPathComponent(name)
        }

        /// The record file of a run.
        public func resultFile(_ name: String) -> String {
            ((out as NSString).appendingPathComponent("results") as NSString).appendingPathComponent(
                name + ".json")
        }
    }

    /// What the experiment reports after each run.
    public struct Progress: Sendable {
        /// 1-based position of the run.
        public var index: Int
        /// Runs in the plan.
        public var total: Int
        /// The run's record.
        public var record: OutcomeRecord
        /// Whether it was read from an earlier invocation instead of run.
        public var skipped: Bool
        /// Wall time of this run (0 when skipped).
        public var seconds: Double
        /// Estimated wall time of the runs still to do (mean of the runs done in this invocation).
        public var remainingSeconds: Double?
    }

    /// The plan.
    public let plan: Plan
    /// The base configuration every run starts from.
    public let base: RunConfig
    let logger: Logger

    /// An experiment of `plan` on top of `base`.
    public init(plan: Plan, base: RunConfig, logger: Logger) {
        self.plan = plan
        self.base = base
        self.logger = logger
    }

    /// One run's configuration: the base with the form, the injected lag, the seed, the tracker
    /// (``Plan/trackerObservations`` or more) and its parameter-space comparison on every
    /// observation.
    public func config(form: Form, lag: Int, seed: Int) throws -> RunConfig {
        var config = base
        config.seed = UInt64(seed)
        config.train.steps = plan.steps
        config.train.injectLag = lag * config.train.epochs * config.train.minibatches
        config.train.maxStaleness = max(config.train.maxStaleness, config.train.injectLag)
        config.train.evalEvery = 0
        config.train.checkpointEvery = 0
        config.train.trackerEvery = max(
            1, min(config.train.trackerEvery, plan.steps / max(1, plan.trackerObservations)))
        config.train.trackerParameterEvery = 1
        if let id = form.implementation {
            config.train.kl = try KLImplementation.named(id).configuration
        } else {
            config.train.beta = 0
        }
        config.runDir = plan.runFolder(Plan.name(form: form.id, lag: lag, seed: seed))
        try config.validate()
        return config
    }

    /// Runs every run of the plan that has no record yet (or one of other steps or β), calling
    /// `progress` after each (skipped ones included); returns every record in plan order.
    public func run(reference: GPTParameters, progress: (Progress) -> Void) throws -> [OutcomeRecord] {
        let runs = plan.runs
        var records: [OutcomeRecord] = []
        var ranSeconds: [Double] = []
        for (index, run) in runs.enumerated() {
            let name = Plan.name(form: run.form.id, lag: run.lag, seed: run.seed)
            // A record of another design (steps or β) is run again.
            var record = Self.existingRecord(at: plan.resultFile(name)).flatMap {
                $0.steps == plan.steps && $0.beta == (run.form.implementation == nil ? 0 : base.train.beta)
                    ? $0 : nil
            }
            let skipped = record != nil
            var elapsed = 0.0
            if record == nil {
                let started = ContinuousClock.now
                let config = try config(form: run.form, lag: run.lag, seed: run.seed)
                try train(config, reference: reference)
                elapsed = seconds(ContinuousClock.now - started)
                var made = try OutcomeRecord(
                    run: try RunReport.load(path: config.runDir, name: name), form: run.form.id,
                    lag: run.lag, seed: run.seed)
                made.seconds = elapsed
                try made.write(to: plan.resultFile(name))
                ranSeconds.append(elapsed)
                record = made
            }
            let left = runs.count - index - 1
            progress(
                Progress(
                    index: index + 1, total: runs.count, record: record!, skipped: skipped, seconds: elapsed,
                    remainingSeconds: ranSeconds.isEmpty ? nil : Statistics.mean(ranSeconds) * Double(left)))
            records.append(record!)
        }
        return records
    }

    /// The record at `path` if one exists and decodes (a damaged one is run again).
    static func existingRecord(at path: String) -> OutcomeRecord? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? OutcomeRecord.decode(data)
    }

    /// One training run with the tracker; the final held-out evaluation goes to `eval.json`.
    func train(_ config: RunConfig, reference: GPTParameters) throws {
        _ = try Self.trainTracked(config, reference: reference, evaluateAtStart: false, logger: logger)
    }

    /// One single-process training run of `config` in its run folder (metrics and tracker files
    /// started afresh) with the staleness tracker attached, as the experiments run them: the
    /// held-out evaluation at the end (and at the start if `evaluateAtStart`) and the ledger go
    /// to the folder. Returns the final greedy held-out accuracy.
    public static func trainTracked(
        _ config: RunConfig, reference: GPTParameters, evaluateAtStart: Bool, logger: Logger
    ) throws -> Double {
        let folder = try RunFolder(path: config.runDir)
        let lock = try folder.lock()
        defer { withExtendedLifetime(lock) {} }
        try folder.remove(.metrics)
        try folder.remove(.tracker)
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        try StalenessTracker(
            every: config.train.trackerEvery, parameterEvery: config.train.trackerParameterEvery,
            logger: logger
        ).attach(to: trainer)
        try folder.writeConfig(config)
        if evaluateAtStart {
            let (greedy, sampled) = try trainer.evaluate()
            try folder.writeEvaluation(HeldOutEvaluation(greedy: greedy, sampled: sampled), start: true)
        }
        while trainer.step < config.train.steps {
            try folder.appendMetrics(try trainer.runStep())
        }
        let (greedy, sampled) = try trainer.evaluate()
        try folder.writeEvaluation(HeldOutEvaluation(greedy: greedy, sampled: sampled))
        try folder.writeLedger(trainer.ledger)
        return greedy.accuracy
    }
}

/// The outcome of one run: what the policy ended as, and how biased its KL gradient was.
/// `results/<run>.json` of `rein experiment outcome`; the report derives the same record from a
/// run folder (``init(run:form:lag:seed:)``), so both always agree.
public struct OutcomeRecord: Sendable, Codable, Hashable {
    /// The layout version of the record file.
    public static let currentSchemaVersion = 1

    /// ``currentSchemaVersion`` when written.
    public var schemaVersion = OutcomeRecord.currentSchemaVersion
    /// The form id (`no_kl` or a `KLImplementation` id).
    public var form: String
    /// Injected lag (policy versions).
    public var lag: Int
    /// The run's seed.
    public var seed: Int
    /// Learner steps.
    public var steps: Int
    /// β.
    public var beta: Double
    /// Exact KL(π_θ‖π_ref) at the visited positions, mean over the last 10 % of steps.
    public var finalKL: Double
    /// (step, exact KL) at most 60 points, evenly spaced, the last step included.
    public var klTrajectory: [[Double]]
    /// Held-out greedy accuracy at the end.
    public var greedyAccuracy: Double?
    /// Held-out sampled accuracy at the end.
    public var sampledAccuracy: Double?
    /// Entropy of π_θ at the visited positions, mean over the last 10 % of steps.
    public var finalEntropy: Double
    /// Standard deviation of the batch reward over the second half of the steps.
    public var rewardSD: Double
    /// The tracker's relative error of this run's own form to ∇KL(π_θ‖π_ref), position-weighted
    /// over every observation and lag (nil for no KL or when not measured).
    public var trackerBias: Double?
    /// Its cosine, pooled the same way.
    public var trackerCosine: Double?
    /// The parameter-space relative error of the run's form (nil unless measured).
    public var parameterBias: Double?
    /// Wall time of the run (0 when derived from a folder).
    public var seconds: Double = 0

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case form, lag, seed, steps, beta
        case finalKL = "final_kl"
        case klTrajectory = "kl_trajectory"
        case greedyAccuracy = "greedy_accuracy"
        case sampledAccuracy = "sampled_accuracy"
        case finalEntropy = "final_entropy"
        case rewardSD = "reward_sd"
        case trackerBias = "tracker_bias"
        case trackerCosine = "tracker_cosine"
        case parameterBias = "parameter_bias"
        case seconds
    }

    /// The record of a loaded run folder.
    public init(run: RunReport, form: String, lag: Int, seed: Int) throws(ReportError) {
        guard !run.curves.isEmpty else { throw .runFolder("\(run.path): no training steps") }
        self.form = form
        self.lag = lag
        self.seed = seed
        steps = run.steps
        beta = run.settings["beta"].flatMap(Double.init) ?? .nan
        finalKL = HTML.tail(run.curves.map(\.exactKL)) ?? .nan
        let every = max(1, (run.curves.count + 59) / 60)
        klTrajectory = run.curves.enumerated().filter { i, _ in (run.curves.count - 1 - i) % every == 0 }
            .map { [Double($0.element.step), $0.element.exactKL] }
        greedyAccuracy = run.greedyEnd
        sampledAccuracy = run.sampledEnd
        finalEntropy = HTML.tail(run.curves.map(\.entropy)) ?? .nan
        rewardSD = Statistics.standardDeviation(
            run.curves.suffix(max(2, run.curves.count / 2)).map(\.reward).filter(\.isFinite))
        let own = run.bias.filter { $0.implementation == form }
        let positions = Double(own.reduce(0) { $0 + $1.positions })
        if positions > 0 {
            trackerBias = own.reduce(0) { $0 + Double($1.positions) * $1.relativeError } / positions
            trackerCosine = own.reduce(0) { $0 + Double($1.positions) * $1.cosine } / positions
        }
        parameterBias = run.parameterBias.first { $0.implementation == form }?.relativeError
    }

    /// The form id of a run's settings: `no_kl` for β = 0, else the first catalogued
    /// `KLImplementation` with the same estimator, placement, ratio, ratio gradient, level and
    /// correction (nil when none matches).
    public static func formID(settings: [String: String]) -> String? {
        if settings["beta"].flatMap(Double.init) == 0 { return "no_kl" }
        return KLImplementation.catalog.first { implementation in
            let c = implementation.configuration
            return settings["estimator"] == c.estimator.rawValue
                && settings["placement"] == c.placement.rawValue
                && settings["ratio"] == c.ratio.rawValue && settings["ratio_grad"] == c.ratioGradient.rawValue
                && settings["level"] == c.level.rawValue && settings["correction"] == c.correction.rawValue
        }?.id
    }

    /// The record of a run folder, if it is a finished outcome run (form, lag and seed known, an
    /// end evaluation present); its lag is `inject_lag` (token versions).
    public static func derive(from run: RunReport) -> OutcomeRecord? {
        guard run.greedyEnd != nil, let form = formID(settings: run.settings),
            let lag = run.settings["inject_lag"].flatMap(Int.init),
            let seed = run.settings["seed"].flatMap(Int.init)
        else { return nil }
        return try? OutcomeRecord(run: run, form: form, lag: lag, seed: seed)
    }

    /// Writes the record as JSON, atomically.
    public func write(to path: String) throws(ReportError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .unwritable(path: path, reason: "\(error)")
        }
    }

    /// Decodes a record file (a newer schema version is an error).
    public static func decode(_ data: Data) throws -> OutcomeRecord {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let record = try decoder.decode(OutcomeRecord.self, from: data)
        guard record.schemaVersion <= currentSchemaVersion else {
            throw ReportError.unreadable(
                path: "outcome record",
                reason: "schema version \(record.schemaVersion) is newer than this build's")
        }
        return record
    }
}
