import Foundation
import Testing

@testable import ReinActors
@testable import ReinRuntime

/// The calls a worker in another language makes are written down by their mangled target
/// identifiers (docs/wire-protocol.md, `clients/python/tests/golden/targets.json`): each must still
/// name that method of ``LearnerActor``, the check the learner makes before anything runs.
@Suite("Worker protocol targets")
struct WorkerProtocolTests {
    struct Targets: Decodable { var targets: [String: String] }

    @Test func theDocumentedTargetsNameTheLearnersMethods() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../clients/python/tests/golden/targets.json").standardized
        let targets = try JSONDecoder().decode(Targets.self, from: Data(contentsOf: url)).targets
        #expect(targets.count == 3)
        for (method, identifier) in targets {
            #expect(InvocationTarget.method(identifier, on: LearnerActor.self) == method, "\(identifier)")
            #expect(
                LearnerActor.allowedCallers[method]?.contains(.worker) == true, "\(method) is open to workers"
            )
        }
    }
}
