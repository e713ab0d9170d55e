import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinRuntime
import ServiceLifecycle

/// `rein launch`: a learner and N workers as child processes on this host.
struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Run `rein learner` and N `rein worker` processes on this host (loopback TCP).",
        discussion: """
            Child output is prefixed with [learner] / [worker-i]. The workers are started once the \
            learner reports its endpoint (a handshake line on its stdout). A worker \
            that crashes is restarted (up to --max-restarts times each); so is a crashed learner, on the same endpoint: it \
            resumes from its last checkpoint and the workers reconnect to it. Ctrl-C or SIGTERM asks \
            every child to drain and exit; children still running after --kill-after seconds are \
            killed. Exits with the learner's status. With --curve every child runs with CURVE: \
            the launch generates a key pair for the learner and one per worker in a private (0700) \
            temporary directory, puts the workers' public keys on the learner's allow-list, and \
            removes the keys when it ends. A configuration's security: keys are per node \
            (rein learner / rein worker); launch refuses them without --curve.
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
        help: "Run every child with CURVE, on fresh key pairs made for this launch (removed when it ends).")
    var curve = false

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
        if config.security.isSet, !curve {
            throw CLIError(
                "config: security: its key files are one node's (rein learner / rein worker); rein launch makes its children's keys with --curve"
            )
        }
        if fresh { try CheckpointStore(folder: try RunFolder(path: config.runDir)).removeAll() }
        let keys = try curve ? launchKeys() : nil
        defer { keys?.remove() }
        try await ServiceGroup.node(
            [LaunchSupervisor(options: try supervisorOptions(config, keys: keys), logger: logger)],
            logger: logger
        )
        .run()
    }

    /// Fresh key pairs for this launch's children (`--curve`).
    func launchKeys() throws -> LaunchKeys {
        do {
            return try LaunchKeys.generate(workers: workers)
        } catch let error as TransportSecurityError {
            throw CLIError(error.message)
        } catch {
            throw CLIError("cannot generate the launch's CURVE keys: \(error)")
        }
    }

    /// The children's command lines: the learner on `--bind` (with the readiness handshake), every
    /// child with the shared configuration and `--exit-with-parent`, each its own metrics port, and
    /// with `keys` each its key files.
    func supervisorOptions(_ config: RunConfig, keys: LaunchKeys? = nil) throws -> LaunchSupervisor.Options {
        var shared: [String] = []
        if let config = options.config { shared += ["--config", config] }
        if let task = options.task { shared += ["--task", task] }
        for item in options.overrides { shared += ["--set", item] }
        shared += node.arguments + ["--exit-with-parent"]
        var learner =
            ["learner", "--bind", bind, "--handshake"] + shared
            + (try metrics.childArguments(config, index: 0, children: workers + 1))
        if let seed = reference.randomReference { learner += ["--random-reference", "\(seed)"] }
        if let keys { learner += keys.learnerArguments }
        return LaunchSupervisor.Options(
            executable: executable ?? LaunchSupervisor.currentExecutable(), learnerArguments: learner,
            workerArguments: shared,
            perWorkerArguments: try (0..<workers).map {
                try metrics.childArguments(config, index: $0 + 1, children: workers + 1)
                    + (keys?.workerArguments($0) ?? [])
            }, workers: workers, maxRestarts: maxRestarts, killAfter: .milliseconds(Int(killAfter * 1000)))
    }
}
