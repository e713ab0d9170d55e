import Foundation
import ReinKL
import Testing

/// The independent float64 reference values of `rein kl exact` (three tabular policies).
struct ExactVectors: Decodable {
    struct Case: Decodable {
        var vocab: Int
        var length: Int
        var theta: [[Double]]
        var behaviour: [[Double]]
        var reference: [[Double]]
        var expected: Expected
    }
    struct Expected: Decodable {
        var gradients: [String: [[Double]]]
        var targets: [String: [[Double]]]
    }
    var description: String
    var cases: [Case]

    static func load() throws -> ExactVectors {
        let url = try #require(
            Bundle.module.url(
                forResource: "kl-exact-vectors", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(ExactVectors.self, from: Data(contentsOf: url))
    }
}

@Suite("Reference vectors of rein kl exact")
struct FixtureTests {
    @Test("Every id and target matches the independent float64 values to 1e-9")
    func matchesFixture() throws {
        let vectors = try ExactVectors.load()
        #expect(vectors.cases.count == 3)
        for (index, fixture) in vectors.cases.enumerated() {
            let policy = try TabularPolicy(
                vocab: fixture.vocab, length: fixture.length, theta: fixture.theta,
                behaviour: fixture.behaviour, reference: fixture.reference)
            let gradients = try policy.expectedGradients(of: KLImplementation.required)
            #expect(Set(gradients.keys) == Set(fixture.expected.gradients.keys))
            for (id, expected) in fixture.expected.gradients {
                let actual = try #require(gradients[id], "case \(index): missing \(id)")
                expectClose(actual, expected, tolerance: 1e-9, "case \(index) \(id)")
            }
            for target in KLTarget.required {
                let expected = try #require(fixture.expected.targets[target.rawValue])
                expectClose(
                    policy.exactGradient(of: target), expected, tolerance: 1e-9,
                    "case \(index) \(target.rawValue)")
            }
        }
    }
}
