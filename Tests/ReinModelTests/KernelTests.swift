// The SIMD kernels are internal: this check needs a testable (debug) build.
#if DEBUG
    import Foundation
    import Testing

    @testable import ReinModel

    @Suite struct KernelTests {
        @Test func simdExpAndErfMatchLibm() {
            var worstExp = 0.0
            var worstErf = 0.0
            var worstGelu = 0.0
            for i in stride(from: -8000, to: 8000, by: 8) {
                let x = F8((0..<8).map { Float(i + $0) * 0.001 })
                let x10 = x * 10
                let e = exp8(x10)
                let r = erf8(x)
                var g = [Float](repeating: 0, count: 8)
                var xs = (0..<8).map { x[$0] }
                xs.withUnsafeMutableBufferPointer { xp in
                    g.withUnsafeMutableBufferPointer { geluForward($0.baseAddress!, xp.baseAddress!, 8) }
                }
                for lane in 0..<8 {
                    let xd = Double(x[lane])
                    worstExp = max(worstExp, abs(Double(e[lane]) / Foundation.exp(Double(x10[lane])) - 1))
                    worstErf = max(worstErf, abs(Double(r[lane]) - Foundation.erf(xd)))
                    worstGelu = max(
                        worstGelu,
                        abs(Double(g[lane]) - 0.5 * xd * (1 + Foundation.erf(xd / 2.0.squareRoot()))))
                }
            }
            #expect(worstExp < 1e-6, "exp8 relative error \(worstExp)")
            #expect(worstErf < 1e-6, "erf8 absolute error \(worstErf)")
            #expect(worstGelu < 1e-5, "GELU absolute error \(worstGelu)")
        }
    }
#endif
