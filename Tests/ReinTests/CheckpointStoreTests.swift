import Foundation
import Logging
import ReinModel
import ReinTestKit
import Synchronization
import Testing

@testable import Rein

/// Keeps every warning logged through ``logger``.
final class Warnings: Sendable {
    private let lines = Mutex<[String]>([])

    struct Handler: LogHandler {
        let sink: Warnings
        var logLevel: Logger.Level = .warning
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { sink.lines.withLock { $0.append("\(event.message)") } }
    }

    var logger: Logger { Logger(label: "rein.warnings") { [self] _ in Handler(sink: self) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

@Suite("Checkpoint store")
struct CheckpointStoreTests {
    let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func store() throws -> CheckpointStore { CheckpointStore(folder: try TestKit.temporaryRunFolder()) }

    @Test func fnv1a64MatchesTheReferenceVectors() {
        #expect(FNV1a64.hash(Data()) == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a64.hash(Data("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a64.hash(Data("foobar".utf8)) == 0x8594_4171_f739_67e8)
    }

    @Test func theNewestIsLoadedAndTheOneBeforeKept() throws {
        let store = try store()
        #expect(try store.load(kind: "k", logger: quiet) == nil && !store.exists)
        try store.save(["a.bin": Data([1, 2, 3])], kind: "k")
        try store.save(["a.bin": Data([4, 5])], kind: "k")
        #expect(try store.load(kind: "k", logger: quiet)?.files == ["a.bin": Data([4, 5])])
        #expect(try CheckpointStore.verify(store.previous).files == ["a.bin": Data([1, 2, 3])])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: store.folder.path).filter {
            $0.hasPrefix(".")
        }
        #expect(leftovers.isEmpty)
    }

    @Test func aDamagedNewestFallsBackToThePreviousWithAWarning() throws {
        for damage in ["flip", "truncate", "no manifest", "missing"] {
            let store = try store()
            try store.save(["a.bin": Data(repeating: 1, count: 64)], kind: "k")
            try store.save(["a.bin": Data(repeating: 2, count: 64)], kind: "k")
            let file = store.current + "/a.bin"
            switch damage {
            case "flip": try (Data(repeating: 2, count: 63) + Data([3])).write(to: URL(fileURLWithPath: file))
            case "truncate": try Data(repeating: 2, count: 10).write(to: URL(fileURLWithPath: file))
            case "no manifest": try FileManager.default.removeItem(atPath: store.current + "/manifest.json")
            default: try FileManager.default.removeItem(atPath: store.current)
            }
            let warnings = Warnings()
            let loaded = try #require(try store.load(kind: "k", logger: warnings.logger), "\(damage)")
            #expect(loaded.files["a.bin"] == Data(repeating: 1, count: 64), "\(damage)")
            #expect(loaded.directory == store.previous)
            #expect(warnings.text.contains("using the previous good one"), "\(damage): \(warnings.text)")
        }
    }

    @Test func neitherUsableIsAnErrorNamingBoth() throws {
        let store = try store()
        try store.save(["a.bin": Data([1])], kind: "k")
        try store.save(["a.bin": Data([2])], kind: "k")
        for directory in [store.current, store.previous] {
            try Data([9]).write(to: URL(fileURLWithPath: directory + "/a.bin"))
        }
        #expect {
            _ = try store.load(kind: "k", logger: quiet)
        } throws: { error in
            let text = "\(error)"
            return text.contains(store.current + "/a.bin has checksum")
                && text.contains(store.previous + "/a.bin has checksum") && text.contains("--fresh")
        }
    }

    @Test func aCheckpointOfAnotherKindOrWithAPathInItsManifestIsRefused() throws {
        let store = try store()
        try store.save(["a.bin": Data([1])], kind: "single-process trainer")
        #expect(throws: CheckpointError.self) {
            _ = try store.load(kind: "distributed learner", logger: quiet)
        }
        let manifest = store.current + "/manifest.json"
        let text = try String(contentsOfFile: manifest, encoding: .utf8).replacingOccurrences(
            of: "\"a.bin\"", with: "\"..\\/a.bin\"")
        try text.write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(throws: CheckpointError.self) { _ = try CheckpointStore.verify(store.current) }
    }

    @Test func theTrainerResumesFromThePreviousCheckpointWhenTheNewestIsTruncated() throws {
        let (config, reference, folder) = try tinyRun()
        let a = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
        _ = try a.runStep()
        try a.saveCheckpoint()
        let afterOne = a.learner.model.parameters.values
        _ = try a.runStep()
        try a.saveCheckpoint()
        let policy = folder.file("checkpoint/policy.safetensors")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: policy))
        try bytes.prefix(100).write(to: URL(fileURLWithPath: policy))
        let b = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
        try b.resume(
            from: try #require(
                try CheckpointStore(folder: folder).load(kind: Trainer.checkpointKind, logger: quiet)))
        #expect(b.step == 1 && b.learner.version == 1)
        #expect(b.learner.model.parameters.values == afterOne)
    }
}
