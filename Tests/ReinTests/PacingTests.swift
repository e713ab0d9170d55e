import PropertyBased
import ReinTasks
import Testing

@testable import Rein

/// A distributed run on a simulated clock: `workers` workers that each take `latency(index)` to
/// sample a batch, a learner that takes `step` per batch, all driven through the machine (no
/// actors, no wall clock). Idle workers ask for work whenever anything changes, as they poll.
struct PacedPipeline {
    let workers: Int
    let step: Duration
    let latency: @Sendable (Int) -> Duration
    var machine: Machine
    var now = Duration.zero
    /// Batches out with a worker: when each is delivered.
    var out: [Int: (done: Duration, assignment: Machine.Assignment)] = [:]
    /// The batch training and when it is done.
    var training: (done: Duration, order: Machine.TrainOrder)?
    /// Lag of each batch trained, in index order.
    var lags: [Int] = []
    /// When each learner step started.
    var starts: [Duration] = []
    /// The largest number of batches out with workers at once.
    var mostOut = 0

    init(
        settings: Machine.Settings, workers: Int, step: Duration,
        latency: @escaping @Sendable (Int) -> Duration
    ) {
        self.workers = workers
        self.step = step
        self.latency = latency
        machine = Machine(settings: settings, incarnation: 1)
    }

    /// Learner idle time between consecutive steps from step `from` on.
    func idle(from: Int) -> Duration {
        guard starts.count > from + 1 else { return .zero }
        return (from + 1..<starts.count).reduce(Duration.zero) { $0 + (starts[$1] - starts[$1 - 1] - step) }
    }

    mutating func run() {
        var events = 0
        while !machine.isFinished {
            events += 1
            guard events < 100_000 else {
                Issue.record("the simulated run does not end")
                return
            }
            // The learner starts the next batch if it is there; idle workers ask for work.
            if training == nil, let decision = machine.nextBatch() {
                guard case .train(let order) = decision else {
                    Issue.record("batch \(machine.consumed) dropped")
                    return
                }
                #expect(order.lag <= machine.settings.maxStaleness)
                training = (now + step, order)
                starts.append(now)
            }
            for worker in 0..<workers where out[worker] == nil {
                guard case .sample(let a) = machine.requestWork(worker: worker, now: now) else { break }
                out[worker] = (now + latency(a.index), a)
            }
            mostOut = max(mostOut, out.count)
            #expect(machine.ledger.balances)
            // The next event: a delivery or the end of the learner step.
            let next = (out.values.map(\.done) + [training?.done].compactMap { $0 }).min()
            guard let next else { continue }
            now = next
            if let (done, order) = training, done == now {
                var learned = LearnerStepMetrics()
                learned.seconds = seconds(step)
                _ = machine.trained(order, learner: learned, version: machine.version + 1)
                lags.append(order.lag)
                training = nil
            }
            for (worker, (done, a)) in out.sorted(by: { $0.key < $1.key }) where done == now {
                out[worker] = nil
                let decision = machine.deliver(
                    worker: worker, index: a.index, attempt: a.attempt, token: a.token, incarnation: 1,
                    batch: batch(count: a.count, version: a.version), now: now)
                #expect(decision == .accepted)
            }
        }
        #expect(machine.ledger.balances && machine.ledger.inFlight == 0)
        #expect(machine.ledger.trained == machine.settings.steps * machine.settings.batchSize)
    }
}

