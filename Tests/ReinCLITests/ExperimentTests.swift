import Foundation
import ReinKL
import Testing

@Suite("rein experiment tabular")
struct ExperimentTests {
    struct Cell: Decodable {
        var id: String
        var final_relative_error: Double
    }
    struct LagResult: Decodable {
        var lag: Int
        var cells: [Cell]
    }
    struct Exact: Decodable {
        var gradients: [String: [[Double]]]
        var targets: [String: [[Double]]]
    }

    @Test func agreesWithKLExactOnEachLagsFinalPolicy() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-exp-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let output = try await runRein([
            "experiment", "tabular", "--steps", "4", "--lags", "0,2", "--vocab", "3", "--length", "2",
            "--train-with", "k2_loss", "--json", "--dump", dir,
        ])
        let results = try JSONDecoder().decode([LagResult].self, from: Data(output.utf8))
        #expect(results.map(\.lag) == [0, 2])
        for result in results {
            let exactOutput = try await runRein([
                "kl", "exact", "--policy", dir + "/policy-lag\(result.lag).json", "--json",
            ])
            let exact = try JSONDecoder().decode(Exact.self, from: Data(exactOutput.utf8))
            let target = try #require(exact.targets["rkl_seq"])
            var compared = 0
            for cell in result.cells {
                guard let g = exact.gradients[cell.id] else { continue }
                #expect(
                    abs(GradientComparison.relativeError(g, to: target) - cell.final_relative_error) < 1e-9,
                    "\(cell.id) at lag \(result.lag)")
                compared += 1
            }
            #expect(compared == 10)
        }
    }
}
