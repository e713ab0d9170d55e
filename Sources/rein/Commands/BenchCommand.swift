import ArgumentParser

/// `rein bench …`: performance measurements, each against its external peer when one is available.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Rein's components against their peers.",
        subcommands: [ModelBench.self]
    )
}
