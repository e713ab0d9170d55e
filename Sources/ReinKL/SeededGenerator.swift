import RealModule
import ReinRandom

/// A small deterministic random number generator, identical on every platform, for seeded tabular
/// policies and tests: ReinRandom's `SplitMix64` started at state `seed` (unscrambled), with its
/// own uniform and Gaussian draws.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var core: SplitMix64

    /// A generator whose whole output is fixed by `seed`.
    public init(seed: UInt64) {
        core = SplitMix64(state: seed)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 { core.next() }

    /// A uniform double in (0, 1), never 0.
    public mutating func nextUniform() -> Double {
        (Double(next() >> 11) + 0.5) * 0x1p-53
    }

    /// A standard normal draw (Box–Muller; one draw per call).
    public mutating func nextGaussian() -> Double {
        let u1 = nextUniform()
        let u2 = nextUniform()
        return (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }
}
