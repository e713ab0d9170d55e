import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `rein launch` as a `Service`: runs the learner and the workers as child processes, copies their
/// output with a `[name]` prefix, restarts crashed ones and stops them all on graceful shutdown.
///
/// It lives in ReinRuntime beside the other node services (it spawns with Foundation's `Process`,
/// which the module already links; no module of its own is needed for one type). Its decisions
/// are a ``SupervisorMachine``; this shell only turns child events into the machine's events and
/// its actions into processes, signals and timers. Nothing polls: it waits on one stream of events
/// — a child's exit (`Process.terminationHandler`, once its output reached end of file or a second
/// later), the learner's readiness handshake (``ReadyHandshake``, a line on its stdout), the timers
/// and the graceful shutdown.
///
/// Each child's stdin is a pipe the supervisor holds open and never writes: when the supervisor
/// dies, however it dies, the children read end of file (`--exit-with-parent`) and drain.
public struct LaunchSupervisor: Service, CustomStringConvertible {
    /// What to run.
    public struct Options: Sendable {
        /// The `rein` executable.
        public var executable: String
        /// The learner's arguments, with `--bind ENDPOINT` (a restart rebinds the endpoint it got)
        /// and `--handshake` (it reports its endpoint).
        public var learnerArguments: [String]
        /// Arguments every worker gets after `worker --learner ENDPOINT --name worker-i`.
        public var workerArguments: [String]
        /// Arguments of worker i only (e.g. its metrics port), after ``workerArguments``.
        public var perWorkerArguments: [[String]]
        /// Worker processes.
        public var workers: Int
        /// Restarts allowed per crashed child.
        public var maxRestarts: Int
        /// How long children may take to exit after SIGTERM before SIGKILL.
        public var killAfter: Duration
        /// How long the workers get to leave by themselves once the learner finished.
        public var grace: Duration

        /// Options of a launch of `workers` workers.
        public init(
            executable: String, learnerArguments: [String], workerArguments: [String],
            perWorkerArguments: [[String]] = [], workers: Int, maxRestarts: Int, killAfter: Duration,
            grace: Duration = .seconds(3)
        ) {
            self.perWorkerArguments = perWorkerArguments
            self.executable = executable
            self.learnerArguments = learnerArguments
            self.workerArguments = workerArguments
            self.workers = workers
            self.maxRestarts = maxRestarts
            self.killAfter = killAfter
            self.grace = grace
        }

        /// The arguments of `role`'s child (a learner on `endpoint`, a worker connecting to it).
        func arguments(_ role: SupervisorMachine.Role, endpoint: String?) -> [String] {
            switch role {
            case .learner:
                guard let endpoint else { return learnerArguments }
                var arguments = learnerArguments
                if let i = arguments.firstIndex(of: "--bind"), i + 1 < arguments.count {
                    arguments[i + 1] = endpoint
                }
                return arguments
            case .worker(let i):
                return ["worker", "--learner", endpoint ?? "", "--name", "worker-\(i)"] + workerArguments
                    + (perWorkerArguments.indices.contains(i) ? perWorkerArguments[i] : [])
            }
        }
    }

    let options: Options
    let logger: Logger
    let started: @Sendable (SupervisorMachine.Role, Int32) -> Void

    /// A supervisor of `options`; `started` is told the role and pid of every child it starts.
    public init(
        options: Options, logger: Logger,
        started: @escaping @Sendable (SupervisorMachine.Role, Int32) -> Void = {
            _, _ in
        }
    ) {
        self.options = options
        self.logger = logger
        self.started = started
    }

    public var description: String { "LaunchSupervisor(\(options.workers) workers)" }

    /// The path of the running executable.
    public static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
    }

    /// Runs until every child has exited.
    /// - Throws: ``RuntimeError`` if the learner did not exit with status 0, or a child cannot start.
    public func run() async throws {
        let (events, continuation) = AsyncStream.makeStream(of: SupervisorMachine.Event.self)
        let status = try await withGracefulShutdownHandler {
            try await supervise(events, continuation)
        } onGracefulShutdown: {
            continuation.yield(.stop)
        }
        guard status == 0 else {
            throw RuntimeError("the learner exited with status \(status.map(String.init) ?? "?")")
        }
    }

    /// The event loop; the learner's exit status.
    private func supervise(
        _ events: AsyncStream<SupervisorMachine.Event>,
        _ continuation: AsyncStream<SupervisorMachine.Event>.Continuation
    ) async throws -> Int32? {
        var machine = SupervisorMachine(workers: options.workers, maxRestarts: options.maxRestarts)
        var children: [SupervisorMachine.Role: ChildProcess] = [:]
        var timers: [Task<Void, Never>] = []
        defer {
            for timer in timers { timer.cancel() }
            for child in children.values { child.signal(SIGKILL) }  // only if something threw
            continuation.finish()
        }
        func perform(_ actions: [SupervisorMachine.Action]) throws {
            for action in actions {
                switch action {
                case .spawn(let role, let endpoint, let restart):
                    if role == .worker(0), restart == 0, let endpoint {
                        logger.info("learner listening on \(endpoint); starting \(options.workers) workers")
                    }
                    let child = try ChildProcess(
                        role: role, executable: options.executable,
                        arguments: options.arguments(role, endpoint: endpoint), events: continuation)
                    children[role] = child
                    started(role, child.pid)
                case .signal(let role, let signal):
                    guard let child = children[role] else { continue }
                    if signal == .kill { logger.warning("killing \(role) (pid \(child.pid))") }
                    child.signal(signal == .kill ? SIGKILL : SIGTERM)
                case .arm(let timer):
                    let delay = timer == .grace ? options.grace : options.killAfter
                    timers.append(
                        Task {
                            guard (try? await Task.sleep(for: delay)) != nil else { return }
                            continuation.yield(.timer(timer))
                        })
                }
            }
        }
        try perform(machine.start())
        for await event in events {
            let actions = machine.handle(event)
            switch event {
            case .exited(let role, let status):
                children[role] = nil
                let restart = actions.lazy.compactMap { action -> String? in
                    guard case .spawn(role, let endpoint, let count) = action else { return nil }
                    return "; restart \(count)" + (role == .learner ? " on \(endpoint ?? "?")" : "")
                }.first
                if status != 0 || restart != nil {
                    logger.warning("the \(role) exited with status \(status)\(restart ?? "")")
                }
            case .stop:
                logger.notice("stopping: asking every child to drain")
            default:
                break
            }
            try perform(actions)
            if machine.isFinished { break }
        }
        return machine.learnerStatus
    }
}