@Suite("Min-lag pacing")
struct PacingTests {
    @Test func theLookaheadIsLatencyOverStepPlusTheMarginRoundedUp() {
        var pacer = Pacer(mode: .auto, margin: 0.25)
        #expect(pacer.lookahead == 1, "1 until measured")
        pacer.sampled(seconds: 2.5)
        #expect(pacer.lookahead == 1)
        pacer.stepped(seconds: 1)
        #expect(pacer.lookahead == 3, "⌈2.5 + 0.25⌉")
        pacer.sampled(seconds: 0.5)  // mean latency 1.5
        #expect(pacer.latency == 1.5 && pacer.lookahead == 2)
        pacer.stepped(seconds: 3)  // mean step 2
        #expect(pacer.stepTime == 2 && pacer.lookahead == 1, "⌈0.75 + 0.25⌉")
        // Only the last `window` measurements count; nonsense is ignored.
        var windowed = Pacer(mode: .auto, margin: 0, window: 2)
        for latency in [9.0, 1, 1, .nan, -1, .infinity] { windowed.sampled(seconds: latency) }
        windowed.stepped(seconds: 0.4)
        #expect(windowed.latencies == [1, 1] && windowed.lookahead == 3)
        // A learner step of ~0 s: as far as anything else allows.
        windowed.stepped(seconds: 0)
        windowed.stepped(seconds: 0)
        #expect(windowed.lookahead == Pacer.maximumLookahead)
        #expect(Pacer(mode: .bound).lookahead == nil)
        // The default margin is none: a latency of one step is one batch ahead.
        var exact = Pacer(mode: .auto)
        exact.sampled(seconds: 1)
        exact.stepped(seconds: 1)
        #expect(exact.margin == 0 && exact.lookahead == 1)
    }

    @Test(
        "Simulated clocks: auto pacing converges to ⌈latency/step + margin⌉, keeps the learner busy, and trains at that lag",
        arguments: [
            // (workers, latency ms, step ms, margin, expected lookahead)
            (2, 600, 1000, 0, 1), (2, 1000, 1000, 0, 1), (2, 1000, 1000, 0.25, 2), (4, 2500, 1000, 0, 3),
            (3, 1800, 1000, 0, 2), (3, 1800, 1000, 0.25, 3),
        ] as [(Int, Int, Int, Double, Int)])
    func autoPacingConvergesToTheExpectedLookahead(
        workers: Int, latency: Int, step: Int, margin: Double, expected: Int
    ) {
        let settings = Machine.Settings(
            steps: 40, batchSize: 2, maxStaleness: 16, injectLag: 0, pacing: .auto, pacingMargin: margin)
        var pipeline = PacedPipeline(
            settings: settings, workers: workers, step: .milliseconds(step),
            latency: { _ in .milliseconds(latency) })
        pipeline.run()
        #expect(pipeline.machine.pacer.lookahead == expected)
        // After the first measurements, the learner never waits and every batch lags `expected`.
        let settled = expected + 3
        #expect(pipeline.idle(from: settled) == .zero)
        #expect(pipeline.lags.dropFirst(settled + expected).allSatisfy { $0 == expected }, "\(pipeline.lags)")
        // Out with workers: the lookahead, and the next batch to train while the learner waits for it.
        #expect(pipeline.mostOut <= expected + 1)
    }

    @Test func boundModeFillsTheQueueToMaxStalenessAutoTrainsAsFastAtLowLag() {
        // Four workers outpace the learner (2.5 s per batch each vs 1 s per step): `bound` runs
        // 8 ahead and trains at lag 8; `auto` at lag 3 in the same simulated time, but for its start
        // (one batch ahead until a first learner step is measured: at most one latency).
        var finish: [PacingMode: Duration] = [:]
        var lags: [PacingMode: [Int]] = [:]
        for mode in PacingMode.allCases {
            var pipeline = PacedPipeline(
                settings: .init(steps: 40, batchSize: 1, maxStaleness: 8, injectLag: 0, pacing: mode),
                workers: 4, step: .seconds(1), latency: { _ in .milliseconds(2500) })
            pipeline.run()
            finish[mode] = pipeline.now
            lags[mode] = pipeline.lags
        }
        #expect(lags[.bound]?.suffix(10) == Array(repeating: 8, count: 10))
        #expect(lags[.auto]?.suffix(10) == Array(repeating: 3, count: 10))
        let (bound, auto) = (finish[.bound]!, finish[.auto]!)
        #expect(auto <= bound + .milliseconds(2500), "auto \(auto) vs bound \(bound)")
    }

