// libFuzzer target for the parsers a peer's bytes reach before anything is trusted: the message
// header and frame checks, the call/reply/hello envelopes, the binary Codable decoder of call
// arguments, the call-target check and generic-substitution lookup of the invocation decoder.
//
// Not a SwiftPM target: scripts/fuzz-wire.sh builds ReinActors with `-sanitize=fuzzer` and links
// this file against it (`@testable import`, so internal parsers are reachable). Every input must
// end in a value or a thrown error; a crash, a trap or a hang is a bug.

import Distributed

@testable import ReinActors

/// Splits `data` into frames at every `0xFF 0xFE` pair (so the fuzzer can vary frame counts).
private func frames(_ data: [UInt8]) -> [WireFrame] {
    var frames: [WireFrame] = []
    var start = 0
    var i = 0
    while i + 1 < data.count {
        if data[i] == 0xFF && data[i + 1] == 0xFE {
            frames.append(WireFrame(Array(data[start..<i])))
            start = i + 2
            i += 2
        } else {
            i += 1
        }
    }
    frames.append(WireFrame(Array(data[start...])))
    return frames
}

/// Argument types the learner's methods decode (ReinActors' own and the standard library's).
private struct Argument: Codable {
    var node: NodeID
    var id: ActorID
    var values: [Float]
    var names: [String: Int]
    var flag: Bool?
    var nested: [[UInt8]]
}

private let limits = WireLimits(maxFrames: 64, maxPayloadBytes: 1 << 20, maxFrameBytes: 1 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let data = Array(UnsafeBufferPointer(start: start, count: count))
    let selector = data[0] % 6
    let rest = Array(data.dropFirst())
    switch selector {
    case 0:
        _ = try? WireMessage.decode(frames(rest), limits: limits)
    case 1:
        _ = try? CallEnvelope.decode(rest)
    case 2:
        _ = try? ReplyEnvelope.decode(rest)
    case 3:
        _ = rest.withUnsafeBytes { try? HelloEnvelope.decode($0) }
    case 4:
        let decoder = BinaryDecoder()
        _ = rest.withUnsafeBytes { try? decoder.decode(Argument.self, from: $0) }
        _ = rest.withUnsafeBytes { try? decoder.decode(String.self, from: $0) }
        _ = rest.withUnsafeBytes { try? decoder.decode([Double].self, from: $0) }
    default:
        // A call envelope as received: its target checked against an actor type, its generic
        // substitutions looked up by name (both reach the runtime's demangler).
        guard let envelope = try? CallEnvelope.decode(rest) else { return 0 }
        _ = InvocationTarget.method(envelope.target, on: FuzzActor.self)
        for name in envelope.genericSubstitutions where name.utf8.count < 256 {
            _ = InvocationTarget.lookUpSubstitution(name)
        }
    }
    return 0
}

/// A distributed actor type to check targets against.
distributed actor FuzzActor {
    typealias ActorSystem = LocalTestingDistributedActorSystem
    distributed func work(_ x: Int) -> Int { x }
}
