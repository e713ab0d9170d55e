import Foundation
import ReinKL
import ReinModel
import ReinTasks
import ReinTestKit
import Testing

@testable import Rein

/// A step with every field set (a learner part with KL diagnostics), for round trips.
func fullStep(_ step: Int) -> StepMetrics {
    var metrics = StepMetrics(step: step, version: step)
    metrics.reward = 0.5
    metrics.accuracy = 0.25
    metrics.responseLength = 3
    metrics.lagMean = 1.5
    metrics.lagMax = 2
    metrics.sampleSeconds = 0.1
    metrics.tokensPerSecond = 100
    metrics.evalGreedy = 0.75
    metrics.evalSampled = .nan
    var learner = LearnerStepMetrics()
    learner.exactKL = 0.125
    learner.logProbGap = -0.5
    learner.entropy = 1.25
    let ratio = #"{"count":3,"mean":1,"max":2,"min":0.5,"effective_sample_size_fraction":0.9}"#
    let kl = """
        {"token_count":3,"sequence_count":1,"k1_mean":0.1,"k2_mean":0.2,"k3_mean":0.3,"max_abs_log_ratio":0.4,\
        "max_abs_log_weight":0.5,"token_ratio":\(ratio),"applied_ratio":\(ratio),"clip_fraction":0,\
        "dual_clip_fraction":0,"ratio_cap_fraction":0,"ratio_overflow_count":0,"value_clamp_fraction":0,\
        "coefficient_bound_fraction":0,"any_clamp_fraction":0.0625,"exact_on_policy_tokens":3,\
        "exact_reference_tokens":0,"saturated_gradient_count":0}
        """
    learner.kl = try! RunCoding.decoder().decode(KLDiagnostics.self, from: Data(kl.utf8))
    metrics.learner = learner
    return metrics
}

/// Every key of every object in `json`, recursively.
func keys(of json: Any) -> [String] {
    if let object = json as? [String: Any] {
        return object.keys + object.values.flatMap(keys(of:))
    }
    if let array = json as? [Any] { return array.flatMap(keys(of:)) }
    return []
}

@Suite("Run folder")
struct RunFolderTests {
    func folder() throws -> RunFolder { try TestKit.temporaryRunFolder(prefix: "rein-folder") }

    func text(_ folder: RunFolder, _ file: RunFile) throws -> String {
        try String(contentsOfFile: folder.file(file), encoding: .utf8)
    }

