import Foundation
import Rein
import ReinRuntime
import ReinTracker
import Testing

/// The four ways to run the same training: their run folders and consoles must not differ.
enum LaunchMode: String, CaseIterable, CustomStringConvertible {
    /// `rein train`: the plain single-process loop.
    case train
    /// `rein train --workers 2`: learner and workers as actors in one process.
    case trainWithWorkers
    /// `rein launch --workers 2`: learner and workers as child processes.
    case launch
    /// `rein learner` and two `rein worker` processes started by hand.
    case learnerAndWorkers

    var description: String { rawValue }
}

/// `--set` overrides of the parity runs: the tiny run, with a format reward so the random tiny
/// policy earns a reward that varies within groups (θ really moves), held-out evaluations every 2
/// steps, the staleness tracker every 2 steps and checkpoints every 3.
func parityOverrides(runDir: String) -> [String] {
    tinyOverrides(steps: 6, maxStaleness: 0, runDir: runDir)
        + [
            "task.format_reward=0.5", "train.eval_every=2", "train.tracker_every=2",
            "train.checkpoint_every=3",
        ].flatMap { ["--set", $0] }
}

/// Runs `mode` into a fresh run folder; the folder and everything the processes printed.
func runParity(_ mode: LaunchMode) async throws -> (runDir: String, log: String) {
    let runDir = temporaryRunDir("parity-\(mode)")
    let overrides = parityOverrides(runDir: runDir)
    let common = ["--random-reference", "2"] + overrides  // workers get π_ref from the learner
    func finish(_ process: ReinProcess) async throws -> String {
        let status = await process.exit(within: .seconds(240))
        #expect(status == 0, "\(mode): \(process.log)")
        return process.log
    }
    switch mode {
    case .train:
        return (runDir, try await finish(ReinProcess(["train"] + common)))
    case .trainWithWorkers:
        return (runDir, try await finish(ReinProcess(["train", "--workers", "2"] + common)))
    case .launch:
        return (runDir, try await finish(ReinProcess(["launch", "--workers", "2"] + common)))
    case .learnerAndWorkers:
        let learner = try ReinProcess(["learner", "--bind", "tcp://127.0.0.1:*"] + common)
        let endpoint = try #require(await listeningEndpoint(learner), "\(learner.log)")
        let workers = try (0..<2).map {
            try ReinProcess(["worker", "--learner", endpoint, "--name", "worker-\($0)"] + overrides)
        }
        var log = try await finish(learner)
        for worker in workers { log += try await finish(worker) }
        return (runDir, log)
    }
}

/// The top-level JSON keys of `line` (sorted).
func jsonKeys(_ line: some StringProtocol) throws -> [String] {
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
    return ((object as? [String: Any])?.keys.map { $0 } ?? []).sorted()
}

/// The lines of `file` in `runDir`.
func lines(of file: RunFile, in runDir: String) throws -> [Substring] {
    try String(contentsOfFile: runDir + "/" + file.rawValue, encoding: .utf8).split(separator: "\n")
}

/// `rein report`'s curves.csv of `runDir`: the header and the rows, cell by cell.
func reportCurves(_ runDir: String) async throws -> (header: [Substring], rows: [[Substring]]) {
    let out = runDir + "-report"
    let (status, output) = try await runRein(["report", runDir, "--out", out])
    #expect(status == 0, "rein report \(runDir): \(output)")
    let csv = try String(contentsOfFile: out + "/curves.csv", encoding: .utf8).split(separator: "\n")
    let header = try #require(csv.first).split(separator: ",", omittingEmptySubsequences: false)
    return (header, csv.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) })
}

@Suite(
    "Same run folder and console from every launch mode (multi-process)",
    .enabled(if: reinExecutable != nil, "needs the built rein"), .serialized)
