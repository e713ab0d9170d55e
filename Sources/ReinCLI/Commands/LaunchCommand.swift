import ArgumentParser
import Foundation
import Logging
import Rein
import ReinRuntime
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `rein launch`: a learner and N workers as child processes on this host.
struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Run `rein learner` and N `rein worker` processes on this host (loopback TCP).",
        discussion: """
            Child output is prefixed with [learner] / [worker-i]. The workers are started once the \
            learner's status.json in run_dir says it is listening (and on which endpoint). A worker \
            that crashes is restarted (up to --max-restarts times each); so is a crashed learner, on the same endpoint: it \
            resumes from its last checkpoint and the workers reconnect to it. Ctrl-C or SIGTERM asks \
            every child to drain and exit; children still running after --kill-after seconds are \
            killed. Exits with the learner's status.
            """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var reference: ReferenceOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup(title: "Metrics (the learner on PORT, worker i on PORT+1+i)") var metrics: MetricsOptions

    @Option(name: .long, help: "Number of rollout worker processes.")
    var workers = 2

    @Option(name: .long, help: "The learner's endpoint (port * picks a free one).")
    var bind = "tcp://127.0.0.1:*"

    @Option(name: .long, help: "Restarts allowed per crashed worker (and for the learner).")
    var maxRestarts = 3

    @Option(name: .long, help: "Seconds to wait for children to exit after asking them to stop.")
    var killAfter = 15.0

    @Flag(
        name: .long,
        help:
            "Start over even if run_dir has a checkpoint (removes it first; a restarted learner still resumes)."
    )
    var fresh = false

    @Option(
        name: .long,
        help: ArgumentHelp("The rein executable to spawn (default: this one).", visibility: .hidden))
    var executable: String?

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
    }

    func run() async throws {
        let logger = Logger(label: "rein.launch")
        let config = try options.load()
        let runDir = config.runDir
        if fresh { try CheckpointStore(folder: try RunFolder(path: runDir)).removeAll() }
        var shared: [String] = []
        if let config = options.config { shared += ["--config", config] }
        if let task = options.task { shared += ["--task", task] }
        for item in options.overrides { shared += ["--set", item] }
        shared += node.arguments + ["--exit-with-parent"]
        var learnerArgs =
            ["learner", "--bind", bind] + shared
            + (try metrics.childArguments(config, index: 0, children: workers + 1))
        if let seed = reference.randomReference { learnerArgs += ["--random-reference", "\(seed)"] }
        let supervisor = Supervisor(
            executable: executable ?? Supervisor.currentExecutable(), learnerArguments: learnerArgs,
            workerArguments: shared,
            perWorkerArguments: try (0..<workers).map {
                try metrics.childArguments(config, index: $0 + 1, children: workers + 1)
            }, runDir: runDir, workers: workers, maxRestarts: maxRestarts,
            killAfter: .milliseconds(Int(killAfter * 1000)), logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: supervisor, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        let status = supervisor.learnerStatus
        guard status == 0 else {
            throw CLIError("the learner exited with status \(status.map(String.init) ?? "?")")
        }
    }
}

/// Runs the learner and the workers as child processes, prefixes their output, restarts crashed
/// workers, and stops them all on graceful shutdown.
final class Supervisor: Service, Sendable {
    let executable: String
    let learnerArguments: [String]
    let workerArguments: [String]
    /// Arguments of worker i only (its metrics port), after ``workerArguments``.
    let perWorkerArguments: [[String]]
    /// The run folder, where the learner reports its endpoint (status.json).
    let runDir: String
    let workers: Int
    let maxRestarts: Int
    let killAfter: Duration
    let logger: Logger
    private let status = Mutex<Int32?>(nil)

    init(
        executable: String, learnerArguments: [String], workerArguments: [String],
        perWorkerArguments: [[String]] = [], runDir: String,
        workers: Int, maxRestarts: Int, killAfter: Duration, logger: Logger
    ) {
        self.runDir = runDir
        self.executable = executable
        self.learnerArguments = learnerArguments
        self.workerArguments = workerArguments
        self.perWorkerArguments = perWorkerArguments
        self.workers = workers
        self.maxRestarts = maxRestarts
        self.killAfter = killAfter
        self.logger = logger
    }

    /// The learner's exit status, once it exited.
    var learnerStatus: Int32? { status.withLock { $0 } }

    /// `arguments` with the value of `--bind` replaced by `endpoint` (the port the first learner got).
    static func rebind(_ arguments: [String], to endpoint: String) -> [String] {
        var result = arguments
        if let i = result.firstIndex(of: "--bind"), i + 1 < result.count { result[i + 1] = endpoint }
        return result
    }

    /// The arguments of worker `i` only.
    private func arguments(ofWorker i: Int) -> [String] {
        perWorkerArguments.indices.contains(i) ? perWorkerArguments[i] : []
    }

