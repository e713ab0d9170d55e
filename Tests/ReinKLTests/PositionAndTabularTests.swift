import Foundation
import PropertyBased
import ReinKL
import Testing

/// The exact per-position helpers and the tabular policy type.
@Suite("KLPosition and TabularPolicy")
struct PositionAndTabularTests {
    @Test("Position RKL/FKL values and gradients match finite differences")
    func positionKL() async {
        await propertyCheck(count: 10, input: seeds, Gen.int(in: 2...8)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let position = try KLPosition(
                thetaLogits: p.theta[0], behaviourLogits: p.behaviour[0], referenceLogits: p.reference[0])
            let oracle = OracleTabular(p)
            expectClose(position.reverseKL, oracle.reverseKL(p.theta), tolerance: 1e-14, "RKL")
            expectClose(position.forwardKL, oracle.forwardKL(p.theta), tolerance: 1e-14, "FKL")
            let truth = Truth(p)
            expectClose(position.reverseKLGradient, truth.reverseKL[0], tolerance: fdTolerance, "∇RKL")
            expectClose(position.forwardKLGradient, truth.forwardKL[0], tolerance: fdTolerance, "∇FKL")
        }
    }

    @Test("Position expected gradients equal the length-1 tabular enumeration for every id")
    func positionMatchesTabular() throws {
        for seed in 0..<4 {
            let p = try offPolicy(vocab: 5, length: 1, seed: seed)
            let position = try KLPosition(
                thetaLogits: p.theta[0], behaviourLogits: p.behaviour[0], referenceLogits: p.reference[0])
            let all = try position.expectedGradients(of: KLImplementation.catalog)
            for (implementation, g) in zip(KLImplementation.catalog, all) {
                expectClose(
                    g, try p.expectedGradient(of: implementation.configuration)[0], tolerance: exactTolerance,
                    implementation.id)
            }
        }
        #expect(throws: KLPositionError.widthMismatch(theta: 2, behaviour: 3, reference: 2)) {
            try KLPosition(thetaLogits: [0, 1], behaviourLogits: [0, 1, 2], referenceLogits: [0, 0])
        }
        #expect(throws: KLPositionError.nonFinite(name: "reference", index: 1)) {
            try KLPosition(thetaLogits: [0, 1], behaviourLogits: [0, 1], referenceLogits: [0, .nan])
        }
    }

    @Test("Tabular layout: row order, counts, validation errors")
    func tabularLayout() throws {
        #expect(TabularPolicy.rowCount(vocab: 3, length: 3) == 13)
        #expect(TabularPolicy.rowCount(vocab: 1, length: 4) == 4)
        let p = try onPolicy(vocab: 3, length: 3, seed: 1)
        #expect(p.rowIndex(prefix: []) == 0)
        #expect(p.rowIndex(prefix: [2]) == 3)
        #expect(p.rowIndex(prefix: [1, 0]) == 7)
        #expect(p.rowIndex(prefix: [2, 2]) == 12)
        var visited: [[Int]] = []
        p.forEachSequence { visited.append($0.tokens) }
        #expect(
            visited.count == 27 && visited.first == [0, 0, 0] && visited[1] == [0, 0, 1]
                && visited.last == [2, 2, 2])
        let oracle = OracleTabular(p)
        p.forEachSequence { s in
            #expect(s.rows == (0..<3).map { oracle.row(Array(s.tokens[..<$0])) })
        }
        let row = [0.0, 0, 0]
        #expect(throws: TabularPolicyError.tooManySequences(vocab: 10, length: 7)) {
            try TabularPolicy(vocab: 10, length: 7, theta: [], behaviour: [], reference: [])
        }
        #expect(throws: TabularPolicyError.wrongRowCount(name: "behaviour", expected: 4, actual: 3)) {
            try TabularPolicy(
                vocab: 3, length: 2, theta: [row, row, row, row], behaviour: [row, row, row],
                reference: [row, row, row, row])
        }
        #expect(throws: TabularPolicyError.wrongRowWidth(name: "theta", row: 1, expected: 3, actual: 2)) {
            try TabularPolicy(
                vocab: 3, length: 2, theta: [row, [0, 0], row, row], behaviour: [row, row, row, row],
                reference: [row, row, row, row])
        }
        #expect(throws: TabularPolicyError.nonFinite(name: "reference", row: 0, column: 2)) {
            try TabularPolicy(
                vocab: 3, length: 1, theta: [row], behaviour: [row], reference: [[0, 0, .infinity]])
        }
        let json =
            #"{"vocab": 2, "length": 1, "theta": [[0, 1]], "behaviour": [[0, 0]], "reference": [[1, 0]]}"#
        let decoded = try JSONDecoder().decode(TabularPolicy.self, from: Data(json.utf8))
        #expect(decoded.theta == [[0, 1]] && decoded.sequenceCount == 2)
        #expect(throws: TabularPolicyError.wrongRowWidth(name: "theta", row: 0, expected: 2, actual: 3)) {
            try JSONDecoder().decode(
                TabularPolicy.self,
                from: Data(
                    #"{"vocab": 2, "length": 1, "theta": [[0, 1, 2]], "behaviour": [[0, 0]], "reference": [[1, 0]]}"#
                        .utf8))
        }
    }

    @Test("Exact sequence KL values match the oracle; random policies are reproducible")
    func tabularValues() throws {
        let p = try offPolicy(vocab: 4, length: 3, seed: 9)
        let oracle = OracleTabular(p)
        expectClose(p.reverseKL, oracle.reverseKL(p.theta), tolerance: 1e-13, "RKL")
        expectClose(p.forwardKL, oracle.forwardKL(p.theta), tolerance: 1e-13, "FKL")
        #expect(try offPolicy(vocab: 4, length: 3, seed: 9) == p)
        let on = try onPolicy(vocab: 4, length: 3, seed: 9)
        #expect(on.theta == p.theta && on.reference == p.reference && on.behaviour == on.theta)
    }
}
