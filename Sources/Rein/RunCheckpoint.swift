import Foundation
import Logging
import ReinModel

/// Which reference policy a run trains against: where it came from, its size and the FNV-1a 64
/// checksum of its values. A checkpoint resumes only against the same reference.
public struct ReferenceIdentity: Codable, Sendable, Hashable, CustomStringConvertible {
    /// `train.reference` (or a note saying where the weights came from).
    public var source: String
    /// Number of parameters.
    public var parameters: Int
    /// FNV-1a 64 of the parameter values' bytes, as hex.
    public var fnv1a64: String

    /// The identity of `reference`, loaded from `source`.
    public init(_ reference: GPTParameters, source: String) {
        self.source = source
        parameters = reference.values.count
        fnv1a64 = FNV1a64.hex(FNV1a64.hash(reference.values))
    }

    public var description: String { "\(source) (\(parameters) parameters, fnv1a64 \(fnv1a64))" }
}

/// A run's loop and accounting state, as `state.json` of its checkpoint (every launch mode).
///
/// The learner has no random state of its own: batch `s` is a function of (seed, `s`, weights),
/// and the learner step's minibatch shuffle is seeded by the policy version. So the version, the
/// next batch index (``consumed``), the assignment attempts and the weights are what an exact
/// continuation needs.
///
/// Reads every `state.json` written before: the distributed learner's (the same fields) and the
/// single-process trainer's (`step`, `version`, `ring`, `ledger`; no reference recorded).
public struct LearnerState: Codable, Sendable {
    /// The policy version (optimizer steps) after the last trained batch.
    public var version: Int
    /// Batches trained or dropped: the next batch index to train.
    public var consumed: Int
    /// How often each batch index at or after ``consumed`` was assigned (sample ids stay unique
    /// across reassignments).
    public var attempts: [Int: Int]
    /// The sample ledger when the checkpoint was taken (samples in flight then count lost on resume).
    public var ledger: SampleLedger
    /// Metrics of every batch consumed so far, in checkpoints written before metrics were
    /// streamed to `metrics.jsonl`; empty in newer ones (the run folder's file holds them).
    public var metrics: [StepMetrics]
    /// The versions of the lag-injection ring (their weights are `ring-i.safetensors`).
    public var ring: [Int]
    /// The incarnation that wrote the checkpoint (the distributed learner's node id; 0 for the
    /// single-process trainer).
    public var incarnation: UInt64
    /// The reference the run trains against (`nil` in single-process checkpoints written before it
    /// was recorded: those resume against any reference of the same size).
    public var reference: ReferenceIdentity?

    /// The state of a run whose machine gave `snapshot`.
    public init(_ snapshot: RunSnapshot, metrics: [StepMetrics], reference: ReferenceIdentity) {
        version = snapshot.version
        consumed = snapshot.consumed
        attempts = snapshot.attempts
        ledger = snapshot.ledger
        self.metrics = metrics
        ring = snapshot.ring
        incarnation = snapshot.incarnation
        self.reference = reference
    }

    /// What the run's ``RunStateMachine`` restarts from.
    public var snapshot: RunSnapshot {
        RunSnapshot(
            version: version, consumed: consumed, attempts: attempts, ledger: ledger, ring: ring,
            incarnation: incarnation)
    }

    /// Throws ``CheckpointError`` unless the state was trained against `reference` (when it says).
    public func check(reference identity: ReferenceIdentity) throws(CheckpointError) {
        guard let reference else { return }
        guard reference.parameters == identity.parameters, reference.fnv1a64 == identity.fnv1a64 else {
            throw CheckpointError(
                "the checkpoint was trained against reference \(reference), this run has \(identity)")
        }
    }

    private enum CodingKeys: String, CodingKey {
        case version, consumed, step, attempts, ledger, metrics, ring, incarnation, reference
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        consumed = try c.decodeIfPresent(Int.self, forKey: .consumed) ?? c.decode(Int.self, forKey: .step)
        attempts = try c.decodeIfPresent([Int: Int].self, forKey: .attempts) ?? [:]
        ledger = try c.decode(SampleLedger.self, forKey: .ledger)
        metrics = try c.decodeIfPresent([StepMetrics].self, forKey: .metrics) ?? []
        ring = try c.decode([Int].self, forKey: .ring)
        incarnation = try c.decodeIfPresent(UInt64.self, forKey: .incarnation) ?? 0
        reference = try c.decodeIfPresent(ReferenceIdentity.self, forKey: .reference)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(consumed, forKey: .consumed)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(ledger, forKey: .ledger)
        try c.encode(metrics, forKey: .metrics)
        try c.encode(ring, forKey: .ring)
        try c.encode(incarnation, forKey: .incarnation)
        try c.encodeIfPresent(reference, forKey: .reference)
    }
}

