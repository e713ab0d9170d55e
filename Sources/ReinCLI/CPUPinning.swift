import CReinAffinity
import Foundation

/// Which CPUs a benchmark's learner and its helper processes run on (`rein bench scale --pin`).
///
/// In a real run the learner does not share its cores with its workers: they are on other
/// machines. On one benchmark machine they are not, and a learner whose threads are descheduled
/// for 8 helper processes pays for their cache misses and context switches in its own CPU time.
/// Pinned, the learner has the first CPU to itself and the helpers share the others.
struct CPUPinning: Equatable {
    /// The learner's CPUs.
    var learner: [Int]
    /// The helpers' CPUs.
    var helpers: [Int]

    /// The split of `cpus` (those this process may run on, ascending): the first for the learner,
    /// the rest for the helpers; `nil` with fewer than two (nothing to split).
    static func split(_ cpus: [Int]) -> CPUPinning? {
        guard cpus.count >= 2, let first = cpus.first else { return nil }
        return CPUPinning(learner: [first], helpers: Array(cpus.dropFirst()))
    }

    /// `0-3,6` → [0, 1, 2, 3, 6]; `nil` if the list does not parse.
    static func parse(_ list: String) -> [Int]? {
        var cpus: [Int] = []
        for part in list.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map {
                Int($0.trimmingCharacters(in: .whitespaces))
            }
            switch bounds.count {
            case 1:
                guard let cpu = bounds[0], cpu >= 0 else { return nil }
                cpus.append(cpu)
            case 2:
                guard let low = bounds[0], let high = bounds[1], low >= 0, low <= high else { return nil }
                cpus += Array(low...high)
            default: return nil
            }
        }
        return cpus.isEmpty ? nil : cpus
    }

    /// `[0, 1, 2, 5]` → `0,1,2,5` (what ``parse(_:)`` reads).
    static func format(_ cpus: [Int]) -> String { cpus.map(String.init).joined(separator: ",") }

    /// The CPUs this process may run on.
    static func allowed() throws -> [Int] {
        var cpus = [Int32](repeating: 0, count: 4096)
        let count = rein_get_affinity(&cpus, Int32(cpus.count))
        guard count >= 0 else {
            throw CLIError("cannot read this process's CPU affinity: \(String(cString: strerror(errno)))")
        }
        return cpus.prefix(Int(count)).map(Int.init)
    }

    /// Restricts every thread of this process (and so every thread they start) to `cpus`.
    static func pinProcess(to cpus: [Int]) throws {
        let list = cpus.map(Int32.init)
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap {
            Int32($0)
        }
        for thread in threads where rein_set_affinity(thread, list, Int32(list.count)) != 0 {
            // A thread that ended since the listing is not an error.
            guard errno == ESRCH else {
                throw CLIError(
                    "cannot pin thread \(thread) to CPUs \(format(cpus)): \(String(cString: strerror(errno)))"
                )
            }
        }
    }
}
