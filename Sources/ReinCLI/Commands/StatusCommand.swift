import ArgumentParser
import Foundation
import Rein
import ReinRuntime

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
            read = try LearnerStatus.read(runDir: dir)
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
