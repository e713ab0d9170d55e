import Foundation
import Rein
import ReinActors
import ReinTasks
import Testing

@testable import ReinRuntime

@Suite("Sample batch layout")
struct SampleBatchLayoutTests {
    /// A random batch of `groups` groups: completions of 0 to 5 tokens (some empty), and the
    /// reference scored (rows of `width` values) when `width` > 0.
    static func randomBatch(groups: Int, groupSize: Int, width: Int, using random: inout TaskRandom)
        -> RolloutBatch
    {
        let outcomes = AnswerOutcome.allCases
        let rollouts = (0..<(groups * groupSize)).map { r in
            let length = Int.random(in: 0...5, using: &random)
            var rollout = Rollout(
                id: random.next(), group: r / groupSize,
                prompt: (0..<Int.random(in: 1...6, using: &random)).map { _ in
                    Int32.random(in: 0..<20, using: &random)
                },
                completion: (0..<length).map { _ in Int32.random(in: 0..<20, using: &random) },
                behaviourLogProbs: (0..<length).map { _ in -Float.random(in: 0..<5, using: &random) },
                versions: (0..<length).map { _ in Int.random(in: 0..<1000, using: &random) },
                reward: Double.random(in: -1...1, using: &random),
                outcome: outcomes[Int.random(in: 0..<outcomes.count, using: &random)])
            if width > 0 {
                rollout.referenceLogProbs = (0..<length).map { _ in -Float.random(in: 0..<5, using: &random) }
                rollout.referenceRows = (0..<(length * width)).map { _ in
                    Float.random(in: -9..<0, using: &random)
                }
            }
            return rollout
        }
        return RolloutBatch(rollouts: rollouts, groupSize: groupSize)
    }

    static func columns(_ batch: RolloutBatch, using random: inout TaskRandom) -> SampleColumns {
        SampleColumns(
            batch, worker: NodeID(rawValue: random.next()), index: Int.random(in: 0..<1000, using: &random),
            attempt: Int.random(in: 0..<4, using: &random), incarnation: random.next(),
            token: AssignmentToken(high: random.next(), low: random.next()),
            sampler: SamplerSettings(
                temperature: Double.random(in: 0.1...2, using: &random),
                topK: Int.random(in: 0...20, using: &random)))
    }

    @Test func randomBatchesRoundTrip() throws {
        var random = TaskRandom(seed: 18, stream: 0)
        var referenced = 0
        for trial in 0..<200 {
            let batch = Self.randomBatch(
                groups: Int.random(in: 0...4, using: &random),
                groupSize: Int.random(in: 1...4, using: &random),
                width: trial % 2 == 0 ? 0 : Int.random(in: 1...7, using: &random), using: &random)
            let columns = Self.columns(batch, using: &random)
            if columns.referenceWidth > 0 { referenced += 1 }
            let frames = SampleBatchLayout.frames(columns)
            #expect(frames.count == 1 + SampleBatchLayout.Column.allCases.count)
            #expect(frames[0].count == SampleBatchLayout.headerBytes)
            let decoded = try SampleBatchLayout.decode(frames)
            #expect(decoded == columns, "trial \(trial)")
            // Reference values come back only with a width (not when every completion is empty).
            var expected = batch
            if columns.referenceWidth == 0 {
                for i in expected.rollouts.indices {
                    expected.rollouts[i].referenceLogProbs = nil
                    expected.rollouts[i].referenceRows = nil
                }
            }
            #expect(try decoded.batch() == expected, "trial \(trial)")
        }
        #expect(referenced > 50, "reference columns were exercised")
    }

    @Test func everyOutcomeHasItsOwnCode() {
        let codes = AnswerOutcome.allCases.map(SampleBatchLayout.code)
        #expect(Set(codes).count == AnswerOutcome.allCases.count)
        for outcome in AnswerOutcome.allCases {
            #expect(SampleBatchLayout.outcome(SampleBatchLayout.code(outcome)) == outcome)
        }
        #expect(SampleBatchLayout.outcome(200) == nil)
    }