    /// The path of the running executable.
    static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
    }

    /// The endpoint `learner` reports in `runDir/status.json` once it listens (`nil` before, or
    /// while the status is another process's: a learner of an earlier run).
    static func listeningEndpoint(of learner: Child, runDir: String) -> String? {
        guard let status = try? RunFolder.existing(runDir).read(LearnerStatus.self, from: .status),
            status.pid == learner.pid, status.state == .listening
        else { return nil }
        return status.endpoint
    }

    func run() async throws {
        let stop = StopSignal()
        try await withGracefulShutdownHandler {
            try await supervise(stop: stop)
        } onGracefulShutdown: {
            stop.stop()
        }
    }

    private func supervise(stop: StopSignal) async throws {
        var learner = try Child(name: "learner", executable: executable, arguments: learnerArguments)
        var children: [Child] = [learner]
        defer { for child in children where child.isRunning { child.signal(SIGKILL) } }
        let clock = ContinuousClock()
        let bindDeadline = clock.now + .seconds(60)
        var endpoint: String?
        while endpoint == nil {
            endpoint = Self.listeningEndpoint(of: learner, runDir: runDir)
            if !learner.isRunning || stop.isStopped || clock.now > bindDeadline { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        var workerChildren: [Child] = []
        var restarts = Array(repeating: 0, count: workers)
        if let endpoint {
            logger.info("learner listening on \(endpoint); starting \(workers) workers")
            for i in 0..<workers {
                let child = try Child(
                    name: "worker-\(i)", executable: executable,
                    arguments: ["worker", "--learner", endpoint, "--name", "worker-\(i)"] + workerArguments
                        + arguments(ofWorker: i))
                workerChildren.append(child)
                children.append(child)
            }
        }
        var stopSent: ContinuousClock.Instant?
        var learnerRestarts = 0
        while true {
            if !learner.isRunning {
                // A crashed learner comes back on the same endpoint and resumes from its checkpoint;
                // the workers reconnect to it by themselves.
                guard stopSent == nil, !stop.isStopped, learner.exitStatus != 0, let endpoint,
                    learnerRestarts < maxRestarts
                else { break }
                learnerRestarts += 1
                logger.warning(
                    "the learner exited with status \(learner.exitStatus ?? 0); restart \(learnerRestarts) on \(endpoint)"
                )
                learner = try Child(
                    name: "learner", executable: executable,
                    arguments: Self.rebind(learnerArguments, to: endpoint))
                children.append(learner)
            }
            if stopSent == nil, stop.isStopped {
                logger.notice("stopping: asking every child to drain")
                for child in children where child.isRunning { child.signal(SIGTERM) }
                stopSent = clock.now
            }
            if let stopSent, clock.now - stopSent > killAfter { break }
            if stopSent == nil, let endpoint {
                for i in workerChildren.indices
                where !workerChildren[i].isRunning && workerChildren[i].exitStatus != 0 {
                    guard restarts[i] < maxRestarts else { continue }
                    restarts[i] += 1
                    logger.warning(
                        "worker-\(i) exited with status \(workerChildren[i].exitStatus ?? 0); restart \(restarts[i])"
                    )
                    let child = try Child(
                        name: "worker-\(i)", executable: executable,
                        arguments: ["worker", "--learner", endpoint, "--name", "worker-\(i)"]
                            + workerArguments + arguments(ofWorker: i))
                    workerChildren[i] = child
                    children.append(child)
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        // The learner is done (or would not stop): give the workers a moment, then stop them.
        let end = clock.now
        var termSent = false
        while children.contains(where: \.isRunning) {
            if clock.now - end > .seconds(3), !termSent {
                for child in children where child.isRunning { child.signal(SIGTERM) }
                termSent = true
            }
            if clock.now - end > killAfter {
                for child in children where child.isRunning {
                    logger.warning("killing \(child.name) (pid \(child.pid))")
                    child.signal(SIGKILL)
                }
                break
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        for child in children { child.waitUntilExit() }
        status.withLock { $0 = learner.exitStatus }
    }
}

/// A child process whose stdout and stderr lines are copied to ours with a `[name]` prefix.
final class Child: Sendable {
    let name: String
    private let process: Process
    private let outBuffer = LineBuffer()
    private let errBuffer = LineBuffer()

    init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.consume(handle.availableData, isStdout: true)
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.consume(handle.availableData, isStdout: false)
        }
        do {
            try process.run()
        } catch {
            throw CLIError("cannot start \(name) (\(executable)): \(error)")
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    /// The exit status (or terminating signal), once exited.
    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }
    func waitUntilExit() { process.waitUntilExit() }

    private func consume(_ data: Data, isStdout: Bool) {
        let lines = (isStdout ? outBuffer : errBuffer).lines(adding: data)
        for line in lines {
            let text = Data("[\(name)] \(line)\n".utf8)
            if isStdout {
                FileHandle.standardOutput.write(text)
            } else {
                FileHandle.standardError.write(text)
            }
        }
    }
}

/// Bytes read from a pipe, cut into complete lines.
final class LineBuffer: Sendable {
    private let pending = Mutex<[UInt8]>([])

    /// The complete lines after adding `data` (empty `data`: end of file, flush a partial line).
    func lines(adding data: Data) -> [String] {
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
