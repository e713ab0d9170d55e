import ArgumentParser

/// `rein bench`: micro-benchmarks of the hot paths.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the cost of Rein's hot paths.",
        subcommands: [KLBench.self]
    )
}
