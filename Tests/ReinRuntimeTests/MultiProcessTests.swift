import Foundation
import Rein
import ReinRuntime
import Testing

/// The `rein` executable built next to the test bundle, if any.
let reinExecutable: String? = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("rein").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()

/// `--set` overrides reproducing ``tinyRun(steps:maxStaleness:)`` (random reference seed 2).
func tinyOverrides(steps: Int, maxStaleness: Int, runDir: String) -> [String] {
    [
        "threads=1", "model.context=16", "model.d_model=16", "model.layers=1", "model.heads=2",
        "task.train_size=200", "task.held_out_size=50", "train.steps=\(steps)", "train.prompts_per_step=4",
        "train.group_size=4", "train.eval_size=20", "train.lr=0.003", "train.max_staleness=\(maxStaleness)",
        "train.kl.estimator=k2", "train.kl.ratio=token", "run_dir=\(runDir)",
    ].flatMap { ["--set", $0] }
}

/// Runs `rein` with `arguments`; its exit status and standard output.
func runRein(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(reinExecutable))
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while process.isRunning, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return (process.terminationStatus, text)
}

/// The child processes of `pid` (spawned from any of its threads), from /proc.
func childProcesses(of pid: Int32) -> [Int32] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.flatMap { task in
        ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "")
            .split(separator: " ").compactMap { Int32($0) }
    }
}

@Suite(
    "Multi-process runs on loopback (rein launch)",
    .enabled(if: reinExecutable != nil, "needs the built rein"))
struct MultiProcessTests {
    @Test func launchWithThreeWorkersBalancesTheLedgerAndEqualsTheSingleProcessRun() async throws {
        let (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: 0)
        let expected = try singleProcessMetrics(config: config, reference: reference, folder: folder)

        let runDir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-launch-\(UUID().uuidString)"
        ).path
        let (status, output) = try await runRein(
            ["launch", "--workers", "3", "--random-reference", "2"]
                + tinyOverrides(steps: 4, maxStaleness: 0, runDir: runDir))
        #expect(status == 0, "\(output)")
        #expect(output.contains("[learner] learner listening on tcp://127.0.0.1:"))
        let ledger = try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
        #expect(
            ledger.balances && ledger.trained == 4 * 16 && ledger.produced == 4 * 16 && ledger.inFlight == 0)
        let metrics = try RunFolder.existing(runDir).metrics()
        #expect(metrics.map(comparable) == expected.map(comparable))
    }

    @Test func aWorkerKilledWithSIGKILLIsRestartedAndSIGTERMDrainsTheRunToABalancedLedger() async throws {
        let runDir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-kill-\(UUID().uuidString)"
        ).path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(reinExecutable))
        process.arguments =
            ["launch", "--workers", "2", "--random-reference", "2"]
            + tinyOverrides(steps: 1_000_000, maxStaleness: 2, runDir: runDir)
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-kill-\(UUID().uuidString).log")
        #expect(FileManager.default.createFile(atPath: errors.path, contents: nil))
        let errorHandle = try FileHandle(forWritingTo: errors)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errorHandle
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        // Wait for both workers to be at work, then SIGKILL one of them.
        #expect(
            await eventually(within: .seconds(30)) {
                log().components(separatedBy: "joined at version").count >= 3
            })
        let workers = childProcesses(of: process.processIdentifier).filter {
            ((try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) ?? "").contains("worker")
        }
        let victim = try #require(workers.first, "\(log())")
        kill(victim, SIGKILL)
        #expect(
            await eventually(within: .seconds(30)) { log().contains("restart 1") }, "the launcher restarts it"
        )
        #expect(
            await eventually(within: .seconds(30)) {
                log().components(separatedBy: "joined at version").count >= 4
            },
            "the restarted worker rejoins")

        let running = childProcesses(of: process.processIdentifier)
        #expect(running.count == 3, "the learner and two workers")
        // Stopped only once a batch has trained (its step is in metrics.jsonl): on a loaded
        // machine the kill, the restart and the rejoin can all come before the first step.
        #expect(
            await eventually(within: .seconds(60)) {
                ((try? RunFolder.existing(runDir).metrics().count) ?? 0) >= 1
            })
        kill(process.processIdentifier, SIGTERM)
        #expect(await eventually(within: .seconds(40)) { !process.isRunning })
        process.waitUntilExit()
        try errorHandle.close()
        #expect(process.terminationStatus == 0, "\(log())")
        let ledger = try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
        #expect(ledger.balances && ledger.inFlight == 0 && ledger.trained > 0)
        #expect(ledger.produced == ledger.trained + ledger.lost + ledger.droppedTotal)
        #expect(running.allSatisfy { kill($0, 0) != 0 }, "no child outlives the launcher")
    }

    @Test func aSIGKILLedLauncherLeavesNoOrphansAndTheLearnerStillWritesABalancedLedger() async throws {
        let runDir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-orphan-\(UUID().uuidString)"
        )
        .path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(reinExecutable))
        process.arguments =
            ["launch", "--workers", "2", "--random-reference", "2"]
            + tinyOverrides(steps: 1_000_000, maxStaleness: 2, runDir: runDir)
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-orphan-\(UUID().uuidString).log")
        #expect(FileManager.default.createFile(atPath: errors.path, contents: nil))
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }
        #expect(
            await eventually(within: .seconds(30)) {
                log().components(separatedBy: "joined at version").count >= 3
            })
        // Killed only once a batch has trained (its step is in metrics.jsonl), so `trained > 0`
        // below does not depend on how fast a loaded machine got there.
        #expect(
            await eventually(within: .seconds(300)) {
                ((try? RunFolder.existing(runDir).metrics().count) ?? 0) >= 1
            })
        let children = childProcesses(of: process.processIdentifier)
        #expect(children.count == 3)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(
            await eventually(within: .seconds(20)) { children.allSatisfy { kill($0, 0) != 0 } },
            "every child notices its parent died, drains and exits")
        let ledger = try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
        #expect(ledger.balances && ledger.inFlight == 0 && ledger.trained > 0)
    }
}
