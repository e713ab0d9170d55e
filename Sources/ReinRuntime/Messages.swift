import Rein

/// The weights a worker samples with, and their policy version.
public struct PolicyWeights: Codable, Sendable, Hashable {
    /// The learner's policy version (optimizer updates so far).
    public var version: Int
    /// The flat parameter values (`GPTParameters.values`).
    public var values: [Float]

    /// Weights `values` at `version`.
    public init(version: Int, values: [Float]) {
        self.version = version
        self.values = values
    }
}

/// The learner's answer to a worker asking for work.
public struct WorkOrder: Codable, Sendable, Hashable {
    /// What the worker should do.
    public enum Status: String, Codable, Sendable {
        /// Sample batch ``WorkOrder/index`` with policy ``WorkOrder/version``.
        case sample
        /// Too far ahead of the learner (`max_staleness`): ask again shortly.
        case wait
        /// The run is over: stop.
        case finished
    }

    /// What the worker should do.
    public var status: Status
    /// The batch index (step) to sample: it fixes the prompts, the seed and the sample ids.
    public var index: Int
    /// How many times this index was assigned before (its earlier batches were lost).
    public var attempt: Int
    /// The policy version to sample with.
    public var version: Int
    /// New weights, when the worker's are older than ``version``.
    public var weights: PolicyWeights?
    /// The incarnation of the learner that made the assignment (``LearnerActor/incarnation``);
    /// the worker hands it back with the batch.
    public var incarnation: UInt64
    /// The assignment's capability: only the worker this order was sent to knows it, and a batch
    /// is taken only with it (``Rein/AssignmentToken``).
    public var token: AssignmentToken

    /// An order with every field given.
    public init(
        status: Status, index: Int = 0, attempt: Int = 0, version: Int = 0, weights: PolicyWeights? = nil,
        incarnation: UInt64 = 0, token: AssignmentToken = .none
    ) {
        self.token = token
        self.incarnation = incarnation
        self.status = status
        self.index = index
        self.attempt = attempt
        self.version = version
        self.weights = weights
    }

    /// The first sample id of batch `index`, attempt `attempt` (step `s` of the single-process
    /// trainer uses `s << 20`, which attempt 0 matches).
    public static func firstID(index: Int, attempt: Int) -> UInt64 {
        Rollout.firstID(index: index, attempt: attempt)
    }
}

/// The learner's answer to a joining worker.
public struct JoinReply: Codable, Sendable, Hashable {
    /// The current weights.
    public var weights: PolicyWeights
    /// Where new versions are broadcast (a ``BulkPublisher``), if they are.
    public var broadcast: String?
    /// How many recent versions a worker should keep (lag injection samples with older ones).
    public var keepVersions: Int
    /// Where to push sample batches (a ``SampleSource``), if the learner takes them on a stream.
    public var samples: String?
    /// π_ref's weights (version 0), for the worker to score the reference on every batch it samples
    /// (the learner then skips its own reference forward); nil: the learner scores it.
    public var reference: PolicyWeights?
    /// The run's configuration as JSON (``Rein/RunCoding``: snake_case keys, as in the YAML
    /// file), so that a worker needs only the learner's address: workers not built from this
    /// package read the task, model shape and sampler settings from it. `rein worker` uses its own
    /// `--config` (the same file as the learner's).
    public var config: String?

    /// A reply with every field given.
    public init(
        weights: PolicyWeights, broadcast: String?, keepVersions: Int, samples: String? = nil,
        reference: PolicyWeights? = nil, config: String? = nil
    ) {
        self.config = config
        self.reference = reference
        self.samples = samples
        self.weights = weights
        self.broadcast = broadcast
        self.keepVersions = keepVersions
    }
}

/// The batches and samples the learner trained from one rollout worker.
public struct WorkerContribution: Codable, Sendable, Hashable {
    /// The worker's node (`node:0123456789abcdef`).
    public var node: String
    /// The name it gave in its handshake (not authenticated).
    public var name: String
    /// Batches trained from it.
    public var batches: Int
    /// Samples (rollouts) trained from it.
    public var samples: Int

    /// A worker's record.
    public init(node: String, name: String, batches: Int = 0, samples: Int = 0) {
        self.node = node
        self.name = name
        self.batches = batches
        self.samples = samples
    }
}

/// `workers.json`: what the learner trained from each worker that joined, by name.
public struct WorkerContributions: Codable, Sendable, Hashable {
    /// One record per worker node, sorted by name then node.
    public var workers: [WorkerContribution]

    /// The records `workers`.
    public init(workers: [WorkerContribution]) { self.workers = workers }
}

/// How busy the learner was: time in learner steps against the wall time of the run.
public struct LearnerUtilisation: Codable, Sendable, Hashable {
    /// Seconds spent in learner steps.
    public var busySeconds: Double
    /// Seconds from the first worker joining to the last batch trained or dropped.
    public var wallSeconds: Double
    /// CPU seconds of the learner-step threads (the rest of the learner process's CPU is the cost
    /// of serving workers: calls, heartbeats, admission, audits, decoding, the broadcast).
    public var stepCPUSeconds: Double

    /// Utilisation from its times.
    public init(busySeconds: Double, wallSeconds: Double, stepCPUSeconds: Double = 0) {
        self.busySeconds = busySeconds
        self.wallSeconds = wallSeconds
        self.stepCPUSeconds = stepCPUSeconds
    }

    /// busy / wall (0 before any work).
    public var busyFraction: Double { wallSeconds > 0 ? busySeconds / wallSeconds : 0 }
}
