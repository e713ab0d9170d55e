import Foundation
import Rein
import ReinModel
import ReinTasks
import ReinTracker
import Testing

@testable import ReinCLI

/// `rein train` on a tiny model, and what it does to its run folder when it is misused.
@Suite("Run-folder integrity")
struct RunFolderIntegrityTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "rein-integrity-\(UUID().uuidString)"
    )
    .path

    /// `rein train` of a tiny model: 4 prompts × 4 samples a step, a checkpoint every 2 steps.
    func train(steps: Int, _ extra: [String] = ["--random-reference", "2"]) -> [String] {
        [
            "train", "--set", "run_dir=\(directory)", "--set", "threads=1", "--set", "model.context=16",
            "--set", "model.d_model=16", "--set", "model.layers=1", "--set", "model.heads=2",
            "--set", "task.train_size=200", "--set", "task.held_out_size=50", "--set", "train.steps=\(steps)",
            "--set", "train.prompts_per_step=4", "--set", "train.group_size=4", "--set", "train.eval_size=8",
            "--set", "train.eval_every=0", "--set", "train.tracker_every=0", "--set",
            "train.checkpoint_every=2",
        ] + extra
    }

    /// A tiny reference file (the shape of ``train(steps:_:)``), with `damage` applied to its values.
    func referenceFile(_ damage: (inout [Float]) -> Void = { _ in }) throws -> String {
        let config = GPTConfig(
            vocab: Tokenizer.standard.vocabSize, context: 16, dModel: 16, layers: 1, heads: 2)
        var values = try GPTParameters(config: config, seed: 2).values
        damage(&values)
        let path = directory + "-reference.safetensors"
        let file = Checkpoint.encode(try GPTParameters(config: config, values: values)).serialized()
        try Data(file).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func aSecondTrainerOnTheSameRunDirRefusesInOneLine() async throws {
        let held = try RunFolder(path: directory).lock()
        let message = try #require(await userMessage(train(steps: 2)))
        #expect(
            message
                == "run_dir \(directory) is in use by another rein process (pid \(getpid())); wait for it to finish, or use another run_dir"
        )
        withExtendedLifetime(held) {}
    }

    @Test func aSecondLearnerOnTheSameRunDirRefusesInOneLine() async throws {
        let held = try RunFolder(path: directory).lock()
        let arguments = ["learner", "--bind", "tcp://127.0.0.1:*"] + train(steps: 2).dropFirst()
        let message = try #require(await userMessage(Array(arguments)))
        #expect(message.hasPrefix("run_dir \(directory) is in use by another rein process (pid \(getpid()))"))
        withExtendedLifetime(held) {}
    }

    @Test func aResumeCutsMetricsBackToTheCheckpointAndATornLineDoesNotGlue() async throws {
        let tracked = ["--random-reference", "2", "--set", "train.tracker_every=1"]
        _ = try await runRein(train(steps: 2, tracked))
        let folder = try RunFolder(path: directory)
        #expect(try folder.metrics().map(\.step) == [1, 2])
        #expect(try folder.records(TrackerRecord.self, of: .tracker).map(\.step) == [1, 2])
        // The tracker had observed step 3 too.
        let observed = try String(contentsOfFile: folder.file(.tracker), encoding: .utf8)
        let last = try #require(observed.split(separator: "\n").last)
        try folder.append(
            line: String(last).replacingOccurrences(of: #""step":2,"#, with: #""step":3,"#),
            to: RunFile.tracker.rawValue)
        #expect(try folder.records(TrackerRecord.self, of: .tracker).map(\.step) == [1, 2, 3])
        // A crash after step 3 was logged, in the middle of logging step 4 (checkpoint at 2).
        try folder.appendMetrics(StepMetrics(step: 3, version: 3))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder.file(.metrics)))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"accuracy":0,"drop"#.utf8))
        try handle.close()
        let torn = try String(contentsOfFile: folder.file(.metrics), encoding: .utf8)
        #expect(!torn.hasSuffix("\n"))
        _ = try await runRein(train(steps: 4, tracked))
        #expect(try folder.records(TrackerRecord.self, of: .tracker).map(\.step) == [1, 2, 3, 4])
        let text = try String(contentsOfFile: folder.file(.metrics), encoding: .utf8)
        #expect(text.split(separator: "\n").count == 4, "\(text)")
        #expect(try folder.metrics().map(\.step) == [1, 2, 3, 4])
        #expect(try folder.metrics().allSatisfy { $0.learner != nil }, "steps 3 and 4 are the resumed run's")
    }

    @Test func aDistributedResumeKeepsEveryStepAndObservationOnce() async throws {
        let tracked = ["--workers", "2", "--random-reference", "2", "--set", "train.tracker_every=1"]
        _ = try await runRein(train(steps: 2, tracked))
        let folder = try RunFolder(path: directory)
        #expect(try folder.records(TrackerRecord.self, of: .tracker).map(\.step) == [1, 2])
        // What a learner killed after batch 3 (checkpoint at 2) had logged.
        try folder.appendMetrics(StepMetrics(step: 3, version: 3))
        let observed = try String(contentsOfFile: folder.file(.tracker), encoding: .utf8)
        let last = try #require(observed.split(separator: "\n").last)
        try folder.append(
            line: String(last).replacingOccurrences(of: #""step":2,"#, with: #""step":3,"#),
            to: RunFile.tracker.rawValue)
        _ = try await runRein(train(steps: 4, tracked))
        #expect(try folder.metrics().map(\.step) == [1, 2, 3, 4])
        #expect(try folder.records(TrackerRecord.self, of: .tracker).map(\.step) == [1, 2, 3, 4])
        #expect(try folder.evaluation(start: true)?.sampled != nil && folder.evaluation()?.sampled != nil)
    }

    @Test func aModelShapeOtherThanTheReferencesIsAnErrorAndNotRecorded() async throws {
        let reference = try referenceFile()
        let message = try #require(
            await userMessage(
                train(
                    steps: 2, ["--set", "train.reference=\(reference)", "--set", "model.d_model=1000000000"]))
        )
        #expect(
            message.hasPrefix("config: model.d_model: is 1000000000, but the reference \(reference) has 16"),
            "\(message)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/config.yaml"))
        // The same reference with the matching shape trains, and config.yaml records that shape.
        _ = try await runRein(train(steps: 2, ["--set", "train.reference=\(reference)"]))
        #expect(try RunFolder(path: directory).config()?.model.dModel == 16)
    }

    @Test func aReferenceWithNaNWeightsIsNamed() async throws {
        let reference = try referenceFile { $0[3] = .nan }
        let message = try #require(
            await userMessage(train(steps: 2, ["--set", "train.reference=\(reference)"])))
        #expect(message.contains("has 1 weights that are NaN or infinite"), "\(message)")
        #expect(!message.contains("token id"))
    }

    @Test func aRunDirThatIsAFileIsOneLine() async throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory))
        let message = try #require(await userMessage(train(steps: 2)))
        #expect(message == "run_dir \(directory) is a file, not a folder")
    }
}
