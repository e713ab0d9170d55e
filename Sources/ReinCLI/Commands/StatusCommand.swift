import ArgumentParser
import Foundation
import Rein
import ReinRuntime

/// What a running `rein learner` says about itself in `RUN_DIR/status.json`, rewritten atomically
/// every few seconds: enough for a readiness probe (Kubernetes, systemd, scripts) to tell a live,
/// listening learner from a dead or finished one without speaking the wire protocol.
struct LearnerStatus: Codable, Equatable {
    enum State: String, Codable {
        /// Bound and serving workers.
        case listening
        /// Trained every step and wrote the run folder.
        case finished
        /// Stopped with an error.
        case failed
    }

    var state: State
    /// The endpoint workers connect to.
    var endpoint: String
    var pid: Int32
    var host: String
    /// Policy version (optimizer steps taken).
    var version: Int
    /// Workers currently joined.
    var workers: Int
    /// Samples trained so far.
    var trained: Int
    /// Seconds since 1970 of this write.
    var updated: Double

    static let file = RunFile.status.rawValue

    func write(to folder: RunFolder) throws {
        try folder.write(self, as: .status, pretty: false)
    }

    /// Rewrites the status of `learner` every `interval` until cancelled.
    static func keepWriting(
        learner: LearnerActor, endpoint: String, folder: RunFolder, interval: Duration = .seconds(2)
    ) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                if let status = try? await current(learner: learner, endpoint: endpoint, state: .listening) {
                    try? status.write(to: folder)
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    static func current(learner: LearnerActor, endpoint: String, state: State) async throws -> LearnerStatus {
        LearnerStatus(
            state: state, endpoint: endpoint, pid: getpid(), host: ProcessInfo.processInfo.hostName,
            version: try await learner.currentVersion(), workers: try await learner.workerCount(),
            trained: try await learner.currentLedger().trained,
            updated: Date().timeIntervalSince1970)
    }
}

/// `rein status`: reads a learner's `status.json`; exits 0 only while it is listening and fresh.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Report whether the learner of a run folder is up (a readiness probe).",
        discussion: """
            Reads RUN_DIR/status.json, which `rein learner` rewrites every 2 s. Prints one line; exits 0 \
            when the learner is listening and wrote its status less than --max-age seconds ago (and, on \
            this host, its process is alive), 1 otherwise.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "The run folder (default: run_dir of the configuration).")
    var runDir: String?

    @Option(name: .long, help: "Seconds after which a status is stale (the learner is hung or gone).")
    var maxAge = 10.0

    func run() async throws {
        let dir = try runDir ?? options.load().runDir
        let path = (dir as NSString).appendingPathComponent(LearnerStatus.file)
        let read: LearnerStatus?
        do {
            read = try RunFolder.existing(dir).read(LearnerStatus.self, from: .status)
        } catch {
            throw CLIError("unreadable learner status: \(error)")
        }
        guard let status = read else { throw CLIError("no learner status at \(path) (not started yet?)") }
        let age = Date().timeIntervalSince1970 - status.updated
        let summary = String(
            format:
                "learner %@ on %@ (pid %d on %@): version %d, %d workers, %d samples trained; updated %.1f s ago",
            status.state.rawValue, status.endpoint, status.pid, status.host, status.version, status.workers,
            status.trained, age)
        guard status.state == .listening else { throw CLIError(summary) }
        guard age <= maxAge else { throw CLIError(summary + " (stale: more than \(maxAge) s)") }
        if status.host == ProcessInfo.processInfo.hostName, kill(status.pid, 0) != 0, errno == ESRCH {
            throw CLIError(summary + " (but no process \(status.pid) runs here)")
        }
        emit(summary)
    }
}
