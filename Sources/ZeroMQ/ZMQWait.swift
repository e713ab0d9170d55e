/// How long a send or receive may wait.
public enum ZMQWait: Sendable, Hashable {
    /// Wait until the operation can complete (or the socket's own `ZMQ_RCVTIMEO`/`ZMQ_SNDTIMEO`
    /// expires, or the context is shut down).
    case blocking
    /// Do not wait (`ZMQ_DONTWAIT`).
    case nonBlocking
    /// Wait at most this long.
    case timeout(Duration)
}

extension Duration {
    /// Whole milliseconds, rounded up so that a tiny positive timeout still waits.
    var zmqMilliseconds: Int {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(clamping: max(0, ms))
    }
}
