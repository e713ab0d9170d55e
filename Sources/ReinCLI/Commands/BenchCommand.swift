import ArgumentParser

/// `rein bench`: micro-benchmarks of the hot paths.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks; each compares against a peer or a ceiling measured in the same run.",
        subcommands: [
            TransportBench.self, ModelBench.self, KLBench.self, RuntimeBench.self, E2EBench.self,
            TransportPeer.self,
        ]
    )
}
