import ReinKL

/// Every valid combination of the structural options (estimator, placement, ratio, ratio
/// gradient, level, aggregation, reward source, correction, normalisation), optionally crossed
/// with clip / dual clip / cap / bound / clamp settings.
func configurationGrid(bounds: Bool) -> [KLConfiguration] {
    var result: [KLConfiguration] = []
    let clips: [(KLClipRange?, Double?)] =
        bounds
        ? [(nil, nil), (KLClipRange(low: 0.2, high: 0.28), nil), (KLClipRange(low: 0.2, high: 0.28), 1.4)]
        : [(nil, nil)]
    let caps: [Double?] = bounds ? [nil, 1.25] : [nil]
    let coefficientBounds: [Double?] = bounds ? [nil, 0.4] : [nil]
    let valueClamps: [Double?] = bounds ? [nil, 0.3] : [nil]
    for estimator in KLEstimator.allCases {
        for placement in KLPlacement.allCases {
            for ratio in KLRatio.allCases {
                for gradient in KLRatioGradient.allCases {
                    for level in KLLevel.allCases {
                        for reward in KLRewardAggregation.allCases {
                            for source in KLRewardSource.allCases {
                                for correction in KLCorrection.allCases {
                                    for normalization in KLNormalization.allCases {
                                        for (clip, dual) in clips {
                                            for cap in caps {
                                                for bound in coefficientBounds {
                                                    for clamp in valueClamps {
                                                        let c = KLConfiguration(
                                                            estimator: estimator, placement: placement,
                                                            ratio: ratio,
                                                            ratioGradient: gradient, level: level,
                                                            reward: reward,
                                                            rewardSource: source,
                                                            normalization: normalization,
                                                            correction: correction, clip: clip,
                                                            dualClip: dual,
                                                            ratioCap: cap, coefficientBound: bound,
                                                            valueClamp: clamp)
                                                        // Skip options that have no effect (duplicates).
                                                        if placement == .loss && reward != .toGo { continue }
                                                        if level == .sequence && reward != .toGo { continue }
                                                        if correction == .coefficient
                                                            && gradient == .differentiable
                                                        {
                                                            continue
                                                        }
                                                        if ratio == .none && gradient == .differentiable {
                                                            continue
                                                        }
                                                        if ratio == .none && cap != nil { continue }
                                                        if (try? c.validate()) != nil { result.append(c) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return result
}

/// A random batch of sequences (Double log-probabilities) with a mask.
struct RandomBatch {
    var logPolicy: [Double] = []
    var logBehaviour: [Double] = []
    var logReference: [Double] = []
    var mask: [Bool] = []
    var lengths: [Int] = []

    init(seed: UInt64, lengths: [Int], maskedFraction: Double = 0.2, spread: Double = 0.5) {
        var rng = SeededGenerator(seed: seed)
        self.lengths = lengths
        for n in lengths {
            for _ in 0..<n {
                let a = -0.2 - 2 * rng.nextUniform()
                logPolicy.append(a)
                logBehaviour.append(a + 0.3 * rng.nextGaussian())
                logReference.append(a + spread * rng.nextGaussian())
                mask.append(rng.nextUniform() >= maskedFraction)
            }
        }
    }

    /// The valid tokens of each sequence.
    var sequences: [[Int]] {
        var result: [[Int]] = []
        var start = 0
        for n in lengths {
            result.append((start..<(start + n)).filter { mask[$0] })
            start += n
        }
        return result
    }

    /// The oracle's normalised batch loss as a function of the live log π_θ.
    func oracleLoss(_ c: KLConfiguration, live: [Double]) -> Double {
        let sequences = self.sequences.filter { !$0.isEmpty }
        let tokens = sequences.reduce(0) { $0 + $1.count }
        var loss = 0.0
        for s in sequences {
            let value = oracleSurrogate(
                c, live: s.map { live[$0] }, frozen: s.map { logPolicy[$0] }, mu: s.map { logBehaviour[$0] },
                ref: s.map { logReference[$0] })
            switch c.normalization {
            case .sum: loss += value / Double(sequences.count)
            case .tokenMean: loss += value / Double(tokens)
            case .sequenceMean: loss += value / (Double(sequences.count) * Double(s.count))
            }
        }
        return loss
    }
}
