import Foundation
import ReinModel
import Testing

/// A header + data built by hand, as the safetensors spec describes it.
func handBuiltFile(header: String, data: [UInt8]) -> [UInt8] {
    var h = Array(header.utf8)
    var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: h.count >> (8 * $0)) }
    out += h
    h.removeAll()
    return out + data
}

func floatBytes(_ xs: [Float]) -> [UInt8] {
    xs.flatMap { x in (0..<4).map { UInt8(truncatingIfNeeded: x.bitPattern >> (8 * $0)) } }
}

func modelError(_ body: () throws -> Void) -> ModelError? {
    do {
        try body()
        return nil
    } catch {
        return error as? ModelError
    }
}

@Suite struct SafeTensorsTests {
    @Test func parsesAHandBuiltFile() throws {
        let header =
            #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"#
            + #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v \"q\""}}"#
        let file = try SafeTensors.parse(handBuiltFile(header: header, data: floatBytes([1.5, -2, 0.25])))
        #expect(file.tensors["a"] == .init(shape: [2], values: [1.5, -2]))
        #expect(file.tensors["b"] == .init(shape: [1], values: [0.25]))
        #expect(file.metadata == ["k": "v \"q\""])
        // Our writer produces a file that parses back to the same contents, with an aligned header.
        let bytes = file.serialized()
        #expect(try SafeTensors.parse(bytes) == file)
        #expect(Int(bytes[0]) % 8 == 0 && bytes[1..<8].allSatisfy { $0 == 0 })
    }