    @Test func jitteredLatenciesAreAveragedAndAMarginAbsorbsThem() {
        // Latency alternates 0.5 s and 1.1 s (mean 0.8 s) against 1 s steps. Without a margin the
        // lookahead is ⌈0.8⌉ = 1: lag 1, and the learner waits 0.1 s for each slow batch. With a
        // margin of 0.25 it is ⌈1.05⌉ = 2: lag 2, and the learner never waits.
        for (margin, lookahead) in [(0.0, 1), (0.25, 2)] {
            let settings = Machine.Settings(
                steps: 30, batchSize: 1, maxStaleness: 16, injectLag: 0, pacing: .auto, pacingMargin: margin)
            var pipeline = PacedPipeline(
                settings: settings, workers: 3, step: .seconds(1),
                latency: { $0 % 2 == 0 ? .milliseconds(500) : .milliseconds(1100) })
            pipeline.run()
            #expect(pipeline.machine.pacer.lookahead == lookahead)
            #expect(pipeline.lags.dropFirst(8).allSatisfy { $0 == lookahead }, "\(pipeline.lags)")
            let idle = pipeline.idle(from: 8)
            if lookahead == 1 {
                #expect(idle > .zero && idle <= .milliseconds(100) * 24, "\(idle)")
            } else {
                #expect(idle == .zero)
            }
        }
    }

    @Test(
        "Slow workers: auto hands out to every worker (the workers are the bottleneck) and is as fast as bound"
    )
    func slowWorkersAreAllKeptBusy() {
        var finish: [PacingMode: Duration] = [:]
        for mode in PacingMode.allCases {
            var pipeline = PacedPipeline(
                settings: .init(steps: 30, batchSize: 1, maxStaleness: 16, injectLag: 0, pacing: mode),
                workers: 2, step: .milliseconds(500), latency: { _ in .seconds(3) })
            pipeline.run()
            finish[mode] = pipeline.now
            if mode == .auto { #expect(pipeline.mostOut == 2 && pipeline.machine.pacer.lookahead == 6) }
        }
        #expect(finish[.auto]! <= finish[.bound]! + .seconds(3))
    }

    @Test("inject_lag is exact under auto pacing too", arguments: [1, 2, 3])
    func injectedLagIsExactWithAutoPacing(lag: Int) {
        var pipeline = PacedPipeline(
            settings: .init(steps: 20, batchSize: 1, maxStaleness: 4, injectLag: lag, pacing: .auto),
            workers: 3, step: .seconds(1), latency: { _ in .milliseconds(300) })
        pipeline.run()
        #expect(pipeline.lags == (0..<20).map { min($0, lag) })
    }

    @Test func randomPipelinesNeverExceedMaxStalenessAndAutoIsAsFastAsBound() async {
        await propertyCheck(
            count: 60, input: Gen.int(in: 1...4), Gen.int(in: 100...4000), Gen.int(in: 100...2000),
            Gen.int(in: 0...6)
        ) { workers, latency, step, staleness in
            var finish: [PacingMode: Duration] = [:]
            for mode in PacingMode.allCases {
                var pipeline = PacedPipeline(
                    settings: .init(
                        steps: 24, batchSize: 1, maxStaleness: staleness, injectLag: 0, pacing: mode),
                    workers: workers, step: .milliseconds(step), latency: { _ in .milliseconds(latency) })
                pipeline.run()
                #expect(pipeline.lags.allSatisfy { $0 <= staleness })
                #expect(pipeline.lags.count == 24)
                finish[mode] = pipeline.now
            }
            // Auto pays at most its start (one latency and one step, measured before it paces).
            #expect(
                finish[.auto]! <= finish[.bound]! + .milliseconds(2 * (latency + step)),
                "\(workers) workers, latency \(latency) ms, step \(step) ms, max_staleness \(staleness)")
        }
    }
}