    /// Bytes from a string of hex digits (spaces ignored).
    static func hex(_ string: String) -> [UInt8] {
        let digits = Array(string.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// A column table entry: the name padded to 20 bytes, dtype, three zero bytes, count.
    static func entry(_ name: String, _ dtype: UInt8, _ count: UInt8) -> [UInt8] {
        Array(name.utf8) + Array(repeating: 0, count: 20 - name.utf8.count) + [dtype, 0, 0, 0, count]
            + Array(repeating: 0, count: 7)
    }

    /// The frames of `clients/python/tests/golden/sample_batch.hex` (one `name hex` line per
    /// frame), which the Python client's tests decode too.
    static func goldenFrames() throws -> [[UInt8]] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../clients/python/tests/golden/sample_batch.hex").standardized
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") && !$0.isEmpty }
            .map { line in hex(String(line.split(separator: " ")[1])) }
    }

    /// The layout of the Sample batch layout article (SampleBatchWire.md), written out by hand for one small batch.
    @Test func encodedBytesMatchTheSpecification() throws {
        var rollout = Rollout(
            id: 5, group: 0, prompt: [7], completion: [9, 2], behaviourLogProbs: [-0.5, -0.25],
            versions: [3, 3],
            reward: 1, outcome: .correct)
        rollout.referenceLogProbs = [-1, -2]
        rollout.referenceRows = [0.5, 1, 1.5, 2]
        let batch = RolloutBatch(rollouts: [rollout], groupSize: 1)
        let columns = SampleColumns(
            batch, worker: NodeID(rawValue: 0x0102_0304_0506_0708), index: 2, attempt: 1, incarnation: 9,
            token: AssignmentToken(high: 0x11, low: 0x22), sampler: SamplerSettings(temperature: 0.5, topK: 5)
        )
        let header =
            Self.hex(
                """
                52534d50 0200 0c00
                0807060504030201 0200000000000000 0100000000000000 0900000000000000
                1100000000000000 2200000000000000 0100000000000000 0200000000000000
                0100000000000000 0200000000000000 000000000000e03f 0500000000000000
                696473 0000000000000000000000000000000000 04 000000 0100000000000000
                """)
            + Self.entry("groups", 3, 1) + Self.entry("prompt_offsets", 3, 2) + Self.entry("prompts", 2, 1)
            + Self.entry("completion_offsets", 3, 2) + Self.entry("completions", 2, 2)
            + Self.entry("behaviour_logprobs", 5, 2) + Self.entry("versions", 3, 2)
            + Self.entry("rewards", 6, 1)
            + Self.entry("outcomes", 1, 1) + Self.entry("reference_logprobs", 5, 2)
            + Self.entry("reference_rows", 5, 4)
        let bodies = [
            "0500000000000000",  // ids
            "0000000000000000",  // groups
            "0000000000000000 0100000000000000",  // prompt_offsets
            "07000000",  // prompts
            "0000000000000000 0200000000000000",  // completion_offsets
            "09000000 02000000",  // completions
            "000000bf 000080be",  // behaviour_logprobs: -0.5, -0.25
            "0300000000000000 0300000000000000",  // versions
            "000000000000f03f",  // rewards: 1.0
            "00",  // outcomes: correct
            "000080bf 000000c0",  // reference_logprobs: -1, -2
            "0000003f 0000803f 0000c03f 00000040",  // reference_rows: 0.5, 1, 1.5, 2
        ].map(Self.hex)
        let frames = SampleBatchLayout.frames(columns)
        #expect(header.count == 104 + 12 * 32)
        #expect(frames.map(\.bytes) == [header] + bodies)
        #expect(try Self.goldenFrames() == [header] + bodies, "the Python client's golden file")
        #expect(try SampleBatchLayout.decode(([header] + bodies).map(WireFrame.init)) == columns)
    }

    /// The frames of a random batch, as byte arrays.
    static func sampleFrames(using random: inout TaskRandom) -> [[UInt8]] {
        let batch = randomBatch(groups: 2, groupSize: 2, width: 3, using: &random)
        return SampleBatchLayout.frames(columns(batch, using: &random)).map(\.bytes)
    }

    static func decode(_ frames: [[UInt8]], limits: WireLimits = .default) throws(WireError) -> SampleColumns
    {
        try SampleBatchLayout.decode(frames.map(WireFrame.init), limits: limits)
    }

    @Test func truncatedOversizedAndMismatchedFramesAreRefused() throws {
        var random = TaskRandom(seed: 3, stream: 0)
        let frames = Self.sampleFrames(using: &random)
        let table = SampleBatchLayout.fixedBytes
        func refused(_ code: WireError.Code, _ frames: [[UInt8]], limits: WireLimits = .default) {
            #expect(throws: WireError.self) { try Self.decode(frames, limits: limits) }
            do {
                _ = try Self.decode(frames, limits: limits)
            } catch {
                #expect(error.code == code, "\(error)")
            }
        }
        refused(.truncated, [])
        refused(.truncated, [Array(frames[0].prefix(5))])
        refused(.lengthMismatch, [Array(frames[0].dropLast())] + frames.dropFirst())
        refused(.lengthMismatch, Array(frames.dropLast()))
        refused(.lengthMismatch, frames + [[]])
        var bad = frames
        bad[0][0] = 0x4A
        refused(.badMagic, bad)
        bad = frames
        bad[0][4] = 1
        refused(.unsupportedVersion, bad)
        bad = frames
        bad[0][95] = 0xFF  // a negative temperature
        refused(.malformed, bad)
        bad = frames
        bad[0][103] = 0x80  // a negative top-k
        refused(.malformed, bad)
        bad = frames
        bad[4].removeLast(4)  // one prompt fewer than declared
        refused(.lengthMismatch, bad)
        bad = frames
        // The prompts column claims 2^61 elements: refused before anything of that size is allocated.
        let prompts = table + 3 * SampleBatchLayout.entryBytes + 24
        bad[0].replaceSubrange(prompts..<prompts + 8, with: [0, 0, 0, 0, 0, 0, 0, 0x20])
        refused(.oversize, bad)
        // A frame over the limit.
        refused(.oversize, frames, limits: WireLimits(maxFrameBytes: 16))
        bad = frames
        bad[0][table + 20] = SampleBatchLayout.DType.f64.rawValue  // ids as doubles
        refused(.malformed, bad)
        bad = frames
        bad[0][table] = UInt8(ascii: "x")  // a column of another name
        refused(.malformed, bad)
        bad = frames
        bad[10] = [9, 0, 0, 0]  // an outcome code that does not exist
        refused(.malformed, bad)
        bad = frames
        // Offsets that go back.
        bad[3].replaceSubrange(8..<16, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        refused(.malformed, bad)
        bad = frames
        bad[0][56] = 0  // group size 0
        refused(.malformed, bad)
    }

    /// Random corruptions of the structure — any byte of the magic, version, column count, row
    /// and token counts or column table; a frame cut, grown, dropped or repeated — are refused
    /// with a ``WireError``; random bytes anywhere else never crash the decoder.
    @Test func randomCorruptionsAreRefusedAndNeverCrash() throws {
        var random = TaskRandom(seed: 99, stream: 0)
        // The sampler settings (88..<104) are values: a changed one may still be valid.
        let structural =
            Array(0..<8) + Array(72..<88)
            + Array(SampleBatchLayout.fixedBytes..<SampleBatchLayout.headerBytes)
        var decodedAnyway = 0
        for trial in 0..<2000 {
            var frames = Self.sampleFrames(using: &random)
            switch trial % 6 {
            case 0:
                let at = structural[Int.random(in: 0..<structural.count, using: &random)]
                frames[0][at] ^= UInt8.random(in: 1...255, using: &random)
            case 1:
                let i = Int.random(in: 0..<frames.count, using: &random)
                guard !frames[i].isEmpty else { continue }
                frames[i].removeLast(Int.random(in: 1...frames[i].count, using: &random))
            case 2:
                let i = Int.random(in: 0..<frames.count, using: &random)
                frames[i] += (0..<Int.random(in: 1...16, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            case 3:
                let i = Int.random(in: 0..<frames.count, using: &random)
                if Bool.random(using: &random) {
                    frames.remove(at: i)
                } else {
                    frames.insert(frames[i], at: i)
                }
            case 4:
                frames = (0..<Int.random(in: 0...14, using: &random)).map { _ in
                    (0..<Int.random(in: 0...600, using: &random)).map { _ in
                        UInt8.random(in: 0...255, using: &random)
                    }
                }
            default:
                // Anywhere, not only the structure: may decode (a float changed), must not crash.
                for _ in 0..<Int.random(in: 1...8, using: &random) {
                    let i = Int.random(in: 0..<frames.count, using: &random)
                    guard !frames[i].isEmpty else { continue }
                    frames[i][Int.random(in: 0..<frames[i].count, using: &random)] = UInt8.random(
                        in: 0...255, using: &random)
                }
                if let columns = try? Self.decode(frames) {
                    decodedAnyway += 1
                    _ = try? columns.batch()
                }
                continue
            }
            #expect(throws: WireError.self, "trial \(trial)") { try Self.decode(frames) }
        }
        #expect(decodedAnyway < 2000 / 6, "some random corruptions were caught too")
    }
}
