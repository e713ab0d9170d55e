import Synchronization

/// A `Mutex`-protected value on the heap, so that several owners (a thread and an async API) can
/// share it by reference. Never hold the lock across an `await`.
final class Locked<Value>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: sending Value) { mutex = Mutex(value) }

    func withLock<R, E: Error>(_ body: (inout sending Value) throws(E) -> sending R) throws(E) -> sending R {
        try mutex.withLock(body)
    }
}
