import Logging
import Synchronization

/// At most one log line per kind of event per interval, whatever the number of peers: a flood of
/// vanished or misbehaving peers costs one line a second, which says how many were not logged.
///
/// Pure bookkeeping (``admit(_:at:)``) inside a lock; the caller logs.
final class LogRateLimit: Sendable {
    private struct Entry {
        var at: ContinuousClock.Instant
        var suppressed: Int
    }

    /// The shortest time between two lines of one kind.
    let interval: Duration
    private let entries = Mutex<[String: Entry]>([:])

    init(interval: Duration = .seconds(1)) { self.interval = interval }

    /// Whether a line of `kind` may be logged now; if so, how many were suppressed since the last.
    func admit(_ kind: String, at now: ContinuousClock.Instant = .now) -> Int? {
        entries.withLock { entries in
            if let last = entries[kind], now - last.at < interval {
                entries[kind]!.suppressed += 1
                return nil
            }
            let suppressed = entries[kind]?.suppressed ?? 0
            entries[kind] = Entry(at: now, suppressed: 0)
            return suppressed
        }
    }

    /// Logs `message` at `level` unless a line of `kind` was logged within the interval.
    func log(_ logger: Logger, _ level: Logger.Level, kind: String, _ message: @autoclosure () -> String) {
        guard let suppressed = admit(kind) else { return }
        let more = suppressed > 0 ? " (and \(suppressed) more since the last such line)" : ""
        logger.log(level: level, "\(message())\(more)")
    }
}
