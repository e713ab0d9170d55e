import ArgumentParser
import Foundation

/// `rein bench`: micro-benchmarks of the hot paths.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks; each compares against a peer or a ceiling measured in the same run.",
        subcommands: [
            TransportBench.self, ModelBench.self, KLBench.self, RuntimeBench.self, E2EBench.self,
            TransportPeer.self, ScaleBench.self, ScaleWorkers.self,
        ]
    )
}

/// The load average when a benchmark starts (its own work raises it; other builds make figures noisy).
func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
        .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
}
