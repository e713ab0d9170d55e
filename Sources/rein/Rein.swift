import ArgumentParser
import Logging
import ZeroMQ

/// The `rein` command line: the only place that configures logging and reads config files.
@main
struct Rein: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "rein",
        abstract: "Distributed rollout/learner system for KL-regularised RL of language-model policies.",
        version: "rein \(version) (libzmq \(ZMQVersion.current))",
        subcommands: [ModelCommand.self, BenchCommand.self]
    )
}
