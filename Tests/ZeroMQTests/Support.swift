import Foundation
import Synchronization
import Testing

@testable import ZeroMQ

enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inproc, ipc, tcp
    var testDescription: String { rawValue }
}

private let uniqueCounter = Atomic<Int>(0)

/// A fresh endpoint to bind for `transport` (tcp uses an ephemeral port; read `lastEndpoint`).
func bindEndpoint(_ transport: Transport) -> String {
    let n = uniqueCounter.add(1, ordering: .relaxed).newValue
    switch transport {
    case .inproc: return "inproc://test-\(getpid())-\(n)"
    case .ipc: return "ipc:///tmp/rein-test-\(getpid())-\(n).sock"
    case .tcp: return "tcp://127.0.0.1:*"
    }
}

/// Binds `server` on a fresh endpoint and connects `client` to it; returns the resolved endpoint.
@discardableResult
func link(_ server: ZMQSocket, _ client: ZMQSocket, over transport: Transport) throws -> String {
    try server.bind(bindEndpoint(transport))
    let endpoint = try server.lastEndpoint
    try client.connect(endpoint)
    return endpoint
}

/// Number of open file descriptors of this process.
func openFileDescriptors() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

extension ZMQMessage {
    var text: String { string }
}
