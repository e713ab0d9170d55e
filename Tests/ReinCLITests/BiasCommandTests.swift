import Foundation
import ReinModel
import ReinTasks
import Testing

@testable import ReinCLI

@Suite("rein bias")
struct BiasCommandTests {
    @Test func measuresThreeCheckpointsAndPrintsJSON() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-bias-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let gpt = GPTConfig(vocab: Tokenizer.standard.vocabSize, context: 16, dModel: 16, layers: 1, heads: 2)
        for (name, seed) in [("ref", 5), ("policy", 6), ("mu", 7)] {
            try Checkpoint.save(
                try GPTParameters(config: gpt, seed: UInt64(seed)), to: "\(dir)/\(name).safetensors")
        }
        let arguments = [
            "bias", "--policy", "\(dir)/policy.safetensors", "--behaviour", "\(dir)/mu.safetensors",
            "--reference", "\(dir)/ref.safetensors", "--samples", "8", "--set", "threads=1",
        ]
        let json = try await runRein(arguments + ["--json"])
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["sequences"] as? Int == 8)
        let forms = try #require(object["forms"] as? [[String: Any]])
        #expect(forms.contains { $0["id"] as? String == "k2_loss_sgw_token" })
        let table = try await runRein(arguments)
        #expect(table.contains("| `k2_loss` |") && table.contains("prefix shift"))
        await #expect(throws: CLIError.self) {
            _ = try await runRein(["bias", "--policy", "\(dir)/none", "--behaviour", "x", "--reference", "y"])
        }
    }
}
