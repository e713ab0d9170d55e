import Foundation
import Synchronization

/// Where commands write their results (stdout, or a capture in tests). Progress and logs go to
/// stderr through swift-log instead.
public enum Console {
    /// When set (in tests), `emit` appends here instead of printing.
    @TaskLocal public static var capture: Capture?

    /// Collected output lines.
    public final class Capture: Sendable {
        private let lines = Mutex<[String]>([])
        public init() {}
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        /// Everything emitted so far, one line per `emit`.
        public var text: String { lines.withLock { $0.joined(separator: "\n") } }
    }
}

/// Writes one line of command output, flushed at once: progress lines of long commands must
/// reach a pipe or a log file as they happen, not when the process exits.
func emit(_ line: String) {
    if let capture = Console.capture {
        capture.append(line)
    } else {
        print(line)
        fflush(nil)  // every output stream (naming stdout is not concurrency-safe in Swift 6)
    }
}