/// The learner's readiness handshake with `rein launch`: one line on its stdout, written once it
/// listens, naming the endpoint workers connect to. Typed here, on both sides: the launcher does
/// not read log text.
public enum ReadyHandshake {
    static let prefix = "rein-ready "

    private struct Payload: Codable {
        var endpoint: String
    }

    /// The handshake line of a learner listening on `endpoint`.
    public static func line(endpoint: String) -> String {
        let json = (try? JSONEncoder().encode(Payload(endpoint: endpoint))).map {
            String(decoding: $0, as: UTF8.self)
        }
        return prefix + (json ?? "{}")
    }

    /// The endpoint announced by `line`, if it is a handshake.
    public static func endpoint(in line: String) -> String? {
        guard line.hasPrefix(prefix) else { return nil }
        return try? JSONDecoder().decode(Payload.self, from: Data(line.dropFirst(prefix.count).utf8)).endpoint
    }
}

/// A child process whose stdout and stderr lines are copied to ours with a `[name]` prefix, and
/// whose exit (once its output reached end of file) and readiness handshake become events.
final class ChildProcess: Sendable {
    let role: SupervisorMachine.Role
    private let process: Process
    /// Held open, never written: the child reads end of file when we die.
    private let stdin = Pipe()
    private let outBuffer = LineBuffer()
    private let errBuffer = LineBuffer()
    /// Which ends came (stdout, stderr, the exit and its status), and whether the exit was reported.
    private let ending = Mutex(Ending())

    private struct Ending {
        var closed: Set<Bool> = []  // isStdout of each stream at end of file
        var status: Int32?
        var reported = false
    }
    private let events: AsyncStream<SupervisorMachine.Event>.Continuation

    init(
        role: SupervisorMachine.Role, executable: String, arguments: [String],
        events: AsyncStream<SupervisorMachine.Event>.Continuation
    ) throws {
        self.role = role
        self.events = events
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardInput = stdin
        process.standardOutput = out
        process.standardError = err
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.consume(handle, isStdout: true)
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.consume(handle, isStdout: false)
        }
        process.terminationHandler = { [weak self] process in
            self?.ended(status: process.terminationStatus)
        }
        do {
            try process.run()
        } catch {
            throw RuntimeError("cannot start \(role) (\(executable)): \(error)")
        }
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    private func consume(_ handle: FileHandle, isStdout: Bool) {
        let data = handle.availableData
        let lines = (isStdout ? outBuffer : errBuffer).lines(adding: data)
        for line in lines {
            if isStdout, role == .learner, let endpoint = ReadyHandshake.endpoint(in: line) {
                events.yield(.ready(endpoint: endpoint))
                continue
            }
            let text = Data("[\(role)] \(line)\n".utf8)
            (isStdout ? FileHandle.standardOutput : FileHandle.standardError).write(text)
        }
        if data.isEmpty {
            handle.readabilityHandler = nil
            ended(stream: isStdout)
        }
    }

    /// One end: an output stream's end of file, or the exit (`status`); the exit event goes out once,
    /// after all three, so the child's last lines come before it — or one second after the exit if
    /// an end of file never comes (a pipe inherited by another process, or not reported).
    private func ended(stream: Bool? = nil, status: Int32? = nil, force: Bool = false) {
        let exited = ending.withLock { ending -> Int32? in
            if let stream { ending.closed.insert(stream) }
            if let status { ending.status = status }
            guard ending.closed.count == 2 || force, let status = ending.status, !ending.reported else {
                return nil
            }
            ending.reported = true
            return status
        }
        if let exited {
            events.yield(.exited(role, status: exited))
        } else if status != nil {
            Task { [weak self] in
                try? await Task.sleep(for: .seconds(1))
                self?.ended(force: true)
            }
        }
    }
}

/// Bytes read from a pipe, cut into complete lines.
public final class LineBuffer: Sendable {
    private let pending = Mutex<[UInt8]>([])

    public init() {}

    /// The complete lines after adding `data` (empty `data`: end of file, flush a partial line).
    public func lines(adding data: Data) -> [String] {
        pending.withLock { pending in
            if data.isEmpty {
                defer { pending = [] }
                return pending.isEmpty ? [] : [String(decoding: pending, as: UTF8.self)]
            }
            pending.append(contentsOf: data)
            var complete: [String] = []
            while let newline = pending.firstIndex(of: 10) {
                complete.append(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
            return complete
        }
    }
}