/// A run's checkpoint, the same in every launch mode: the policy, the optimizer state, the
/// lag-injection ring and ``LearnerState``, stored by ``CheckpointStore`` (checksummed files,
/// atomic rename, `checkpoint.prev/` kept). A single-process run's checkpoint resumes a
/// distributed run and the other way round.
public struct LearnerCheckpoint: Sendable {
    /// The ``CheckpointStore`` kind of run checkpoints (checkpoints of the kinds written before,
    /// `distributed learner` and `single-process trainer`, load as this kind).
    public static let kind = "run"

    /// Loop and accounting state.
    public var state: LearnerState
    /// The policy at ``LearnerState/version``.
    public var policy: GPTParameters
    /// The AdamW state.
    public var optimizer: SafeTensors
    /// The lag-injection ring's weights, in the order of ``LearnerState/ring``.
    public var ring: [GPTParameters]

    /// A checkpoint of these parts.
    public init(state: LearnerState, policy: GPTParameters, optimizer: SafeTensors, ring: [GPTParameters]) {
        self.state = state
        self.policy = policy
        self.optimizer = optimizer
        self.ring = ring
    }

    /// Writes the checkpoint into `folder` (`checkpoint/`, the previous one kept as `checkpoint.prev/`),
    /// with `metadata` (for example the tokenizer and task) in the policy file besides its version.
    public func save(to folder: RunFolder, metadata: [String: String] = [:]) throws {
        let policyMetadata = metadata.merging([Checkpoint.policyVersionKey: "\(state.version)"]) { $1 }
        // Each file is encoded while it is written, one at a time: never the whole checkpoint's
        // bytes in memory (at d_model 128 that was ~75 MB on top of the learner's steady state).
        var files: [CheckpointStore.File] = [
            .init("state.json", data: try RunCoding.encoder().encode(state)),
            .init("policy.safetensors") {
                try Checkpoint.encode(policy, metadata: policyMetadata).write(to: $0)
            },
            .init("optimizer.safetensors") { try optimizer.write(to: $0) },
        ]
        for (i, (version, parameters)) in zip(state.ring, ring).enumerated() {
            files.append(
                .init("ring-\(i).safetensors") {
                    try Checkpoint.encode(parameters, metadata: [Checkpoint.policyVersionKey: "\(version)"])
                        .write(to: $0)
                })
        }
        try CheckpointStore(folder: folder).save(streaming: files, kind: Self.kind)
    }

    /// The newest usable run checkpoint in `folder`, or `nil` if it has none.
    /// - Throws: ``CheckpointError`` if checkpoints exist but none is usable (both corrupted), one
    ///   of another kind is there, or its files do not decode.
    public static func load(from folder: RunFolder, logger: Logger) throws(CheckpointError)
        -> LearnerCheckpoint?
    {
        guard let stored = try CheckpointStore(folder: folder).load(kind: kind, logger: logger) else {
            return nil
        }
        return try decode(stored)
    }

    /// The checkpoint in `stored`.
    /// - Throws: ``CheckpointError`` if its files do not decode (naming the directory and the cause).
    public static func decode(_ stored: StoredCheckpoint) throws(CheckpointError) -> LearnerCheckpoint {
        do {
            let state = try RunCoding.decoder().decode(LearnerState.self, from: try stored.data("state.json"))
            func parameters(_ name: String) throws -> GPTParameters {
                let path = stored.directory + "/" + name
                return try Checkpoint.decode(
                    try SafeTensors.parse(Array(try stored.data(name)), path: path), path: path
                ).parameters
            }
            return LearnerCheckpoint(
                state: state, policy: try parameters("policy.safetensors"),
                optimizer: try SafeTensors.parse(
                    Array(try stored.data("optimizer.safetensors")),
                    path: stored.directory + "/optimizer.safetensors"),
                ring: try state.ring.indices.map { try parameters("ring-\($0).safetensors") })
        } catch {
            throw CheckpointError("checkpoint \(stored.directory) does not decode: \(error)")
        }
    }
}
