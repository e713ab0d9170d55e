import ReinKL
import Testing

/// Max-norm distance between two row layouts, relative to the larger max-norm (absolute below 1).
func relativeDistance(_ a: [[Double]], _ b: [[Double]]) -> Double {
    relativeDistance(Array(a.joined()), Array(b.joined()))
}

/// Max-norm distance between two vectors, relative to the larger max-norm (absolute below 1).
func relativeDistance(_ a: [Double], _ b: [Double]) -> Double {
    guard a.count == b.count else { return .infinity }
    var diff = 0.0
    var scale = 1e-300
    for i in a.indices {
        diff = max(diff, abs(a[i] - b[i]))
        scale = max(scale, abs(a[i]), abs(b[i]))
    }
    return diff / max(scale, 1)
}

/// Expects `a` ≈ `b` in relative max-norm.
func expectClose(
    _ a: [[Double]], _ b: [[Double]], tolerance: Double, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let d = relativeDistance(a, b)
    #expect(d <= tolerance, "\(what): relative distance \(d)", sourceLocation: sourceLocation)
}

/// Expects `a` ≈ `b` in relative max-norm.
func expectClose(
    _ a: [Double], _ b: [Double], tolerance: Double, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let d = relativeDistance(a, b)
    #expect(d <= tolerance, "\(what): relative distance \(d)", sourceLocation: sourceLocation)
}

/// Expects scalars to agree to `tolerance`, relative to max(1, |b|).
func expectClose(
    _ a: Double, _ b: Double, tolerance: Double, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let d = abs(a - b) / max(1, abs(b))
    #expect(d <= tolerance, "\(what): \(a) vs \(b)", sourceLocation: sourceLocation)
}

/// Max-norm distance relative to the larger max-norm (no absolute floor): for "≠" checks.
func relativeGap(_ a: [[Double]], _ b: [[Double]]) -> Double {
    let x = Array(a.joined())
    let y = Array(b.joined())
    var diff = 0.0
    var scale = 0.0
    for i in x.indices {
        diff = max(diff, abs(x[i] - y[i]))
        scale = max(scale, abs(x[i]), abs(y[i]))
    }
    return scale > 0 ? diff / scale : 0
}
