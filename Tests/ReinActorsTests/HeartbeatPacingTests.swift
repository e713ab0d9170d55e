import Foundation
import Logging
import Testing

@testable import ReinActors

/// Heartbeats with many peers: the pace rule alone, then hundreds of nodes simulated on a made-up
/// clock with the real ``Membership`` rounds, then two real systems.
@Suite("Heartbeat pacing")
struct HeartbeatPacingTests {
    let pacing = HeartbeatPacing(base: .milliseconds(250), timeout: .milliseconds(1500), perSecond: 256)

    @Test func thePaceGrowsInWholeBasesWithThePeers() {
        let expected: [(Int, Duration)] = [
            (0, .milliseconds(250)), (1, .milliseconds(250)), (64, .milliseconds(250)),
            (65, .milliseconds(500)), (128, .milliseconds(500)), (129, .milliseconds(750)),
            (256, .seconds(1)), (257, .milliseconds(1250)), (10_000_000, HeartbeatPacing.maxInterval),
        ]
        for (peers, pace) in expected {
            #expect(pacing.interval(peers: peers) == pace, "\(peers) peers")
            // Never more than perSecond heartbeats a second, unless the ceiling is reached.
            if pace < HeartbeatPacing.maxInterval {
                #expect(Double(peers) / (pace / .seconds(1)) <= Double(pacing.perSecond))
            }
        }
    }

    @Test func theSlowerPaceWinsAndAnAnnouncementIsBelievedOnlyWithinBounds() {
        #expect(pacing.pair(own: .milliseconds(250), peer: nil) == .milliseconds(250))
        #expect(pacing.pair(own: .milliseconds(250), peer: .seconds(1)) == .seconds(1))
        #expect(pacing.pair(own: .seconds(1), peer: .milliseconds(250)) == .seconds(1))
        #expect(pacing.pair(own: .milliseconds(250), peer: .milliseconds(1)) == .milliseconds(250))
        #expect(pacing.pair(own: .milliseconds(250), peer: .seconds(3600)) == HeartbeatPacing.maxInterval)
    }

    @Test func theDeadlineGrowsByWhatThePaceAdds() {
        #expect(pacing.deadline(pair: .milliseconds(250)) == .milliseconds(1500))
        #expect(pacing.deadline(pair: .seconds(1)) == .milliseconds(2250))
        #expect(pacing.isDue(elapsed: .milliseconds(875), pair: .seconds(1)))
        #expect(!pacing.isDue(elapsed: .milliseconds(870), pair: .seconds(1)))
    }