    @Test func checkpointRoundTrips() throws {
        let p = try tinyParameters()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID()).safetensors")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint.save(
            p, metadata: [Checkpoint.tokenizerKey: "digits+ops", Checkpoint.policyVersionKey: "42"], to: path)
        let (q, meta) = try Checkpoint.load(from: path)
        #expect(q.config == tiny && q.values == p.values)
        #expect(meta[Checkpoint.policyVersionKey] == "42" && meta[Checkpoint.tokenizerKey] == "digits+ops")
        let raw = try SafeTensors.read(from: path)
        #expect(raw.tensors["transformer.h.1.mlp.c_fc.weight"]?.shape == [4 * tiny.dModel, tiny.dModel])
        #expect(raw.tensors.count == 4 + 12 * tiny.layers)
    }

    @Test func corruptFilesAreRejectedWithTheRightError() throws {
        let good = Checkpoint.encode(try tinyParameters()).serialized()
        func malformed(_ bytes: [UInt8]) -> String {
            guard
                case .malformedFile("x", let why)? = modelError({
                    _ = try SafeTensors.parse(bytes, path: "x")
                })
            else { return "no malformedFile error" }
            return why
        }
        #expect(malformed(Array(good.dropLast())).contains("truncated"))
        #expect(malformed(Array(good.prefix(5))).contains("too short"))
        #expect(malformed(Array(good.prefix(100))).contains("exceeds"))
        #expect(malformed(good + [0, 0, 0, 0]).contains("trailing"))
        #expect(malformed([255, 255, 255, 255, 0, 0, 0, 0] + good.dropFirst(8)).contains("exceeds"))
        #expect(malformed(Array("PK\u{3}\u{4} this is a zip file, not safetensors".utf8)).contains("header"))
        let f16 = handBuiltFile(
            header: #"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        #expect(malformed(f16).contains("only F32"))
        let shape = handBuiltFile(
            header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: floatBytes([1, 2]))
        #expect(malformed(shape).contains("needs 12 bytes"))
        let overlap = handBuiltFile(
            header:
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            data: floatBytes([1, 2]))
        #expect(malformed(overlap).contains("overlaps"))
        let notJSON = handBuiltFile(header: #"{"a": [1, 2"#, data: [])
        #expect(malformed(notJSON).contains("JSON"))
    }

    /// Random byte flips and truncations never crash the reader: each gives contents or an error.
    @Test func mutatedFilesNeverCrash() throws {
        let good = Checkpoint.encode(try tinyParameters()).serialized()
        let headerEnd = 8 + Int(good[0]) + Int(good[1]) << 8
        var rng = SplitMix64(seed: 99)
        var rejected = 0
        for trial in 0..<300 {
            var bytes = good
            if trial % 3 == 0 {
                bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
            } else {
                for _ in 0..<(1 + trial % 4) {
                    let i = Int(rng.next() % UInt64(headerEnd))
                    bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            do {
                _ = try Checkpoint.decode(try SafeTensors.parse(bytes))
            } catch {
                rejected += 1
            }
        }
        #expect(rejected > 150)
    }

    @Test func foreignOrMisShapedCheckpointsAreRejected() throws {
        let p = try tinyParameters()
        var file = Checkpoint.encode(p)
        func incompatible(_ f: SafeTensors) -> String {
            guard
                case .incompatibleCheckpoint("y", let why)? = modelError({
                    _ = try Checkpoint.decode(f, path: "y")
                })
            else { return "no incompatibleCheckpoint error" }
            return why
        }
        var noConfig = file
        noConfig.metadata = [:]
        #expect(incompatible(noConfig).contains("no 'config'"))
        var missing = file
        missing.tensors["transformer.ln_f.bias"] = nil
        #expect(incompatible(missing).contains("missing tensor 'transformer.ln_f.bias'"))
        var misShaped = file
        misShaped.tensors["transformer.wpe.weight"] = .init(
            shape: [2, 32], values: p.tensor("transformer.wpe.weight")!)
        #expect(
            incompatible(misShaped).contains("'transformer.wpe.weight' has shape [2, 32], expected [8, 8]"))
        var extra = file
        extra.tensors["lm_head.weight"] = .init(shape: [1], values: [0])
        #expect(incompatible(extra).contains("unexpected tensor 'lm_head.weight'"))
        file.tensors["lm_head.weight"] = file.tensors["transformer.wte.weight"]
        #expect(try Checkpoint.decode(file).parameters.values == p.values)  // tied head accepted
        var badConfig = Checkpoint.encode(p)
        badConfig.metadata[Checkpoint.configKey] = #"{"vocab": 7}"#
        #expect(incompatible(badConfig).contains("not a valid GPTConfig"))
        // A forged config asking for a huge model is rejected by shape, before any allocation.
        var huge = Checkpoint.encode(p)
        huge.metadata[Checkpoint.configKey] =
            #"{"vocab": 1000000, "context": 1000000, "dModel": 1000000, "layers": 1000, "heads": 1}"#
        #expect(incompatible(huge).contains("has shape"))
        guard
            case .io(_, let why)? = modelError({ _ = try Checkpoint.load(from: "/nonexistent/x.safetensors") }
            )
        else {
            Issue.record("missing file not reported as an I/O error")
            return
        }
        #expect(why.contains("cannot read"))
    }

    @Test func flatBytesRoundTrip() throws {
        let p = try tinyParameters()
        let q = try p.withUnsafeBytes { try GPTParameters(config: tiny, bytes: $0) }
        #expect(q.values == p.values)
        #expect(throws: ModelError.self) {
            try [UInt8](repeating: 0, count: 12).withUnsafeBytes {
                try GPTParameters(config: tiny, bytes: $0)
            }
        }
        var r = p
        try r.load(flat: q.values.map { $0 * 2 })
        #expect(r.values[5] == 2 * p.values[5] && p.values != r.values)
        r[tensor: "transformer.ln_f.bias"] = ArraySlice(repeating: 7, count: tiny.dModel)
        #expect(r.tensor("transformer.ln_f.bias") == [Float](repeating: 7, count: tiny.dModel))
        #expect(Array(r[tensor: "transformer.wte.weight"]) == Array(r.values[0..<(tiny.vocab * tiny.dModel)]))
    }

    @Test func initialisationIsDeterministic() throws {
        let a = try GPTParameters(config: .small, seed: 1)
        #expect(try GPTParameters(config: .small, seed: 1).values == a.values)
        #expect(try GPTParameters(config: .small, seed: 2).values != a.values)
        let wte = a.tensor("transformer.wte.weight")!
        let std = (wte.map { Double($0 * $0) }.reduce(0, +) / Double(wte.count)).squareRoot()
        #expect(abs(std - 0.02) < 0.002)
        #expect(a.tensor("transformer.h.0.ln_1.weight")!.allSatisfy { $0 == 1 })
        #expect(a.tensor("transformer.h.1.mlp.c_fc.bias")!.allSatisfy { $0 == 0 })
        #expect(
            GPTConfig.default.parameterCount == a.layout.count * 0 + ParameterLayout(config: .default).count)
        #expect(throws: ModelError.self) {
            try GPTParameters(
                config: GPTConfig(vocab: 5, context: 4, dModel: 6, layers: 1, heads: 4), seed: 0)
        }
    }
}
