/// Every decision of the `rein launch` supervisor, as a value: which child to start, restart or
/// signal, and when the launch is over. No processes, no clock: ``LaunchSupervisor`` turns child
/// events into ``Event``s and carries out the ``Action``s (timers included).
///
/// The learner starts first; the workers start once it reports its endpoint (``Event/ready(endpoint:)``,
/// a handshake). A child that exits with a non-zero status is restarted up to `maxRestarts` times —
/// a learner on the same endpoint (it resumes from its checkpoint and the workers reconnect) — unless
/// the launch is stopping or the learner is done. Once the learner is done the workers get a grace
/// period to hear that the run is over, then SIGTERM, then SIGKILL; a stop (SIGTERM to the
/// supervisor) sends SIGTERM to every child at once, then SIGKILL.
public struct SupervisorMachine: Sendable {
    /// A child process.
    public enum Role: Hashable, Sendable, Comparable, CustomStringConvertible {
        case learner
        case worker(Int)

        public var description: String {
            switch self {
            case .learner: "learner"
            case .worker(let i): "worker-\(i)"
            }
        }
    }

    /// The supervisor's timers.
    public enum Timer: Hashable, Sendable {
        /// The workers' time to leave by themselves after the learner finished.
        case grace
        /// The children's time to exit after SIGTERM.
        case kill
    }

    /// How a child is asked to stop.
    public enum Signal: Hashable, Sendable {
        /// SIGTERM: drain and exit.
        case terminate
        /// SIGKILL.
        case kill
    }

    /// What happened.
    public enum Event: Hashable, Sendable {
        /// The learner listens on `endpoint`.
        case ready(endpoint: String)
        /// A child exited with `status` (or was killed by that signal).
        case exited(Role, status: Int32)
        /// The supervisor was asked to stop (graceful shutdown).
        case stop
        /// A timer armed by ``Action/arm(_:)`` went off.
        case timer(Timer)
    }

    /// What to do.
    public enum Action: Hashable, Sendable {
        /// Start `role` (a learner on `endpoint`, if given; a worker connecting to it); `restart`
        /// counts the restarts of the role (0: its first start).
        case spawn(Role, endpoint: String?, restart: Int)
        /// Send `signal` to the running child `role`.
        case signal(Role, Signal)
        /// Start `timer` (its event comes back as ``Event/timer(_:)``).
        case arm(Timer)
    }

    /// Worker processes.
    public let workers: Int
    /// Restarts allowed per crashed child.
    public let maxRestarts: Int
    /// The children running now.
    public private(set) var running: Set<Role> = []
    /// Where the learner listens, once it said so.
    public private(set) var endpoint: String?
    /// The learner's exit status, once it is done (not restarted).
    public private(set) var learnerStatus: Int32?
    private var restarts: [Role: Int] = [:]
    private var stopping = false
    private var started = false

    /// A supervisor of a learner and `workers` workers.
    public init(workers: Int, maxRestarts: Int) {
        self.workers = workers
        self.maxRestarts = maxRestarts
    }

    /// Whether the launch is over: started, and no child runs.
    public var isFinished: Bool { started && running.isEmpty }

    /// Starts the learner.
    public mutating func start() -> [Action] {
        guard !started else { return [] }
        started = true
        running.insert(.learner)
        return [.spawn(.learner, endpoint: nil, restart: 0)]
    }

    /// The actions `event` calls for.
    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .ready(let endpoint):
            guard self.endpoint == nil, !stopping, learnerStatus == nil, running.contains(.learner) else {
                return []  // a restarted learner announces the endpoint it was given
            }
            self.endpoint = endpoint
            return (0..<workers).map { i in
                running.insert(.worker(i))
                return .spawn(.worker(i), endpoint: endpoint, restart: 0)
            }
        case .exited(let role, let status):
            guard running.remove(role) != nil else { return [] }
            if let restart = restart(role, status: status) { return [restart] }
            guard role == .learner else { return [] }
            learnerStatus = status
            return stopping || running.isEmpty ? [] : [.arm(.grace)]
        case .stop, .timer(.grace):
            guard !stopping else { return [] }
            stopping = true
            return signal(.terminate) + [.arm(.kill)]
        case .timer(.kill):
            return signal(.kill)
        }
    }

    /// A restart of `role`, which exited with `status`, if it gets one.
    private mutating func restart(_ role: Role, status: Int32) -> Action? {
        let count = restarts[role, default: 0]
        guard status != 0, !stopping, learnerStatus == nil, let endpoint, count < maxRestarts else {
            return nil
        }
        restarts[role] = count + 1
        running.insert(role)
        return .spawn(role, endpoint: endpoint, restart: count + 1)
    }

    /// `signal` to every running child, learner first.
    private func signal(_ signal: Signal) -> [Action] {
        running.sorted().map { .signal($0, signal) }
    }
}