    @Test func theEnvelopeCarriesMillisecondsAndRefusesNonsense() throws {
        let envelope = HeartbeatEnvelope(interval: .milliseconds(1250))
        #expect(envelope.encoded() == [0xE2, 0x04, 0, 0])
        #expect(try envelope.encoded().withUnsafeBytes { try HeartbeatEnvelope.decode($0) } == envelope)
        #expect(HeartbeatEnvelope(interval: .microseconds(10)).encoded() == [1, 0, 0, 0], "at least 1 ms")
        #expect(
            catchWire { try ([0, 0, 0, 0] as [UInt8]).withUnsafeBytes { try HeartbeatEnvelope.decode($0) } }?
                .code == .malformed)
        #expect(
            catchWire { try ([1, 0] as [UInt8]).withUnsafeBytes { try HeartbeatEnvelope.decode($0) } }?.code
                == .truncated)
        #expect(
            catchWire {
                try ([1, 0, 0, 0, 0] as [UInt8]).withUnsafeBytes { try HeartbeatEnvelope.decode($0) }
            }?.code
                == .lengthMismatch)
        let header = WireHeader(kind: .heartbeat, sender: NodeID.random())
        #expect(HeartbeatEnvelope.pace(of: WireMessage(header: header, frames: [])) == nil)
        #expect(
            HeartbeatEnvelope.pace(of: WireMessage(header: header, frames: [WireFrame(envelope.encoded())]))
                == .milliseconds(1250))
    }

    /// A hub and 256 peers, each with its own `Membership`, on a made-up clock: rounds every base
    /// interval with up to ±60 ms of jitter, messages that take 1–100 ms. The hub heartbeats
    /// at 1 s, its peers follow it, nobody alive is ever declared dead, a peer that stops is
    /// found within its deadline plus a round, and when half the peers die the pace comes back
    /// down without a false verdict.
    @Test func twoHundredFiftySixPeersFollowTheHubsPaceOnAMadeUpClock() {
        var random = SeededRandom(seed: 7)
        let start = ContinuousClock.now
        func at(_ ms: Int) -> ContinuousClock.Instant { start + .milliseconds(ms) }
        let hub = NodeID.random()
        let peers = (0..<256).map { _ in NodeID.random() }
        let hubMembership = Membership()
        var peerMembership: [NodeID: Membership] = [:]
        for peer in peers {
            #expect(hubMembership.join(Member(node: peer, name: "peer"), now: start))
            let membership = Membership()
            #expect(membership.join(Member(node: hub, name: "hub"), now: start))
            peerMembership[peer] = membership
        }
        // Deliveries by arrival (ms): receiver, sender, announced pace. Rounds by time (ms).
        var arrivals: [Int: [(NodeID, NodeID, Duration)]] = [:]
        var rounds: [Int: [NodeID]] = [250: [hub]]
        for peer in peers { rounds[1 + random.below(250), default: []].append(peer) }
        var stopped: Set<NodeID> = []
        var hubSent = 0
        var peerSent = 0
        var verdicts: [NodeID: Int] = [:]
        var falseVerdicts: [String] = []
        let victim = peers[0]
        var victimLastHeard = 0
        for now in 0...60_000 {
            for (receiver, sender, pace) in arrivals.removeValue(forKey: now) ?? [] {
                if receiver == hub {
                    _ = hubMembership.seen(sender, policyVersion: 0, pace: pace, now: at(now))
                    if sender == victim { victimLastHeard = now }
                } else if !stopped.contains(receiver) {
                    _ = peerMembership[receiver]?.seen(sender, policyVersion: 0, pace: pace, now: at(now))
                }
            }
            for node in rounds.removeValue(forKey: now) ?? [] where !stopped.contains(node) {
                rounds[now + 250 + random.below(121) - 60, default: []].append(node)
                let membership = node == hub ? hubMembership : peerMembership[node]!
                let round = membership.heartbeatRound(pacing: pacing, now: at(now))
                if now >= 10_000 && now < 20_000 {
                    if node == hub { hubSent += round.due.count } else { peerSent += round.due.count }
                }
                for target in round.due {
                    arrivals[now + 1 + random.below(100), default: []].append((target, node, round.pace))
                }
                for (peer, _) in round.silent {
                    if node != hub {
                        falseVerdicts.append("a peer declared the hub dead at \(now) ms")
                    } else if stopped.contains(peer) {
                        verdicts[peer] = now
                    } else {
                        falseVerdicts.append("the hub declared a live peer dead at \(now) ms")
                    }
                    _ = membership.remove(peer, left: false, reason: "test")
                }
            }
            if now == 20_000 { stopped.insert(victim) }
            if now == 35_000 { stopped.formUnion(peers[128...]) }
        }
        #expect(falseVerdicts.isEmpty, "\(falseVerdicts.prefix(3))")
        // 10 s at 1 s: 2,560 each way (not the 10,240 of 250 ms), give or take a round's jitter.
        #expect(hubSent >= 2_300 && hubSent <= 2_816, "hub sent \(hubSent)")
        #expect(peerSent >= 2_300 && peerSent <= 2_816, "peers sent \(peerSent)")
        if let found = verdicts[victim] {
            let silence = found - victimLastHeard
            #expect(silence > 2_250 && silence <= 2_250 + 250 + 60, "found after \(silence) ms of silence")
        } else {
            Issue.record("the stopped peer was never declared dead")
        }
        #expect(Set(verdicts.keys) == Set([victim] + peers[128...]))
        // 127 left: the hub's pace is back to 500 ms, and its peers know it.
        #expect(hubMembership.heartbeatRound(pacing: pacing, now: at(60_001)).pace == .milliseconds(500))
        #expect(peerMembership[peers[1]]?.pace(of: hub) == .milliseconds(500))
    }

    /// Two real systems: the hub's pace (one peer, one heartbeat a second allowed: 1 s) reaches
    /// the peer in a heartbeat.
    @Test(.timeLimit(.minutes(1)))
    func aPeerLearnsTheHubsPaceFromItsHeartbeats() async throws {
        let bus = InMemoryBus()
        let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let hub = ReinActorSystem(
            bus: bus, name: "hub",
            settings: .init(
                heartbeatInterval: .milliseconds(50), heartbeatTimeout: .seconds(30), heartbeatsPerSecond: 1),
            logger: quiet)
        let peer = ReinActorSystem(
            bus: bus, name: "peer",
            settings: .init(heartbeatInterval: .milliseconds(50), heartbeatTimeout: .seconds(30)),
            logger: quiet)
        let member = try await peer.connect(to: "hub")
        // The hub's first heartbeat to a new member goes out in its next round.
        while peer.membership.pace(of: member.node) == nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(peer.membership.pace(of: member.node) == .seconds(1))
        await peer.shutdown()
        await hub.shutdown()
    }
}

/// SplitMix64, for the simulation's jitter.
private struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func below(_ n: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(n))
    }
}
