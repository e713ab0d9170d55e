import Foundation
import Testing

@Suite("rein report")
struct ReportCommandTests {
    let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ReinReportTests/Fixtures/run-lag4").path

    @Test func writesTheReportFiles() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-report-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let output = try await runRein(["report", fixture, "--out", out])
        #expect(output.contains("run-lag4: 6 steps, 6 tracker observations"))
        for name in ["report.html", "report.json", "bias.csv", "curves.csv"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + name), "\(name)")
        }
    }

    @Test func namesAFolderThatIsNotARun() async throws {
        let message = try #require(await userMessage(["report", "/nonexistent/run"]))
        #expect(message.contains("/nonexistent/run") && message.contains("not a run folder"))
    }
}
