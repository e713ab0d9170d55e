import Foundation
import Rein

/// A live progress line on stderr: rewritten in place on a terminal, one line every few percent
/// otherwise (CI logs, pipes).
struct ProgressLine {
    let total: Int
    let label: String
    private let interactive = isatty(STDERR_FILENO) != 0
    private let start = ContinuousClock.now
    private var lastPrinted = -1

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    /// Reports that `done` of `total` units are finished, with `detail` (e.g. "loss 0.42").
    mutating func update(_ done: Int, _ detail: String, force: Bool = false) {
        let every = max(1, total / 20)
        guard interactive || force || done == total || done / every != lastPrinted / every else { return }
        lastPrinted = done
        let elapsed = seconds(ContinuousClock.now - start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let line = "\(label) \(done)/\(total)  \(detail)  elapsed \(clock(elapsed))  ETA \(clock(eta))"
        if interactive {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (done == total ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Ends the in-place line (so later output starts on a new line).
    func finish() {
        if interactive && lastPrinted != total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

func clock(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600
        ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
        : String(format: "%d:%02d", t / 60, t % 60)
}
