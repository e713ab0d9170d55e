import ArgumentParser
import Foundation
import Logging
import Rein
import ReinModel
import ZeroMQ

/// The `rein` command line: the only place that configures logging and reads config files.
///
/// The commands live in this library (not in the executable) so that tests can run them.
public struct Rein: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "rein",
        abstract: "Distributed rollout/learner system for KL-regularised RL of language-model policies.",
        discussion:
            "Logging goes to stderr; set REIN_LOG_LEVEL (trace, debug, info, notice, warning, error).",
        version: "rein \(version) (libzmq \(ZMQVersion.current))",
        subcommands: [
            PretrainCommand.self, TrainCommand.self, SummarizeCommand.self, ReportCommand.self,
            ExperimentCommand.self, ConfigCommand.self, KLCommand.self,
            ModelCommand.self,
            TaskCommand.self,
            BenchCommand.self, LearnerCommand.self, WorkerCommand.self, LaunchCommand.self,
            StatusCommand.self, KeysCommand.self, FuzzWireCommand.self, TopCommand.self, BiasCommand.self,
        ]
    )

    /// Configures logging once, then parses and runs the command. Errors end as one line on stderr.
    public static func main() async {
        bootstrapLogging()
        do {
            var command = try parseAsRoot()
            // The transport benchmark compares the binding with a raw C peer under glibc's default
            // allocation policy; with large blocks returned at once, every 1 MiB message costs a
            // fresh mmap and 256 page faults on both sides (0.3–0.5× the C peer instead of ~1×).
            if !(command is TransportPeer) { ProcessMemory.returnFreedLargeBlocks() }
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: RunFolderError.fileError(error) ?? error)
        }
    }

    public init() {}

    static func bootstrapLogging() {
        let environment = ProcessInfo.processInfo.environment
        let level = environment["REIN_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
