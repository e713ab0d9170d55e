import Foundation
import ReinModel
import Testing

@Suite struct GemmBackendTests {
    /// The package links both libraries (CI installs both), so both must work; the parameterised
    /// correctness tests run once per backend listed here.
    @Test func bothBackendsWorkWhereTheyAreLinked() {
        #expect(GemmBackend.available == GemmBackend.allCases)
        for backend in GemmBackend.available { #expect(!backend.kernels.isEmpty) }
    }

    /// The two libraries compute the same forward pass up to float32 rounding.
    @Test func backendsAgreeOnTheForwardPass() throws {
        let backends = GemmBackend.available
        try #require(backends.count >= 2)
        let p = try tinyParameters()
        let outs = try backends.map { try GPTModel(parameters: p, threads: 2, gemm: $0).forward(tinyBatch()) }
        for (x, y) in zip(outs[0].logProbs, outs[1].logProbs) { #expect(abs(x - y) < 1e-5) }
    }

    @Test func autoIsTheArchitecturesDefault() throws {
        let s = try GemmSelection.resolve(.auto, environment: [:], available: GemmBackend.allCases)
        #expect(s == GemmSelection(backend: GemmSelection.nativeDefault, requested: .auto, source: "default"))
        #if arch(x86_64)
            #expect(GemmSelection.nativeDefault == .onednn)
        #endif
    }

    @Test func configChoiceIsKeptAndTheEnvironmentOverridesIt() throws {
        let all = GemmBackend.allCases
        let fromConfig = try GemmSelection.resolve(.openblas, environment: [:], available: all)
        #expect(
            fromConfig.backend == .openblas && fromConfig.source == "config" && fromConfig.fallback == nil)
        let fromEnv = try GemmSelection.resolve(
            .openblas, environment: ["REIN_GEMM": "oneDNN"], available: all)
        #expect(fromEnv.backend == .onednn && fromEnv.requested == .onednn && fromEnv.source == "REIN_GEMM")
        let empty = try GemmSelection.resolve(.onednn, environment: ["REIN_GEMM": ""], available: all)
        #expect(empty.backend == .onednn && empty.source == "config")
    }

    @Test func aMissingLibraryFallsBackWithAReason() throws {
        let s = try GemmSelection.resolve(.onednn, environment: [:], available: [.openblas])
        #expect(s.backend == .openblas && s.requested == .onednn)
        #expect(s.fallback?.contains("oneDNN") == true)
        let auto = try GemmSelection.resolve(.auto, environment: [:], available: [.openblas])
        #expect(auto.backend == .openblas)
    }

    @Test func badRequestsAreErrorsNamingTheProblem() {
        #expect(throws: ModelError.self) {
            try GemmSelection.resolve(
                .auto, environment: ["REIN_GEMM": "mkl"], available: GemmBackend.allCases)
        }
        do {
            _ = try GemmSelection.resolve(.auto, environment: ["REIN_GEMM": "mkl"], available: [.openblas])
            Issue.record("no error for REIN_GEMM=mkl")
        } catch {
            #expect("\(error)".contains("REIN_GEMM=mkl"))
        }
        #expect(throws: ModelError.self) { try GemmSelection.resolve(.auto, environment: [:], available: []) }
    }
}
