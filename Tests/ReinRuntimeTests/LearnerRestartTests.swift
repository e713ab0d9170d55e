import Foundation
import Rein
import ReinRuntime
import Synchronization
import Testing

/// A process's exit, awaited by suspension: resumed by its termination handler, or by a guard
/// timer (only a bound on how long a failing test waits, never a timing assertion).
final class Termination: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    /// The process ended with `status`: every waiter resumes.
    func finished(_ status: Int32) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    /// The exit status once the process ends; `nil` if it still runs after `limit`.
    func status(within limit: Duration) async -> Int32? {
        await withCheckedContinuation { continuation in
            let ticket = state.withLock { state -> Int? in
                guard state.status == nil else { return nil }
                state.next += 1
                state.waiters[state.next] = continuation
                return state.next
            }
            guard let ticket else {
                continuation.resume(returning: state.withLock { $0.status })
                return
            }
            Task {
                try? await Task.sleep(for: limit)
                state.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume(returning: nil)
            }
        }
    }
}

/// A `rein` child process whose standard output and error go to files (read while it runs).
final class ReinProcess {
    let process = Process()
    let out: URL
    let err: URL
    let termination = Termination()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-proc-\(UUID().uuidString)")
        out = base.appendingPathExtension("out")
        err = base.appendingPathExtension("err")
        #expect(FileManager.default.createFile(atPath: out.path, contents: nil))
        #expect(FileManager.default.createFile(atPath: err.path, contents: nil))
        process.executableURL = URL(fileURLWithPath: try #require(reinExecutable))
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.terminationHandler = { [termination] in termination.finished($0.terminationStatus) }
        try process.run()
    }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }

    /// Kills the process (SIGKILL) and waits for it.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }
    var log: String { stdout + stderr }

    /// Waits up to `limit` for the process to exit; its status, or nil if it still runs.
    func exit(within limit: Duration) async -> Int32? {
        guard await eventually(within: limit, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// How many times `text` occurs in the output so far.
    func count(_ text: String) -> Int { log.components(separatedBy: text).count - 1 }
}

/// The endpoint a learner printed (`learner listening on ENDPOINT`).
func listeningEndpoint(_ learner: ReinProcess) async -> String? {
    guard await eventually(within: .seconds(60), { learner.stdout.contains("learner listening on ") }) else {
        return nil
    }
    let line = learner.stdout.split(separator: "\n").first { $0.hasPrefix("learner listening on ") }
    return line.map { String($0.dropFirst("learner listening on ".count)) }
}

/// The records of `metrics.jsonl` in `runDir`.
func readMetrics(_ runDir: String) throws -> [StepMetrics] {
    try RunFolder.existing(runDir).metrics()
}

func readLedger(_ runDir: String) throws -> RuntimeLedger {
    try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
}

func temporaryRunDir(_ label: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("rein-\(label)-\(UUID().uuidString)").path
}

@Suite(
    "Learner restart: checkpoint, SIGKILL and SIGTERM (multi-process)",
    .enabled(if: reinExecutable != nil, "needs the built rein"), .serialized)
struct LearnerRestartTests {
    @Test func aLearnerKilledWithSIGKILLResumesAndItsWorkersReconnectByThemselves() async throws {
        let runDir = temporaryRunDir("learner-kill")
        let steps = 200
        let maxStaleness = 2
        let sets =
            tinyOverrides(steps: steps, maxStaleness: maxStaleness, runDir: runDir)
            + ["--set", "train.checkpoint_every=10"]
        let first = try ReinProcess(
            ["learner", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2"] + sets)
        let endpoint = try #require(await listeningEndpoint(first), "\(first.log)")
        let workers = try (0..<2).map {
            try ReinProcess(["worker", "--learner", endpoint, "--name", "worker-\($0)"] + sets)
        }

        // Kill the learner once it checkpointed twice, with the run well under way.
        #expect(
            await eventually(within: .seconds(90)) { first.count("checkpoint at batch") >= 2 }, "\(first.log)"
        )
        kill(first.pid, SIGKILL)
        #expect(await first.exit(within: .seconds(10)) != nil)
        #expect(
            await eventually(within: .seconds(20)) {
                workers.allSatisfy { $0.count("lost the learner") >= 1 }
            },
            "\(workers.map { $0.log })")

        // The same command on the same endpoint and run folder resumes from the checkpoint.
        let second = try ReinProcess(
            ["learner", "--bind", endpoint, "--random-reference", "2"] + sets)
        let status = await second.exit(within: .seconds(180))
        #expect(status == 0, "\(second.log)")
        let resumed = try #require(
            second.stdout.split(separator: "\n").first { $0.hasPrefix("resuming from a checkpoint") },
            "\(second.log)")
        // "resuming from a checkpoint at batch B, policy version V; ..."
        let numbers = resumed.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let (batch, version) = (numbers[0], numbers[1])
        #expect(batch >= 10 && batch % 10 == 0 && batch < steps)

        // The workers were never restarted: they reconnected and finish normally.
        for worker in workers {
            #expect(await worker.exit(within: .seconds(30)) == 0, "\(worker.log)")
            #expect(worker.count("connected to the learner") >= 2, "\(worker.log)")
        }

        let metrics = try readMetrics(runDir)
        #expect(metrics.map(\.step) == Array(1...steps))
        #expect(metrics[batch - 1].version == version)
        #expect(metrics[batch].version == version + 1, "numbering continues after the checkpoint")
        for (previous, step) in zip(metrics, metrics.dropFirst()) {
            #expect(step.version == previous.version + (step.learner == nil ? 0 : 1), "step \(step.step)")
        }
        #expect(
            metrics.allSatisfy { $0.learner == nil || $0.lagMax <= maxStaleness },
            "no batch older than max_staleness was trained: \(metrics.map(\.lagMax))")
        let ledger = try readLedger(runDir)
        #expect(ledger.balances && ledger.inFlight == 0, "\(ledger.summary)")
        #expect(ledger.trained + ledger.droppedTotal == steps * 16, "\(ledger.summary)")
        #expect(second.stdout.contains("ledger: \(ledger.summary)"))
    }

    /// End to end: a batch sampled for the learner that is then killed reaches the restarted
    /// learner (same sample-stream endpoint, so the worker's PUSH socket reconnects to it) and is
    /// refused, counted, never trained.
    @Test func aBatchInFlightAcrossTheRestartReachesTheNewLearnerAndIsRefused() async throws {
        let runDir = temporaryRunDir("learner-refuse")
        let steps = 4
        let sets =
            tinyOverrides(steps: steps, maxStaleness: 2, runDir: runDir) + [
                "--set", "train.checkpoint_every=1",
            ]
        let first = try ReinProcess(
            ["learner", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2"] + sets)
        let endpoint = try #require(await listeningEndpoint(first), "\(first.log)")
        func logged(_ prefix: String) -> String? {
            first.stderr.split(separator: "\n").lazy.compactMap { line in
                line.range(of: prefix).map { String(line[$0.upperBound...]) }
            }.first
        }
        #expect(
            await eventually(within: .seconds(20)) { logged("weights broadcast on ") != nil }, "\(first.log)")
        let samples = try #require(logged("samples stream in on "), "\(first.log)")
        let weights = try #require(logged("weights broadcast on "), "\(first.log)")
        // The worker holds every batch 4 s before delivering it: longer than the heartbeat
        // timeout (1.5 s) plus the restart.
        let worker = try ReinProcess(
            ["worker", "--learner", endpoint, "--delay-delivery", "4"] + sets)
        #expect(
            await eventually(within: .seconds(60)) { first.count("checkpoint at batch 1,") == 1 },
            "\(first.log)")
        kill(first.pid, SIGKILL)
        #expect(await first.exit(within: .seconds(10)) != nil)
        let second = try ReinProcess(
            [
                "learner", "--bind", endpoint, "--samples-bind", samples, "--broadcast-bind", weights,
                "--random-reference", "2",
            ] + sets)
        #expect(await second.exit(within: .seconds(120)) == 0, "\(second.log)")
        #expect(await worker.exit(within: .seconds(30)) == 0, "\(worker.log)")
        let ledger = try readLedger(runDir)
        // Refused by the learner (counted in the ledger), or — where the sample stream first asks
        // the learner whether the batch is assigned — by the stream, before it reaches the learner.
        let refusedByLearner =
            ledger.refused[.previousLearner, default: 0] >= 16
            && second.log.contains("refused batch 1 attempt 0")
        let refusedByStream =
            second.log.contains("sample batch 1 attempt 0 from") && second.log.contains("is not assigned")
        #expect(refusedByLearner || refusedByStream, "\(ledger.summary)\n\(second.log)")
        #expect(ledger.balances && ledger.inFlight == 0 && ledger.trained + ledger.droppedTotal == steps * 16)
        let metrics = try readMetrics(runDir)
        #expect(metrics.map(\.version) == Array(1...steps), "every batch trained once, in order")
        #expect(metrics.allSatisfy { $0.learner != nil && $0.lagMax <= 2 })
    }

    @Test func launchRestartsASIGKILLedLearnerWhichResumesWhileTheWorkersReconnect() async throws {
        let runDir = temporaryRunDir("launch-learner-kill")
        let steps = 150
        let launch = try ReinProcess(
            ["launch", "--workers", "2", "--random-reference", "2"]
                + tinyOverrides(steps: steps, maxStaleness: 2, runDir: runDir)
                + ["--set", "train.checkpoint_every=10"])
        #expect(
            await eventually(within: .seconds(90)) { launch.count("checkpoint at batch") >= 2 },
            "\(launch.log)")
        let children = childProcesses(of: launch.pid)
        let learner = try #require(
            children.first {
                let cmdline = (try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) ?? ""
                // `rein learner …`, not `rein worker --learner …`
                return cmdline.split(separator: "\0").dropFirst().first == "learner"
            }, "\(launch.log)")
        kill(learner, SIGKILL)
        #expect(await launch.exit(within: .seconds(180)) == 0, "\(launch.log)")
        #expect(launch.log.contains("the learner exited with status 9; restart 1"), "\(launch.log)")
        #expect(launch.log.contains("resuming from a checkpoint at batch"), "\(launch.log)")
        #expect(
            !launch.log.contains("worker-0 exited") && !launch.log.contains("worker-1 exited"),
            "\(launch.log)")
        let metrics = try readMetrics(runDir)
        #expect(metrics.map(\.step) == Array(1...steps))
        #expect(metrics.allSatisfy { $0.learner == nil || $0.lagMax <= 2 })
        let ledger = try readLedger(runDir)
        #expect(ledger.balances && ledger.inFlight == 0 && ledger.trained + ledger.droppedTotal == steps * 16)
    }

    @Test func sigtermMakesTheLearnerCheckpointAndEveryoneExitZeroAndALaterLearnerResumes() async throws {
        let runDir = temporaryRunDir("learner-term")
        let sets =
            tinyOverrides(steps: 1_000_000, maxStaleness: 2, runDir: runDir)
            + ["--set", "train.checkpoint_every=0"]  // only the one SIGTERM writes
        let learner = try ReinProcess(
            ["learner", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2"] + sets)
        let endpoint = try #require(await listeningEndpoint(learner), "\(learner.log)")
        let workers = try (0..<2).map {
            try ReinProcess(["worker", "--learner", endpoint, "--name", "worker-\($0)"] + sets)
        }
        #expect(
            await eventually(within: .seconds(60)) { learner.count("joined at version") >= 2 },
            "\(learner.log)")
        try await Task.sleep(for: .seconds(1))
        kill(learner.pid, SIGTERM)
        #expect(await learner.exit(within: .seconds(40)) == 0, "\(learner.log)")
        for worker in workers { #expect(await worker.exit(within: .seconds(30)) == 0, "\(worker.log)") }

        let metrics = try readMetrics(runDir)
        let checkpoint = try #require(
            try LearnerCheckpoint.load(from: try RunFolder(path: runDir), logger: quiet),
            "SIGTERM checkpointed")
        #expect(checkpoint.state.consumed == metrics.count && metrics.count > 0)
        #expect(checkpoint.state.version == metrics.last?.version)
        #expect(checkpoint.state.ledger.inFlight == 0 && checkpoint.state.ledger.balances)

        // A later learner on the run folder carries on from there (here for 3 more batches).
        let done = metrics.count + 3
        let more = tinyOverrides(steps: done, maxStaleness: 2, runDir: runDir)
        let again = try ReinProcess(
            ["learner", "--resume", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2"] + more)
        let endpoint2 = try #require(await listeningEndpoint(again), "\(again.log)")
        let worker = try ReinProcess(["worker", "--learner", endpoint2] + more)
        #expect(await again.exit(within: .seconds(60)) == 0, "\(again.log)")
        #expect(await worker.exit(within: .seconds(30)) == 0, "\(worker.log)")
        #expect(
            again.stdout.contains("resuming from a checkpoint at batch \(metrics.count), "), "\(again.log)")
        let after = try readMetrics(runDir)
        #expect(
            after.count == done
                && Array(after.prefix(metrics.count)).map(comparable) == metrics.map(comparable))
    }

    @Test func sigtermToTrainWithWorkersDrainsAndCheckpoints() async throws {
        let runDir = temporaryRunDir("train-workers-term")
        let train = try ReinProcess(
            ["train", "--workers", "2", "--random-reference", "2"]
                + tinyOverrides(steps: 1_000_000, maxStaleness: 2, runDir: runDir)
                + ["--set", "train.checkpoint_every=0"])
        #expect(
            await eventually(within: .seconds(60)) { train.count("joined at version") >= 2 }, "\(train.log)")
        try await Task.sleep(for: .seconds(1))
        kill(train.pid, SIGTERM)
        #expect(await train.exit(within: .seconds(60)) == 0, "\(train.log)")
        let metrics = try readMetrics(runDir)
        let checkpoint = try #require(
            try LearnerCheckpoint.load(from: try RunFolder(path: runDir), logger: quiet))
        #expect(checkpoint.state.consumed == metrics.count && metrics.count > 0)
        #expect(checkpoint.state.ledger.inFlight == 0 && checkpoint.state.ledger.balances)
    }

    @Test func trainWithWorkersResumesAndUnusableCheckpointsStopTheLearnerWithOneClearLine() async throws {
        let runDir = temporaryRunDir("train-workers-resume")
        func train(steps: Int, _ extra: [String] = []) async throws -> ReinProcess {
            let process = try ReinProcess(
                ["train", "--workers", "2", "--random-reference", "2"] + extra
                    + tinyOverrides(steps: steps, maxStaleness: 0, runDir: runDir))
            _ = await process.exit(within: .seconds(120))
            return process
        }
        let four = try await train(steps: 4)
        #expect(four.process.terminationStatus == 0, "\(four.log)")
        #expect(four.stdout.contains("(policy version 4)"), "\(four.log)")
        let six = try await train(steps: 6)
        #expect(six.process.terminationStatus == 0, "\(six.log)")
        #expect(six.log.contains("resuming from a checkpoint at batch 4, policy version 4"), "\(six.log)")
        #expect(six.stdout.contains("after 6 steps (policy version 6)"), "\(six.log)")
        #expect(try readMetrics(runDir).map(\.version) == [1, 2, 3, 4, 5, 6])

        // Damage both checkpoints: every command refuses to start, and leaves them as they are.
        try flipByte(in: runDir + "/checkpoint/policy.safetensors")
        try truncate(runDir + "/checkpoint.prev/state.json")
        let before = try [snapshot(runDir + "/checkpoint"), snapshot(runDir + "/checkpoint.prev")]
        let learner = try ReinProcess(
            ["learner", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2"]
                + tinyOverrides(steps: 8, maxStaleness: 0, runDir: runDir))
        #expect(await learner.exit(within: .seconds(60)) != 0)
        let failed = try await train(steps: 8)
        #expect(failed.process.terminationStatus != 0)
        for process in [learner, failed] {
            let errors = process.stderr.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
            #expect(errors.count == 1, "\(process.log)")
            #expect(errors.first?.contains("no usable checkpoint") == true, "\(process.log)")
            #expect(
                errors.first?.contains("checkpoint/policy.safetensors has checksum") == true, "\(process.log)"
            )
        }
        #expect(try [snapshot(runDir + "/checkpoint"), snapshot(runDir + "/checkpoint.prev")] == before)

        // --resume insists on a checkpoint.
        let empty = temporaryRunDir("learner-no-checkpoint")
        let insist = try ReinProcess(
            ["learner", "--resume", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2"]
                + tinyOverrides(steps: 2, maxStaleness: 0, runDir: empty))
        #expect(await insist.exit(within: .seconds(60)) != 0)
        #expect(
            insist.stderr.contains("Error: --resume: no checkpoint in \(empty)/checkpoint"), "\(insist.log)")

        // --fresh starts over.
        let fresh = try await train(steps: 2, ["--fresh"])
        #expect(fresh.process.terminationStatus == 0, "\(fresh.log)")
        #expect(try readMetrics(runDir).map(\.version) == [1, 2])
    }
}