    @Test func metricsAreSnakeCaseVersionedLinesThatReadBack() throws {
        let folder = try folder()
        try folder.appendMetrics(fullStep(1))
        try folder.appendMetrics(fullStep(2))
        let lines = try text(folder, .metrics).split(separator: "\n")
        #expect(lines.count == 2)
        let object = try JSONSerialization.jsonObject(with: Data(lines[0].utf8))
        let all = keys(of: object)
        #expect(
            all.contains("schema_version") && all.contains("exact_kl") && all.contains("any_clamp_fraction"))
        #expect(all.allSatisfy { $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" } }, "\(all)")
        let read = try folder.metrics()
        #expect(read.map(\.step) == [1, 2])
        #expect(read[0].learner?.kl?.anyClampFraction == 0.0625 && read[0].lagMean == 1.5)
        #expect(read[0].evalSampled?.isNaN == true && read[0].evalGreedy == 0.75)
    }

    @Test func camelCaseLinesOfOlderRunsReadAsTheSameRecord() throws {
        let folder = try folder()
        let camel = """
            {"accuracy":0.5,"dropped":0,"lagMax":3,"lagMean":2,"learner":{"exactKL":0.25,"logProbGap":0.5,\
            "entropy":1,"clipFraction":0,"kl":{"anyClampFraction":0.5,"tokenRatio":{"count":1,\
            "effectiveSampleSizeFraction":1,"max":1,"mean":1,"min":1}}},"responseLength":4,"reward":0,\
            "sampleSeconds":0,"step":1,"tokensPerSecond":0,"version":1}
            """
        try folder.write(Data((camel + "\n").utf8), to: RunFile.metrics.rawValue)
        // A partial KL block does not decode; the learner part is what old files hold in full.
        #expect(throws: RunFolderError.self) { try folder.metrics() }
        var full =
            try JSONSerialization.jsonObject(with: Data(RunFolder.line(fullStep(1)).utf8)) as! [String: Any]
        full["schema_version"] = nil
        let legacy = try JSONSerialization.data(withJSONObject: camelCased(full))
        #expect(String(decoding: legacy, as: UTF8.self).contains("\"lagMean\""))
        try folder.write(legacy + Data("\n".utf8), to: RunFile.metrics.rawValue)
        let read = try #require(try folder.metrics().first)
        #expect(read.lagMean == 1.5 && read.learner?.exactKL == 0.125 && read.learner?.kl?.k1Mean == 0.1)
        #expect(read.learner?.kl?.tokenRatio.effectiveSampleSizeFraction == 0.9)
    }

    /// `object` with its snake_case keys spelled as Swift's default coding spells the properties.
    func camelCased(_ object: Any) -> Any {
        let spelling = [
            "exact_kl": "exactKL", "k1_mean": "k1Mean", "k2_mean": "k2Mean", "k3_mean": "k3Mean",
        ]
        if let dictionary = object as? [String: Any] {
            var out: [String: Any] = [:]
            for (key, value) in dictionary {
                let parts = key.split(separator: "_")
                let camel =
                    spelling[key]
                    ?? (String(parts[0])
                        + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined())
                out[camel] = camelCased(value)
            }
            return out
        }
        return object
    }

    @Test func snakeCaseMatchesFoundationsSpelling() {
        #expect(RunCoding.snakeCase("lagMean") == "lag_mean")
        #expect(RunCoding.snakeCase("exactKL") == "exact_kl")
        #expect(RunCoding.snakeCase("noEOS") == "no_eos")
        #expect(RunCoding.snakeCase("k1Mean") == "k1_mean")
        #expect(RunCoding.snakeCase("inFlight") == "in_flight")
        #expect(RunCoding.snakeCase("already_snake") == "already_snake")
    }

    @Test func aNewerSchemaFailsInOneLineNamingItsVersion() throws {
        let folder = try folder()
        try folder.write(Data(#"{"schema_version":7,"step":1,"version":1}"#.utf8 + [10]), to: "metrics.jsonl")
        let error = try #require(throws: RunFolderError.self) { try folder.metrics() }
        #expect(error.description.contains("metrics.jsonl line 1: schema version 7"), "\(error)")
        #expect(!error.description.contains("\n"))
        try folder.write(Data(#"{"schema_version":9,"greedy":{}}"#.utf8), to: "eval.json")
        let eval = try #require(throws: RunFolderError.self) { try folder.evaluation() }
        #expect(eval.description.contains("eval.json: schema version 9"), "\(eval)")
    }

    @Test func aTornLastLineIsSkippedAndNeverGluesOntoTheNextRecord() throws {
        let folder = try folder()
        try folder.appendMetrics(fullStep(1))
        let line = try RunFolder.line(fullStep(2))
        try folder.append(line: line, to: "metrics.jsonl")
        // A crash in the middle of the third append.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder.file(.metrics)))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.prefix(40).utf8))
        try handle.close()
        #expect(try folder.metrics().map(\.step) == [1, 2], "the torn last line is skipped")
        try folder.appendMetrics(fullStep(3))
        let lines = try text(folder, .metrics).split(separator: "\n")
        let third = try RunFolder.line(fullStep(3))
        #expect(lines.count == 4 && lines[3] == Substring(third))
        let error = try #require(throws: RunFolderError.self) { try folder.metrics() }
        #expect(error.description.contains("metrics.jsonl line 3 is not a"), "\(error)")
        try folder.keep(first: 2, of: .metrics, as: StepMetrics.self)
        #expect(try folder.metrics().map(\.step) == [1, 2])
        let short = try #require(throws: RunFolderError.self) {
            try folder.keep(first: 5, of: .metrics, as: StepMetrics.self)
        }
        #expect(short.description.hasSuffix("has 2 records, the checkpoint is at step 5"))
    }

    @Test func configRoundTripsAndOlderFilesTakeDefaults() throws {
        let folder = try folder()
        var config = try TestKit.tinyConfig()
        config.train.beta = 0.125
        try folder.writeConfig(config)
        #expect(try text(folder, .config).hasPrefix("# rein run folder, schema_version: 1\n"))
        #expect(try folder.config() == config)
        try folder.write(Data("seed: 9\ntrain: {steps: 3}\n".utf8), to: "config.yaml")
        let partial = try #require(try folder.config())
        #expect(partial.seed == 9 && partial.train.steps == 3 && partial.train.beta == RunConfig().train.beta)
        try folder.write(Data("# rein run folder, schema_version: 4\nseed: 1\n".utf8), to: "config.yaml")
        let error = try #require(throws: RunFolderError.self) { try folder.config() }
        #expect(error.description.contains("config.yaml: schema version 4"), "\(error)")
    }

    @Test func evaluationAndLedgerCarryTheSchemaVersion() throws {
        let folder = try folder()
        let evaluation = HeldOutEvaluation(greedy: EvaluationResultFixture.some, sampled: nil)
        try folder.writeEvaluation(evaluation, start: true)
        #expect(try folder.evaluation(start: true) == evaluation && folder.evaluation() == nil)
        try folder.writeLedger(SampleLedger(produced: 4, trained: 3, dropped: [.stale: 1]))
        #expect(try folder.ledger(SampleLedger.self) == SampleLedger(produced: 4, trained: 3, dropped: [.stale: 1]))
        #expect(try text(folder, .ledger).contains("\"schema_version\" : 1"))
    }

    @Test func aSecondProcessOnTheFolderIsRefusedInOneLine() throws {
        let folder = try folder()
        var first: RunFolderLock? = try folder.lock()
        let error = try #require(throws: RunFolderError.self) { _ = try folder.lock() }
        #expect(
            error.description
                == "run_dir \(folder.path) is in use by another rein process (pid \(getpid())); wait for it to finish, or use another run_dir"
        )
        withExtendedLifetime(first) {}
        first = nil
        _ = try folder.lock()  // released with its holder
    }

    @Test func aRunDirThatIsAFileIsOneLine() throws {
        let file = try folder().file("plain")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let error = try #require(throws: RunFolderError.self) { _ = try RunFolder(path: file) }
        #expect(error.description == "run_dir \(file) is a file, not a folder")
        let inside = try #require(throws: RunFolderError.self) { _ = try RunFolder(path: file + "/run") }
        #expect(inside.description.hasPrefix("cannot create the run folder \(file)/run: "), "\(inside)")
        #expect(!inside.description.contains("NSCocoaErrorDomain"))
    }

    #if os(Linux)
        @Test func aFullDiskNamesThePath() throws {
            let folder = try folder()
            try FileManager.default.createSymbolicLink(
                atPath: folder.file(.metrics), withDestinationPath: "/dev/full")
            let error = try #require(throws: RunFolderError.self) { try folder.appendMetrics(fullStep(1)) }
            #expect(
                error.description == "cannot append to \(folder.file(.metrics)): no space left on the device")
        }
    #endif

    @Test func fileErrorsAreMappedInOnePlace() {
        #expect(
            RunFolderError.io("write", "/r/eval.json", errno: EROFS).description
                == "cannot write /r/eval.json: the file system is read-only")
        let cocoa = CocoaError(.fileWriteOutOfSpace, userInfo: [NSFilePathErrorKey: "/r/x"])
        #expect(
            RunFolderError.fileError(cocoa)?.description == "cannot use /r/x: no space left on the device")
        #expect(RunFolderError.fileError(RunFolderError("mine")) == nil)
        struct Other: Error {}
        #expect(RunFolderError.fileError(Other()) == nil)
    }

    @Test func checkpointSavesLeaveNoStagingBehind() throws {
        let folder = try folder()
        let store = CheckpointStore(folder: folder)
        let crashed = folder.file(".checkpoint.staging-999999")
        try FileManager.default.createDirectory(atPath: crashed, withIntermediateDirectories: true)
        try store.save(["a.bin": Data([1])], kind: "k")
        #expect(!FileManager.default.fileExists(atPath: crashed), "a crashed save's staging is removed")
        #expect(throws: RunFolderError.self) { try store.save(["no/such/dir.bin": Data([2])], kind: "k") }
        let hidden = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter {
            $0.hasPrefix(".checkpoint")
        }
        #expect(hidden.isEmpty, "\(hidden)")
        #expect(try CheckpointStore.verify(store.current).files == ["a.bin": Data([1])])
    }

    /// A file written in pieces appears under its name only complete: a writer that fails midway
    /// leaves the old file (or none) and no temporary file; a checkpoint whose file fails midway
    /// leaves the previous checkpoint current.
    @Test func streamedWritesAreAtomic() throws {
        struct Midway: Error {}
        let folder = try folder()
        let path = folder.file("w.bin")
        try RunFolder.writeAtomically(to: path) { write in
            for piece in [Data([1, 2]), Data(), Data([3])] { try piece.withUnsafeBytes { try write($0) } }
        }
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
        #expect(throws: RunFolderError.self) {
            try RunFolder.writeAtomically(to: path) { write in
                try Data([9, 9]).withUnsafeBytes { try write($0) }
                throw Midway()
            }
        }
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]), "the old file stays whole")
        let fresh = folder.file("never.bin")
        #expect(throws: RunFolderError.self) {
            try RunFolder.writeAtomically(to: fresh) { write in
                try Data([7]).withUnsafeBytes { try write($0) }
                throw Midway()
            }
        }
        #expect(!FileManager.default.fileExists(atPath: fresh), "no partial file under the final name")

        let store = CheckpointStore(folder: folder)
        let tensors = SafeTensors(tensors: ["t": .init(shape: [3], values: [1, 2, 3])], metadata: ["k": "v"])
        try store.save(
            streaming: [
                .init("a.bin", data: Data([1])), .init("t.safetensors") { try tensors.write(to: $0) },
            ],
            kind: "k")
        let saved = try CheckpointStore.verify(store.current)
        #expect(saved.files == ["a.bin": Data([1]), "t.safetensors": Data(tensors.serialized())])
        #expect(tensors.byteCount == tensors.serialized().count)
        #expect(throws: RunFolderError.self) {
            try store.save(
                streaming: [
                    .init("a.bin", data: Data([2])),
                    .init("b.bin") { sink in
                        try Data([5]).withUnsafeBytes { try sink($0) }
                        throw Midway()
                    },
                ], kind: "k")
        }
        #expect(try CheckpointStore.verify(store.current).files == saved.files, "the previous stays current")
        #expect(!FileManager.default.fileExists(atPath: store.previous))
        let entries = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(entries.allSatisfy { !$0.contains(".tmp-") && !$0.contains("staging") }, "\(entries)")
    }

    @Test func aReferenceOfAnotherShapeOrWithNaNsIsRefused() throws {
        let config = try TestKit.tinyConfig()
        let reference = try TestKit.tinyReference(for: config)
        try config.checkReference(reference, source: "ref.safetensors")
        var wide = config
        wide.model.dModel = 1_000_000_000
        let shape = try #require(throws: ConfigError.self) {
            try wide.checkReference(reference, source: "ref")
        }
        #expect(
            shape.path == "model.d_model"
                && shape.problem.hasPrefix("is 1000000000, but the reference ref has 16"))
        var values = reference.values
        values[7] = .nan
        let broken = try GPTParameters(config: reference.config, values: values)
        let nan = try #require(throws: ConfigError.self) { try config.checkReference(broken, source: "ref") }
        #expect(
            nan.problem.hasPrefix("ref has 1 weights that are NaN or infinite (the first at index 7"),
            "\(nan)")
    }
}

enum EvaluationResultFixture {
    static var some: EvaluationResult {
        let json =
            #"{"n":1,"correct":1,"wrong_answer":0,"malformed":0,"no_eos":0,"accuracy":1,"mean_reward":1,"total_reward":1}"#
        return try! RunCoding.decoder().decode(EvaluationResult.self, from: Data(json.utf8))
    }
}
