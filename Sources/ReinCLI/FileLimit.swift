import Foundation

/// The open-file limit (`ulimit -n`) of this process, and what a node with many connections does
/// about it: each worker costs the learner a few descriptors (its control connection, its
/// broadcast subscription, its sample stream), so the common soft limit of 1,024 runs out near
/// 300 workers while the hard limit is often far higher.
struct FileLimit: Equatable {
    /// The soft limit (what `open` is held to).
    var soft: UInt64
    /// The hard limit (the most an unprivileged process may raise the soft one to).
    var hard: UInt64

    /// `RLIM_INFINITY` (all ones on Linux).
    static let unlimited = UInt64.max

    /// Descriptors a learner holds per worker: its control, broadcast and sample connections.
    static let perWorker = 3
    /// Descriptors of a process besides its connections (libraries, ZeroMQ's own, files).
    static let reserve = 128

    /// What to do for a process that needs `needed` descriptors.
    enum Plan: Equatable {
        /// The soft limit is enough.
        case enough
        /// Raise the soft limit to this (the hard limit, or `needed` if the hard limit is unlimited).
        case raise(to: UInt64)
        /// Even the hard limit is below `needed`.
        case tooLow
    }

    /// The plan for `needed` descriptors (pure: tested without touching the process).
    func plan(needed: UInt64) -> Plan {
        if soft >= needed { return .enough }
        if hard == Self.unlimited { return .raise(to: max(needed, soft)) }
        return hard >= needed ? .raise(to: hard) : .tooLow
    }

    /// This process's limit.
    static func current() throws -> FileLimit {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw CLIError("cannot read the open-file limit: \(String(cString: strerror(errno)))")
        }
        return FileLimit(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// Makes sure this process may open `needed` descriptors, raising the soft limit up to the
    /// hard one if it must. Returns the soft limit in force.
    /// - Throws: ``CLIError`` (one line, with the fix) if the hard limit is too low.
    @discardableResult
    static func ensure(_ needed: Int, for what: String) throws -> UInt64 {
        let limit = try current()
        switch limit.plan(needed: UInt64(needed)) {
        case .enough:
            return limit.soft
        case .raise(let target):
            var raised = rlimit(rlim_cur: rlim_t(target), rlim_max: rlim_t(limit.hard))
            guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 else {
                throw CLIError(
                    "\(what) needs about \(needed) open files; raising the soft limit from \(limit.soft) to \(target) failed: \(String(cString: strerror(errno)))"
                )
            }
            return target
        case .tooLow:
            throw CLIError(
                "\(what) needs about \(needed) open files but the hard limit is \(limit.hard) (soft \(limit.soft)): raise it (ulimit -Hn, /etc/security/limits.conf or LimitNOFILE=) and try again"
            )
        }
    }
}
