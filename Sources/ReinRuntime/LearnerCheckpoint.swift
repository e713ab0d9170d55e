import Foundation
import Logging
import Rein
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

/// The learner's loop and accounting state, as `state.json` of its checkpoint.
///
/// The learner has no random state of its own: batch `s` is a function of (seed, `s`, weights),
/// and the learner step's minibatch shuffle is seeded by the policy version. So the version, the
/// next batch index (``consumed``), the assignment attempts and the weights are what an exact
/// continuation needs.
public struct LearnerState: Codable, Sendable {
    /// The policy version (optimizer steps) after the last trained batch.
    public var version: Int
    /// Batches trained or dropped: the next batch index to train.
    public var consumed: Int
    /// How often each batch index at or after ``consumed`` was assigned (sample ids stay unique
    /// across reassignments).
    public var attempts: [Int: Int]
    /// The sample ledger when the checkpoint was taken (samples in flight then count lost on resume).
    public var ledger: RuntimeLedger
    /// Metrics of every batch consumed so far, in checkpoints written before metrics were
    /// streamed to `metrics.jsonl`; empty in newer ones (the run folder's file holds them).
    public var metrics: [StepMetrics]
    /// The versions of the lag-injection ring (their weights are `ring-i.safetensors`).
    public var ring: [Int]
    /// The learner incarnation (its node id) that wrote the checkpoint.
    public var incarnation: UInt64
    /// The reference the run trains against.
    public var reference: ReferenceIdentity
}

/// A distributed learner's checkpoint: the policy, the optimizer state, the lag-injection ring and
/// ``LearnerState``, stored by ``Rein/CheckpointStore`` (checksummed files, atomic rename,
/// `checkpoint.prev/` kept).
public struct LearnerCheckpoint: Sendable {
    /// The ``Rein/CheckpointStore`` kind of learner checkpoints.
    public static let kind = "distributed learner"

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

    /// Writes the checkpoint into `folder` (`checkpoint/`, the previous one kept as `checkpoint.prev/`).
    public func save(to folder: RunFolder) throws {
        var files: [String: Data] = [
            "state.json": try RunCoding.encoder().encode(state),
            "policy.safetensors": Data(
                Checkpoint.encode(policy, metadata: [Checkpoint.policyVersionKey: "\(state.version)"])
                    .serialized()),
            "optimizer.safetensors": Data(optimizer.serialized()),
        ]
        for (i, (version, parameters)) in zip(state.ring, ring).enumerated() {
            files["ring-\(i).safetensors"] = Data(
                Checkpoint.encode(parameters, metadata: [Checkpoint.policyVersionKey: "\(version)"])
                    .serialized())
        }
        try CheckpointStore(folder: folder).save(files, kind: Self.kind)
    }

    /// The newest usable learner checkpoint in `folder`, or `nil` if it has none.
    /// - Throws: ``Rein/CheckpointError`` if checkpoints exist but none is usable (both corrupted),
    ///   or one of another kind is there; ``RuntimeError`` if its files do not decode.
    public static func load(from folder: RunFolder, logger: Logger) throws -> LearnerCheckpoint? {
        guard let stored = try CheckpointStore(folder: folder).load(kind: kind, logger: logger) else {
            return nil
        }
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
            throw RuntimeError("checkpoint \(stored.directory) does not decode: \(error)")
        }
    }
}