struct LaunchModeParityTests {
    @Test func everyLaunchModeWritesTheSameRunFolderAndPrintsTheSameConsole() async throws {
        var runs: [LaunchMode: (runDir: String, log: String)] = [:]
        for mode in LaunchMode.allCases { runs[mode] = try await runParity(mode) }
        let single = try #require(runs[.train])
        let singleFolder = try RunFolder.existing(single.runDir)
        let singleMetrics = try singleFolder.metrics()
        // θ really moves: rewards vary, the policy drifts from π_ref, evaluations are recorded.
        #expect(singleMetrics.count == 6)
        #expect(singleMetrics.contains { $0.reward > 0 })
        #expect(singleMetrics.contains { ($0.learner?.exactKL ?? 0) > 0 })
        #expect(singleMetrics.map { $0.evalGreedy != nil } == [false, true, false, true, false, false])
        let singleFiles = try Set(FileManager.default.contentsOfDirectory(atPath: single.runDir))
        for file in [RunFile.config, .metrics, .evalStart, .eval, .ledger, .tracker, .checkpoint] {
            #expect(singleFiles.contains(file.rawValue), "train wrote no \(file.rawValue)")
        }
        let singleCurves = try await reportCurves(single.runDir)
        let singleTracker = try singleFolder.records(TrackerRecord.self, of: .tracker).map(\.step)
        #expect(singleTracker.count == 3)

        for mode in LaunchMode.allCases {
            let run = try #require(runs[mode])
            let folder = try RunFolder.existing(run.runDir)
            // The same files (status.json is the learner process's own, for `rein status`;
            // workers.json, of the modes with workers, what each of them contributed).
            let files = try Set(FileManager.default.contentsOfDirectory(atPath: run.runDir))
            #expect(
                files.subtracting([RunFile.status.rawValue, RunFile.workers.rawValue]) == singleFiles,
                "\(mode)")
            if mode != .train {
                let workers = try #require(try folder.read(WorkerContributions.self, from: .workers)).workers
                let trained = try folder.ledger(RuntimeLedger.self)?.trained
                #expect(workers.count == 2 && workers.map(\.samples).reduce(0, +) == trained, "\(mode)")
            }
            // The same schema: every file reads back through the typed run folder, with the same keys.
            let metrics = try folder.metrics()
            #expect(metrics.map(comparable) == singleMetrics.map(comparable), "\(mode)")
            #expect(metrics.map(\.evalGreedy) == singleMetrics.map(\.evalGreedy), "\(mode)")
            #expect(metrics.map(\.evalSampled) == singleMetrics.map(\.evalSampled), "\(mode)")
            #expect(
                try lines(of: .metrics, in: run.runDir).map(jsonKeys)
                    == lines(of: .metrics, in: single.runDir).map(jsonKeys), "\(mode)")
            #expect(
                try lines(of: .tracker, in: run.runDir).map(jsonKeys)
                    == lines(of: .tracker, in: single.runDir).map(jsonKeys), "\(mode)")
            #expect(
                try folder.records(TrackerRecord.self, of: .tracker).map(\.step) == singleTracker, "\(mode)")
            for file in [RunFile.evalStart, .eval, .ledger] {
                #expect(
                    try jsonKeys(String(contentsOfFile: folder.file(file), encoding: .utf8))
                        == jsonKeys(String(contentsOfFile: singleFolder.file(file), encoding: .utf8)),
                    "\(mode): \(file.rawValue)")
            }
            let start = try #require(try folder.evaluation(start: true), "\(mode)")
            let end = try #require(try folder.evaluation(), "\(mode)")
            #expect(start.sampled != nil && end.sampled != nil, "\(mode): greedy and sampled")
            #expect(start == (try singleFolder.evaluation(start: true)), "\(mode)")
            #expect(end == (try singleFolder.evaluation()), "\(mode)")
            let ledger = try #require(try folder.ledger(RuntimeLedger.self), "\(mode)")
            #expect(ledger.balances && ledger.inFlight == 0 && ledger.trained == 6 * 16, "\(mode)")
            // The same configuration, but for run_dir.
            var config = try #require(try folder.config(), "\(mode)")
            config.runDir = single.runDir
            #expect(config == (try singleFolder.config()), "\(mode)")

            // The same console: the progress line and the end summary.
            #expect(run.log.contains("train 6/6  v6 reward"), "\(mode): \(run.log)")
            #expect(run.log.contains("start: held-out accuracy"), "\(mode): \(run.log)")
            #expect(
                run.log.contains(
                    "run folder \(run.runDir): \(end.summary) after 6 steps (policy version 6)"),
                "\(mode): \(run.log)")

            // `rein report` and `rein summarize` take it, with no NaN where the plain run has a number.
            let curves = try await reportCurves(run.runDir)
            #expect(curves.header == singleCurves.header, "\(mode)")
            #expect(curves.rows.count == singleCurves.rows.count, "\(mode)")
            for (row, singleRow) in zip(curves.rows, singleCurves.rows) {
                for (column, (cell, singleCell)) in zip(curves.header, zip(row, singleRow))
                where singleCell != "nan" {
                    #expect(cell != "nan", "\(mode): \(column) is NaN where `rein train` has \(singleCell)")
                }
            }
            let (status, summary) = try await runRein(["summarize", run.runDir])
            #expect(status == 0, "rein summarize (\(mode)): \(summary)")
        }
    }
}
