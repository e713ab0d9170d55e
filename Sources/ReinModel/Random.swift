/// ``SplitMix64`` lives in ReinRandom, the one generator of the project; clients of ReinModel see
/// it as before.
@_exported import ReinRandom
