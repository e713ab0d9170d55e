import ReinModel
import ReinTasks
import ReinTestKit
import Testing

@testable import Rein

/// Per-token versions (partial rollouts) in the pure parts: the audit's token-version rule, the
/// lag definitions, and the run state machine taking, refusing and checkpointing mixed batches.
@Suite("Partial rollouts: token versions, lags, the machine")
struct PartialRolloutRuleTests {
    @Test func withoutPartialRolloutsEveryTokenCarriesTheAssignedVersion() {
        let rule = TokenVersionRule(assigned: 3)
        #expect(rule.violation([3, 3, 3]) == nil)
        #expect(rule.violation([]) == nil)
        #expect(rule.violation([3, 4]) == .notAssigned(4, at: 1, assigned: 3))
        #expect(rule.violation([4, 4]) == .firstNotAssigned(4, assigned: 3))
    }

    @Test func withPartialRolloutsVersionsRiseFromTheAssignedOneToTheLearners() {
        let rule = TokenVersionRule(assigned: 3, partialRollouts: true, learner: 6, kept: [3, 4, 6])
        #expect(rule.violation([3, 3, 4, 6, 6]) == nil)
        #expect(rule.violation([3]) == nil)
        #expect(rule.violation([4, 6]) == .firstNotAssigned(4, assigned: 3))
        #expect(rule.violation([3, 6, 4]) == .decreasing(4, at: 2, after: 6))
        #expect(rule.violation([3, 7]) == .newerThanLearner(7, at: 1, learner: 6))
        #expect(rule.violation([3, 5]) == .unknown(5, at: 1))
        for violation in [TokenVersionViolation.decreasing(4, at: 2, after: 6), .unknown(5, at: 1)] {
            #expect(violation.reason == .forgedContents)
            #expect(!violation.description.isEmpty)
        }
    }

    @Test func lagsAreTokenWeightedSequenceWeightedAndSpanned() {
        func rollout(_ versions: [Int]) -> Rollout {
            Rollout(
                id: 0, group: 0, prompt: [1], completion: versions.map { _ in 2 },
                behaviourLogProbs: versions.map { _ in 0 }, versions: versions, reward: 1, outcome: .correct)
        }
        let batch = RolloutBatch(
            rollouts: [rollout([2, 2, 3]), rollout([2]), rollout([2, 4])], groupSize: 1)
        let lag = BatchLag(batch, assigned: 2, learner: 5)
        #expect(lag.tokenMean == 15.0 / 6)
        #expect(lag.sequenceMean == 3 && lag.max == 3 && lag.spanMax == 2)
        #expect(Lag.token(4, learner: 5) == 1)
        #expect(Lag.sequence([2, 4], assigned: 2, learner: 5) == 3)
        #expect(Lag.sequence([], assigned: 2, learner: 5) == 3)
        #expect(Lag.span([2, 2, 3]) == 1 && Lag.span([]) == 0)
        // One version per batch: every lag is the batch's.
        let uniform = BatchLag(
            RolloutBatch(rollouts: [rollout([2, 2])], groupSize: 1), assigned: 2, learner: 5)
        #expect(uniform.tokenMean == 3 && uniform.sequenceMean == 3 && uniform.spanMax == 0)
    }

    /// A machine with two batches out at version 0 and the first one trained (version 1): the
    /// second one's worker could have moved to version 1 mid-batch.
    func secondBatchOut(partial: Bool) -> (Machine, Machine.Assignment) {
        var machine = Machine(
            settings: .init(steps: 3, batchSize: 2, maxStaleness: 2, injectLag: 0, partialRollouts: partial),
            incarnation: 1)
        guard case .sample(let a0) = machine.requestWork(worker: 0, now: .zero),
            case .sample(let a1) = machine.requestWork(worker: 1, now: .zero)
        else { fatalError("no work") }
        #expect(a0.version == 0 && a1.version == 0)
        _ = machine.deliver(
            worker: 0, index: 0, attempt: 0, token: a0.token, incarnation: 1,
            batch: batch(count: 2, version: 0),
            now: .seconds(1))
        guard case .train(let order) = machine.nextBatch() else { fatalError("nothing to train") }
        _ = machine.trained(order, learner: learned, version: 1)
        return (machine, a1)
    }

    func mixed(_ versions: [Int]) -> RolloutBatch {
        let rollout = Rollout(
            id: 0, group: 0, prompt: [1], completion: versions.map { _ in 2 },
            behaviourLogProbs: versions.map { _ in 0 }, versions: versions, reward: 1, outcome: .correct)
        return RolloutBatch(rollouts: [rollout, rollout], groupSize: 1)
    }

