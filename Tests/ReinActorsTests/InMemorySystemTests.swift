import Distributed
import Testing

@testable import ReinActors

@Suite("Actor system on the in-memory bus")
struct InMemorySystemTests {
    @Test func callReplyValuesVoidAndGenerics() async throws {
        // Generic arguments resolve only from the allowed types (never by the runtime's lookup).
        ReinActorSystem.allowGenericArguments([Point.self, Int?.self])
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            #expect(__isRemoteActor(proxy))
            #expect(try await proxy.add(40, 2) == 42)
            try await proxy.poke()
            try await proxy.poke()
            #expect(try await proxy.pokeCount() == 2)
            #expect(try await proxy.echo([1.5, -2.0, 3.25]) == [1.5, -2.0, 3.25])
            #expect(try await proxy.echo("héllo") == "héllo")
            #expect(try await proxy.echo(Point(x: 1, y: 2, label: "p")) == Point(x: 1, y: 2, label: "p"))
            #expect(try await proxy.echo(Int?.none) == nil)
            #expect(try await proxy.sum([1, 2, 3.5]) == 6.5)
            #expect(
                try await proxy.move(Point(x: 1, y: 2, label: "q"), by: 2) == Point(x: 3, y: 2, label: "q"))
            #expect(try await proxy.whoAmI() == target.id)
            // An actor passed as an argument is resolved by the receiving system (here: a proxy
            // back to the caller's node, which the target then calls).
            let local = Echo(actorSystem: systems[0])
            #expect(try await proxy.askOther(local, 20, 22) == 42)
            withExtendedLifetime(local) {}
            withExtendedLifetime(target) {}
        }
    }

    /// A node measures how long it takes to answer the calls of a method only once asked, one
    /// entry per answer, from the call's arrival to its reply (a slow target's time included).
    @Test func answerTimesAreRecordedForTheMethodsAskedOnly() async throws {
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            #expect(try await proxy.add(1, 2) == 3)  // before measuring: not recorded
            let adds = systems[1].answerTimes(of: "add(_:_:)")
            #expect(systems[1].answerTimes(of: "add(_:_:)") === adds)
            let slows = systems[1].answerTimes(of: "slow(_:)")
            for _ in 0..<3 { _ = try await proxy.add(1, 2) }
            try await proxy.poke()
            _ = try await proxy.slow(30)
            #expect(adds.all.count == 3 && adds.all.allSatisfy { $0 >= .zero })
            #expect(slows.all.count == 1 && slows.all[0] >= .milliseconds(30), "the target's own 30 ms")
            #expect(systems[0].answerTimes(of: "add(_:_:)").all.isEmpty, "the caller's node answered nothing")
            withExtendedLifetime(target) {}
        }
    }

    @Test func remoteErrorsArriveTyped() async throws {
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let opaque = await #expect(throws: RemoteError.self) { try await proxy.fail("boom") }
            #expect(opaque?.errorType.hasSuffix("Opaque") == true)
            #expect(opaque?.message == "opaque failure: boom")
            // A registered Codable error arrives as itself.
            let refusal = await #expect(throws: Refusal.self) { try await proxy.refuse("stale") }
            #expect(refusal == Refusal(reason: "stale"))
            // The system still works after errors.
            #expect(try await proxy.add(1, 1) == 2)
            withExtendedLifetime(target) {}
        }
    }

    @Test func timeoutOnSlowTarget() async throws {
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let (code, elapsed) = await seconds {
                await callErrorCode {
                    try await ReinActorSystem.withCallTimeout(.milliseconds(200)) {
                        try await proxy.slow(3_000)
                    }
                }
            }
            // Timed out, not answered: the timeout fired before the slow target (3 s) returned,
            // however loaded the machine (no upper bound on wall time); and never early.
            #expect(code == .timedOut)
            #expect(elapsed >= 0.19, "took \(elapsed) s")
            #expect(systems[0].pending.count == 0)
            withExtendedLifetime(target) {}
        }
    }

    @Test func defaultTimeoutFromSettings() async throws {
        var settings = testSettings
        settings.callTimeout = .milliseconds(150)
        try await withCluster(2, settings: settings) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let (code, elapsed) = await seconds { await callErrorCode { try await proxy.slow(3_000) } }
            #expect(code == .timedOut, "the 150 ms default fired before the 3 s target answered")
            #expect(elapsed >= 0.14, "took \(elapsed) s")
            // A longer per-call override wins over the default.
            let slow = try await ReinActorSystem.withCallTimeout(.seconds(5)) { try await proxy.slow(300) }
            #expect(slow == 300)
            withExtendedLifetime(target) {}
        }
    }

    @Test func cancellationCompletesTheCall() async throws {
        let (started, startedContinuation) = AsyncStream<Int>.makeStream()
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1], started: startedContinuation)
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let call = Task { await callErrorCode { try await pendingForever(proxy) } }
            for await _ in started { break }  // the target is running: the call is pending
            #expect(systems[0].pending.count == 1)
            call.cancel()
            // Neither a timeout nor an answer can end it: only the cancellation.
            #expect(await call.value == .cancelled)
            #expect(systems[0].pending.count == 0)
            // A call from an already cancelled task ends at once too.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return await callErrorCode { try await proxy.add(1, 2) }
            }
            #expect(await early.value == .cancelled)
            withExtendedLifetime(target) {}
        }
    }

    @Test func callsToAKilledNodeFailPromptly() async throws {
        let (started, startedContinuation) = AsyncStream<Int>.makeStream()
        try await withCluster(3) { bus, systems in
            let target = Echo(actorSystem: systems[1], started: startedContinuation)
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let calls = (0..<5).map { _ in Task { await callErrorCode { try await pendingForever(proxy) } } }
            var running = 0
            for await _ in started {
                running += 1
                if running == calls.count { break }
            }
            bus.kill(systems[1].node)
            var codes: [RemoteCallError.Code?] = []
            for call in calls { codes.append(await call.value) }
            // Neither a timeout nor an answer can end them: the loss did.
            #expect(codes.allSatisfy { $0 == .peerLost })
            // Later calls to the dead node fail at once: with a call timeout of an hour, only the
            // known death can end them.
            let later = await callErrorCode {
                try await ReinActorSystem.withCallTimeout(.seconds(3600)) { try await proxy.add(1, 2) }
            }
            #expect(later == .peerLost)
            // The third node is unaffected.
            let survivor = Echo(actorSystem: systems[2])
            #expect(try await Echo.resolve(id: survivor.id, using: systems[0]).add(2, 2) == 4)
            withExtendedLifetime((target, survivor)) {}
        }
    }

    @Test func partitionIsDetectedByHeartbeats() async throws {
        try await withCluster(2, settings: fastHeartbeats) { bus, systems in
            var events = systems[0].membershipEvents().makeAsyncIterator()
            #expect(await events.next() == .joined(systems[1].member))
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let call = Task { await callErrorCode { try await pendingForever(proxy) } }
            let (event, elapsed) = await seconds {
                bus.partition(systems[0].node, systems[1].node)
                return await events.next()
            }
            guard case .dead(let member, _) = event else {
                Issue.record("expected a dead event, got \(String(describing: event))")
                return
            }
            #expect(member == systems[1].member)
            // Never before the heartbeat timeout (400 ms, less one interval); and the pending call
            // ended as peer lost (no timeout or answer could end it): the heartbeats noticed.
            #expect(elapsed >= 0.35, "took \(elapsed) s")
            #expect(await call.value == .peerLost)
            withExtendedLifetime(target) {}
        }
    }

    @Test func leavingPeerIsReportedAndItsCallsFail() async throws {
        try await withCluster(2) { _, systems in
            var events = systems[0].membershipEvents().makeAsyncIterator()
            #expect(await events.next() == .joined(systems[1].member))
            await systems[1].shutdown()
            #expect(await events.next() == .left(systems[1].member))
            let gone = try Echo.resolve(id: .wellKnown("x", on: systems[1].node), using: systems[0])
            #expect(await callErrorCode { try await gone.add(1, 1) } == .peerLeft)
        }
    }

    @Test func shutdownFailsPendingCalls() async throws {
        let (started, startedContinuation) = AsyncStream<Int>.makeStream()
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1], started: startedContinuation)
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            let call = Task { await callErrorCode { try await pendingForever(proxy) } }
            for await _ in started { break }
            await systems[0].shutdown()
            #expect(await call.value == .systemShutDown)
            #expect(await callErrorCode { try await proxy.add(1, 1) } == .systemShutDown)
            withExtendedLifetime(target) {}
        }
    }

    @Test func resolveRules() async throws {
        try await withCluster(2) { _, systems in
            let local = Echo(actorSystem: systems[0])
            // This node, live: the instance itself.
            let same = try Echo.resolve(id: local.id, using: systems[0])
            #expect(same === local)
            // Another node: a proxy.
            let proxy = try Echo.resolve(id: local.id, using: systems[1])
            #expect(__isRemoteActor(proxy))
            // This node, no such actor: dead letter.
            let missing = ActorID(node: systems[0].node, name: "$999999")
            #expect(throws: ResolveError.self) { try Echo.resolve(id: missing, using: systems[0]) }
            // This node, another type: wrong type.
            let error = #expect(throws: ResolveError.self) {
                try Other.resolve(id: local.id, using: systems[0])
            }
            #expect(error?.code == .wrongType)
            withExtendedLifetime(local) {}
        }
    }

    @Test func wellKnownNamesAndWeakTable() async throws {
        try await withCluster(2) { _, systems in
            var learner: Echo? = systems[1].withName("learner") { Echo(actorSystem: systems[1]) }
            #expect(learner?.id.name == "learner")
            #expect(Echo(actorSystem: systems[1]).id.name.hasPrefix("$"))  // the hint is used once
            let ref = try Echo.resolve(id: .wellKnown("learner", on: systems[1].node), using: systems[0])
            #expect(try await ref.add(1, 2) == 3)
            // The table is weak: once released, calls get a dead letter, not a hang.
            learner = nil
            #expect(await callErrorCode { try await ref.add(1, 2) } == .deadLetter)
            // The name can be taken again, and the old incarnation-specific ID does not reach it.
            let again = systems[1].withName("learner") { Echo(actorSystem: systems[1]) }
            #expect(try await ref.add(2, 2) == 4)
            let stale = try Echo.resolve(
                id: ActorID(node: systems[1].node, name: "learner", incarnation: again.id.incarnation + 1000),
                using: systems[0])
            #expect(await callErrorCode { try await stale.add(1, 1) } == .deadLetter)
            withExtendedLifetime(again) {}
        }
    }

    @Test func unknownTargetAndBadSubstitutionsAreAnswered() async throws {
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            var invocation = systems[0].makeInvocationEncoder()
            let code = await callErrorCode {
                try await systems[0].remoteCallVoid(
                    on: proxy, target: RemoteCallTarget("$sNotATarget"), invocation: &invocation,
                    throwing: Never.self)
            }
            #expect(code == .wrongType, "a target that names no method of Echo is refused unrun")
            // A method of Echo's that does not exist is looked up, not found, and answered.
            let missing = await #expect(throws: RemoteError.self) {
                try await systems[0].remoteCallVoid(
                    on: proxy, target: RemoteCallTarget("$s" + _mangledTypeName(Echo.self)! + "7missingyyF"),
                    invocation: &invocation, throwing: Never.self)
            }
            #expect(missing?.message.contains("targetAccessorNotFound") == true)
            var decoder = ReinInvocationDecoder(
                system: systems[0], substitutions: ["NotAType"], arguments: [])
            #expect(throws: InvocationDecodingError.self) { try decoder.decodeGenericSubstitutions() }
            #expect(throws: InvocationDecodingError.self) { let _: Int = try decoder.decodeNextArgument() }
            withExtendedLifetime(target) {}
        }
    }

    @Test func policyVersionTravelsInHeaders() async throws {
        try await withCluster(2) { _, systems in
            systems[0].policyVersion = 7
            let target = Echo(actorSystem: systems[1])
            _ = try await Echo.resolve(id: target.id, using: systems[0]).add(1, 1)
            #expect(systems[1].lastPolicyVersion(of: systems[0].node) == 7)
            withExtendedLifetime(target) {}
        }
    }

    /// 2,000 concurrent calls with random target delays, random cancellations and two nodes
    /// killed mid-storm: every call ends exactly once and nothing stays pending.
    @Test func everyCallCompletesExactlyOnceUnderAStorm() async throws {
        try await withCluster(4) { bus, systems in
            let targets = systems[1...].map { Echo(actorSystem: $0) }
            let proxies = try targets.map { try Echo.resolve(id: $0.id, using: systems[0]) }
            let outcomes = Counter()
            let successes = Counter()
            var rng = SplitMix64(seed: 2000)
            let plan = (0..<2000).map { _ in
                (proxy: Int(rng.next() % 3), delay: Int(rng.next() % 20), cancel: rng.next() % 10 == 0)
            }
            await withTaskGroup(of: Void.self) { group in
                for (i, step) in plan.enumerated() {
                    let proxy = proxies[step.proxy]
                    let call = Task {
                        do {
                            _ = try await proxy.slow(step.delay)
                            successes.increment()
                        } catch {}
                        outcomes.increment()
                    }
                    group.addTask { await call.value }
                    if step.cancel { group.addTask { call.cancel() } }
                    if i == 600 { group.addTask { bus.kill(systems[2].node) } }
                    if i == 1400 { group.addTask { bus.kill(systems[3].node) } }
                }
            }
            #expect(outcomes.count == 2000)
            #expect(systems[0].pending.count == 0)
            #expect(systems[0].pending.completedCount == 2000)
            #expect(successes.count > 0 && successes.count < 2000)
            withExtendedLifetime(targets) {}
        }
    }
}
