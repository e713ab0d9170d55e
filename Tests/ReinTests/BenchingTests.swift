import Foundation
import ReinTestKit
import Testing

@testable import Rein

@Suite("Run state machine: benching and the contents audit")
struct BenchingTests {
    static let lease = Machine.LeasePolicy(floor: .seconds(2), cap: .seconds(9), factor: 2, window: 4)

    func machine(steps: Int = 4) -> Machine {
        Machine(
            settings: .init(steps: steps, batchSize: 2, maxStaleness: 2, injectLag: 0, lease: Self.lease),
            incarnation: 1)
    }

    func assignment(_ decision: Machine.WorkDecision) -> Machine.Assignment? {
        guard case .sample(let a) = decision else { return nil }
        return a
    }

    @Test func aWorkerThatLetsALeaseExpireGetsNothingUntilItDeliversThatBatch() throws {
        var m = machine()
        let first = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        #expect(m.expireLeases(now: .seconds(2)).count == 1)
        #expect(m.isBenched(0) && !m.isBenched(1))
        // Benched: nothing, however often it asks; another worker takes the batch again.
        #expect(m.requestWork(worker: 0, now: .seconds(3)) == .wait)
        #expect(m.requestWork(worker: 0, now: .seconds(4)) == .wait)
        let again = try #require(assignment(m.requestWork(worker: 1, now: .seconds(3))))
        #expect(again.index == 0 && again.attempt == 1)
        // Losing it or rejoining under the same identity does not lift the bench.
        _ = m.workerLost(0)
        #expect(m.isBenched(0) && m.requestWork(worker: 0, now: .seconds(5)) == .wait)
        // Neither does a forgery of the late batch (no token).
        #expect(
            m.deliver(
                worker: 0, index: 0, attempt: 0, token: .none, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(6)) == .refused(.wrongToken))
        #expect(m.isBenched(0))
        // Its own late batch: refused (never trained twice), and it is back.
        #expect(
            m.deliver(
                worker: 0, index: 0, attempt: 0, token: first.token, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(7)) == .refused(.leaseExpired))
        #expect(!m.isBenched(0))
        let next = try #require(assignment(m.requestWork(worker: 0, now: .seconds(7))))
        #expect(next.index == 1)
        #expect(m.ledger.balances && m.ledger.leasesExpired == 1)
    }

    @Test func aWorkerOwingTwoLateBatchesMustDeliverBoth() throws {
        var m = machine()
        let a = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        let b = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        #expect(m.expireLeases(now: .seconds(2)).count == 2)
        for (order, benchedAfter) in [(b, true), (a, false)] {
            #expect(
                m.deliver(
                    worker: 0, index: order.index, attempt: order.attempt, token: order.token, incarnation: 1,
                    batch: batch(count: 2, version: 0), now: .seconds(3)) == .refused(.leaseExpired))
            #expect(m.isBenched(0) == benchedAfter)
        }
    }

    @Test func aSilentWorkerStallsTheRunForOneLeaseOnly() throws {
        // Worker 0 takes whatever it is given and never delivers; worker 1 is honest.
        var m = machine(steps: 20)
        var now = Duration.zero
        var rounds = 0
        var expiries: Set<Duration> = []  // when leases expired
        var takenAfterExpiry = 0  // batches worker 0 got after its first lease expired
        while !m.isFinished, rounds < 200 {
            rounds += 1
            if case .sample = m.requestWork(worker: 0, now: now), !expiries.isEmpty { takenAfterExpiry += 1 }
            if case .sample(let a) = m.requestWork(worker: 1, now: now) {
                now += .seconds(1)
                _ = m.deliver(
                    worker: 1, index: a.index, attempt: a.attempt, token: a.token, incarnation: 1,
                    batch: batch(count: 2, version: a.version), now: now)
            } else {
                now += .seconds(1)
            }
            if !m.expireLeases(now: now).isEmpty { expiries.insert(now) }
            while case .train(let order) = m.nextBatch() {
                _ = m.trained(order, learner: learned, version: m.version + 1)
            }
        }
        #expect(m.isFinished && m.ledger.balances)
        // Only what it took before its first lease expired is lost (those leases all end within
        // one lease of each other): one stall, then nothing.
        #expect(takenAfterExpiry == 0)
        let first = try #require(expiries.min())
        let last = try #require(expiries.max())
        #expect(last - first < Self.lease.floor, "\(expiries)")
        #expect(m.ledger.leasesExpired >= 1 && m.ledger.leasesExpired <= 1 + m.settings.aheadLimit)
        #expect(m.isBenched(0) && !m.isBenched(1))
        // At the end even a benched worker is told the run is over.
        #expect(m.requestWork(worker: 0, now: now) == .finished)
    }

    @Test func aRestartedLearnerBenchesNoOne() throws {
        var m = machine()
        _ = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        _ = m.expireLeases(now: .seconds(2))
        #expect(m.isBenched(0))
        var restarted = Machine(settings: m.settings, restoring: m.snapshot(), incarnation: 2)
        #expect(!restarted.isBenched(0))
        #expect(assignment(restarted.requestWork(worker: 0, now: .zero)) != nil)
    }

    @Test func forgedContentsBenchTheirWorkerForGoodAndWhatItHeldGoesOutAtOnce() throws {
        let config = try TestKit.tinyConfig(maxStaleness: 1)
        let audit = try BatchAudit(config: config)
        let size = config.train.promptsPerStep * config.train.groupSize
        var m = Machine(settings: .init(config.train, lease: Self.lease), incarnation: 1)
        // Worker 0 holds two batches.
        let first = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        let second = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        let honest = { (order: Machine.Assignment) in
            correctBatch(
                audit, config: config, index: order.index, attempt: order.attempt, version: order.version)
        }
        let deliver = { (m: inout Machine, worker: Int, order: Machine.Assignment, batch: RolloutBatch) in
            m.deliver(
                worker: worker, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: 1,
                batch: batch, now: .seconds(1), audit: audit)
        }
        var forged = honest(first)
        forged.rollouts[0].reward = 0.5
        // Without the audit the machine would have taken it (the audit is what refuses it).
        var unaudited = m
        #expect(
            unaudited.deliver(
                worker: 0, index: first.index, attempt: first.attempt, token: first.token, incarnation: 1,
                batch: forged, now: .seconds(1)) == .accepted)
        // A token-less forgery is refused for its token first, and benches no one.
        var tokenless = first
        tokenless.token = .none
        #expect(deliver(&m, 0, tokenless, forged) == .refused(.wrongToken))
        #expect(!m.isBenched(0) && m.expects(worker: 0, index: first.index, attempt: first.attempt))

        #expect(deliver(&m, 0, first, forged) == .refused(.forgedContents))
        // Both batches it held are given up at once (no lease to wait out) and go out again.
        #expect(m.hasForged(0) && m.isBenched(0) && !m.hasForged(1))
        #expect(m.assignments.isEmpty && m.nextLeaseDeadline == nil)
        #expect(m.ledger.refused == [.wrongToken: size, .forgedContents: size] && m.ledger.lost == 2 * size)
        #expect(m.ledger.inFlight == 0 && m.ledger.leasesExpired == 0 && m.ledger.balances)
        let again = try #require(assignment(m.requestWork(worker: 1, now: .seconds(1))))
        let againSecond = try #require(assignment(m.requestWork(worker: 1, now: .seconds(1))))
        #expect(again.index == first.index && againSecond.index == second.index)
        #expect(again.attempt == 1 && againSecond.attempt == 1)
        // Benched for good: its requests are refused, also after it is lost and rejoins.
        #expect(m.requestWork(worker: 0, now: .seconds(2)) == .refused(.forgedContents))
        _ = m.workerLost(0)
        #expect(m.requestWork(worker: 0, now: .seconds(3)) == .refused(.forgedContents))
        // Nothing it delivers is taken, honest or not: counted as forged contents.
        #expect(deliver(&m, 0, second, honest(second)) == .refused(.forgedContents))
        #expect(deliver(&m, 0, first, honest(first)) == .refused(.forgedContents))
        #expect(m.ledger.refused[.forgedContents] == 3 * size && m.ledger.balances)
        // The honest worker's batches are taken and the run goes on.
        #expect(deliver(&m, 1, again, honest(again)) == .accepted)
        #expect(deliver(&m, 1, againSecond, honest(againSecond)) == .accepted)
        guard case .train(let order) = m.nextBatch() else {
            Issue.record("the honest batch does not train")
            return
        }
        #expect(order.index == first.index)
        _ = m.trained(order, learner: learned, version: 1)
        #expect(m.ledger.trained == size && m.ledger.balances)
        // At the end even a forger is told the run is over.
        var ended = m
        _ = ended.drain()
        while case .train(let order) = ended.nextBatch() {
            _ = ended.trained(order, learner: learned, version: ended.version + 1)
        }
        #expect(ended.isFinished && ended.requestWork(worker: 0, now: .seconds(4)) == .finished)
        // A restarted learner benches no one.
        var restarted = Machine(settings: m.settings, restoring: m.snapshot(), incarnation: 2)
        #expect(!restarted.isBenched(0) && assignment(restarted.requestWork(worker: 0, now: .zero)) != nil)
    }

    @Test func aForgedLateBatchBenchesItsWorkerForGood() throws {
        let config = try TestKit.tinyConfig()
        let audit = try BatchAudit(config: config)
        var m = Machine(settings: .init(config.train, lease: Self.lease), incarnation: 1)
        let order = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        _ = m.expireLeases(now: .seconds(2))
        let honest = correctBatch(
            audit, config: config, index: order.index, attempt: order.attempt, version: order.version)
        var forged = honest
        forged.rollouts[0].prompt[0] += 1
        let deliver = { (m: inout Machine, batch: RolloutBatch) in
            m.deliver(
                worker: 0, index: order.index, attempt: order.attempt, token: order.token, incarnation: 1,
                batch: batch, now: .seconds(3), audit: audit)
        }
        #expect(deliver(&m, forged) == .refused(.forgedContents) && m.hasForged(0))
        // Its honest late batch no longer lifts the bench.
        #expect(deliver(&m, honest) == .refused(.forgedContents) && m.isBenched(0))
        #expect(m.requestWork(worker: 0, now: .seconds(4)) == .refused(.forgedContents))
        #expect(m.ledger.balances && m.ledger.leasesExpired == 1)
    }

    /// With its token, a batch of the wrong size or sampled with another version is a forgery too
    /// under the audit: refused and counted at once, so it cannot hold its index until the lease
    /// expires (it used to be answered `.invalid`, with the assignment left out).
    @Test(arguments: ["size", "version"])
    func aBatchOfTheWrongShapeWithItsTokenIsAForgery(_ wrong: String) throws {
        let config = try TestKit.tinyConfig()
        let audit = try BatchAudit(config: config)
        var m = Machine(settings: .init(config.train, lease: Self.lease), incarnation: 1)
        let order = try #require(assignment(m.requestWork(worker: 0, now: .zero)))
        var batch = correctBatch(
            audit, config: config, index: order.index, attempt: order.attempt, version: order.version)
        if wrong == "size" {
            batch.rollouts.removeLast()
        } else {
            batch.rollouts[0].versions = batch.rollouts[0].versions.map { $0 + 1 }
        }
        var unaudited = m
        guard
            case .invalid = unaudited.deliver(
                worker: 0, index: order.index, attempt: order.attempt, token: order.token, incarnation: 1,
                batch: batch, now: .seconds(1))
        else {
            Issue.record("without the audit the machine answers .invalid")
            return
        }
        let decision = m.deliver(
            worker: 0, index: order.index, attempt: order.attempt, token: order.token, incarnation: 1,
            batch: batch, now: .seconds(1), audit: audit)
        #expect(decision == .refused(.forgedContents) && m.hasForged(0))
        #expect(m.assignments.isEmpty && m.ledger.leasesExpired == 0 && m.ledger.balances)
        #expect(assignment(m.requestWork(worker: 1, now: .seconds(1)))?.index == order.index)
    }

    @Test func theLedgerRoundTripsTheNewReason() throws {
        let ledger = SampleLedger(produced: 4, trained: 0, lost: 4, refused: [.forgedContents: 4])
        let json = String(decoding: try RunCoding.encoder().encode(ledger), as: UTF8.self)
        #expect(json.contains(#""forged contents":4"#))
        #expect(try RunCoding.decoder().decode(SampleLedger.self, from: Data(json.utf8)) == ledger)
    }
}