    @Test func aMixedVersionBatchTrainsWithItsTokenLags() throws {
        var (machine, a1) = secondBatchOut(partial: true)
        #expect(
            machine.deliver(
                worker: 1, index: 1, attempt: 0, token: a1.token, incarnation: 1, batch: mixed([0, 1, 1]),
                now: .seconds(2)) == .accepted)
        guard case .train(let order) = machine.nextBatch() else {
            Issue.record("nothing to train")
            return
        }
        #expect(order.lag == 1 && order.sampledBy == 0)
        let metrics = machine.trained(order, learner: learned, version: 2)
        #expect(metrics.lagMean == 1.0 / 3 && metrics.lagMax == 1 && metrics.versionSpanMax == 1)
        #expect(machine.ledger.trained == 4)
        try machine.ledger.check(final: false)
    }

    @Test func mixedVersionsOutsideTheRuleAreNotTaken() {
        // Partial rollouts off: a mixed batch is not what was assigned.
        var (off, b1) = secondBatchOut(partial: false)
        guard
            case .invalid(let why) = off.deliver(
                worker: 1, index: 1, attempt: 0, token: b1.token, incarnation: 1, batch: mixed([0, 1]),
                now: .seconds(2))
        else {
            Issue.record("a mixed batch was taken without partial rollouts")
            return
        }
        #expect(why.contains("partial rollouts are off"))
        // On, but a token newer than the learner, or going back: not taken either.
        for versions in [[0, 2], [0, 1, 0], [1, 1]] {
            var (on, a1) = secondBatchOut(partial: true)
            guard
                case .invalid = on.deliver(
                    worker: 1, index: 1, attempt: 0, token: a1.token, incarnation: 1, batch: mixed(versions),
                    now: .seconds(2))
            else {
                Issue.record("\(versions) was taken")
                continue
            }
        }
    }

    @Test func theCheckpointKeepsOnlyTheVersionsARestartCanUse() throws {
        var (machine, a1) = secondBatchOut(partial: true)
        // Version 0 is kept for the batch in flight, but a restart loses that batch: not stored.
        #expect(machine.keptVersions == [0, 1])
        let snapshot = machine.snapshot()
        #expect(snapshot.ring == [1])
        var restored = Machine(settings: machine.settings, restoring: snapshot, incarnation: 2)
        #expect(restored.keptVersions == [1])
        #expect(restored.ledger.lost == 2 && restored.ledger.inFlight == 0)
        // The sequence that spans the restart is refused, counted, never trained.
        #expect(
            restored.deliver(
                worker: 1, index: 1, attempt: 0, token: a1.token, incarnation: 1, batch: mixed([0, 1]),
                now: .seconds(3)) == .refused(.previousLearner))
        #expect(restored.nextBatch() == nil)
        try restored.ledger.check(final: false)
        // The old machine still takes it (same incarnation).
        #expect(
            machine.deliver(
                worker: 1, index: 1, attempt: 0, token: a1.token, incarnation: 1, batch: mixed([0, 1]),
                now: .seconds(3)) == .accepted)
        // With injected lag the ring keeps what lag injection samples with.
        var lagged = Machine(
            settings: .init(steps: 6, batchSize: 1, maxStaleness: 3, injectLag: 2, partialRollouts: true),
            incarnation: 1)
        for _ in 0..<4 {
            guard case .sample(let a) = lagged.requestWork(worker: 0, now: .zero) else { break }
            _ = lagged.deliver(
                worker: 0, index: a.index, attempt: a.attempt, token: a.token, incarnation: 1,
                batch: batch(count: 1, version: a.version), now: .zero)
            while case .train(let order) = lagged.nextBatch() {
                _ = lagged.trained(order, learner: learned, version: lagged.version + 1)
            }
        }
        #expect(lagged.snapshot().ring == lagged.keptVersions.filter { $0 >= lagged.version - 2 })
    }

    @Test func theAuditTakesAnHonestMixedBatchUnderTheRuleOnly() throws {
        let fixture = try AuditFixture()
        let newer = try GPTParameters(config: fixture.policy.config, seed: 8)
        let index = 2
        let batch = try fixture.sampler.sample(
            Trainer.problems(forStep: index, config: fixture.config, dataset: fixture.dataset),
            groupSize: fixture.config.train.groupSize, parameters: fixture.policy, version: 3,
            seed: Trainer.samplingSeed(forStep: index, seed: fixture.config.seed),
            firstID: Rollout.firstID(index: index, attempt: 0),
            weights: ScheduledWeights([(from: 0, weights: VersionedParameters(version: 4, parameters: newer))]
            ))
        #expect(batch.rollouts.contains { Lag.span($0.versions) == 1 })
        let partial = TokenVersionRule(assigned: 3, partialRollouts: true, learner: 4, kept: [3, 4])
        #expect(fixture.audit.check(batch, index: index, attempt: 0, versions: partial) == nil)
        #expect(fixture.audit.check(batch, index: index, attempt: 0, version: 3) == .forgedContents)
        let behind = TokenVersionRule(assigned: 3, partialRollouts: true, learner: 3, kept: [3])
        #expect(fixture.audit.check(batch, index: index, attempt: 0, versions: behind) == .forgedContents)
        #expect(
            fixture.audit.problem(with: batch, index: index, attempt: 0, versions: behind)?.contains(
                "newer than the learner's 3") == true)
    }
}
