import CReinKernels
import Foundation
import Testing

@testable import ReinModel

@Suite struct KernelTests {
    /// Inputs from −8 to 8 in steps of 0.001, a count that is not a multiple of 8 (the tail).
    static let xs: [Float] = (0..<16_003).map { Float($0 - 8000) * 0.001 }

    @Test func simdExpMatchesLibm() {
        var worst = 0.0
        for i in stride(from: -8000, to: 8000, by: 8) {
            let x = F8((0..<8).map { Float(i + $0) * 0.01 })
            let e = exp8(x)
            for lane in 0..<8 {
                worst = max(worst, abs(Double(e[lane]) / Foundation.exp(Double(x[lane])) - 1))
            }
        }
        #expect(worst < 1e-6, "exp8 relative error \(worst)")
    }

    /// Both builds of the GELU kernels (the AVX2 one only where the CPU has it): the output within
    /// 1e-6·max(1, |x|) of x·Φ(x) in float64, the slope within 1e-5·max(1, |x|) of Φ(x) + x·φ(x),
    /// and the backward's output bit for bit the forward's.
    @Test(arguments: [Int32(0), 1])
    func geluKernelsMatchFloat64AndAgreeWithEachOther(variant: Int32) {
        var out = [Float](repeating: 0, count: Self.xs.count)
        var out2 = out
        var slope = Self.xs
        Self.xs.withUnsafeBufferPointer { x in
            rein_gelu_forward_variant(variant, &out, x.baseAddress!, x.count)
        }
        rein_gelu_output_and_slope_variant(variant, &out2, &slope, Self.xs.count)
        #expect(out == out2)
        var (worstOut, worstSlope) = (0.0, 0.0)
        for (i, x) in Self.xs.enumerated() {
            let xd = Double(x)
            let cdf = 0.5 * (1 + Foundation.erf(xd / 2.0.squareRoot()))
            let pdf = Foundation.exp(-0.5 * xd * xd) / (2 * Double.pi).squareRoot()
            worstOut = max(worstOut, abs(Double(out[i]) - xd * cdf) / max(1, abs(xd)))
            worstSlope = max(worstSlope, abs(Double(slope[i]) - (cdf + xd * pdf)) / max(1, abs(xd)))
        }
        #expect(worstOut < 1e-6, "GELU error over max(1, |x|) \(worstOut)")
        #expect(worstSlope < 1e-5, "GELU slope error over max(1, |x|) \(worstSlope)")
    }

    /// The two builds agree to float32 rounding, and the engine's kernel is the build it names.
    @Test func theBuildsAgreeAndTheProcessUsesTheOneItNames() {
        var base = [Float](repeating: 0, count: Self.xs.count)
        var wide = base
        var chosen = base
        Self.xs.withUnsafeBufferPointer { x in
            rein_gelu_forward_variant(0, &base, x.baseAddress!, x.count)
            rein_gelu_forward_variant(1, &wide, x.baseAddress!, x.count)
            chosen.withUnsafeMutableBufferPointer { geluForward($0.baseAddress!, x.baseAddress!, x.count) }
        }
        for (a, b) in zip(base, wide) { #expect(abs(a - b) <= 1e-6 * max(1, abs(a))) }
        #expect(chosen == (GELUKernels.current == .avx2FMA ? wide : base))
        #expect(GELUKernels.runnable.contains(GELUKernels.current))
    }
}
