import Foundation
import Rein
import ReinRuntime
import Testing

@Suite(
    "Multi-process runs with CURVE (rein keys, rein learner --allow, rein worker --learner-key)",
    .enabled(if: reinExecutable != nil, "needs the built rein"))
struct SecureMultiProcessTests {
    /// The lines of `process`'s output above debug level that mention `text` (this test traces).
    static func reported(_ text: String, in process: ReinProcess) -> Int {
        process.log.split(separator: "\n").count {
            $0.contains(text) && !$0.contains(" debug ") && !$0.contains(" trace ")
        }
    }

    @Test func anAllowedWorkerTrainsAStrangerIsRefusedAndNoSecretIsLogged() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-curve-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, folder) in [("learner", "learner"), ("worker-1", "workers"), ("stranger", "outside")] {
            let (status, output) = try await runRein([
                "keys", "generate", "--out", "\(dir)/\(folder)", "--name", name,
            ])
            #expect(status == 0, "\(output)")
            #expect(output.contains("public key "))
        }
        let secrets = try ["learner/learner", "workers/worker-1", "outside/stranger"].map {
            try String(contentsOfFile: "\(dir)/\($0).key", encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        let runDir = "\(dir)/run"
        let trace = ["REIN_LOG_LEVEL": "trace"]
        let learner = try ReinProcess(
            [
                "learner", "--bind", "tcp://127.0.0.1:*", "--random-reference", "2",
                "--curve-secret", "\(dir)/learner/learner.key", "--allow", "\(dir)/workers",
            ]
                + tinyOverrides(steps: 3, maxStaleness: 0, runDir: runDir), environment: trace)
        defer { learner.kill() }
        #expect(await eventually(within: .seconds(30)) { learner.stdout.contains("learner listening on") })
        let endpoint = try #require(
            learner.stdout.split(separator: "\n").first { $0.hasPrefix("learner listening on ") }?
                .dropFirst("learner listening on ".count))

        func worker(_ key: String, name: String) throws -> ReinProcess {
            try ReinProcess(
                [
                    "worker", "--learner", String(endpoint), "--name", name, "--curve-secret", key,
                    "--learner-key", "\(dir)/learner/learner.pub",
                ]
                    + tinyOverrides(steps: 3, maxStaleness: 0, runDir: runDir), environment: trace)
        }
        let stranger = try worker("\(dir)/outside/stranger.key", name: "stranger")
        defer { stranger.kill() }
        // A refused worker exits non-zero, with one line that says why and how to fix it (the
        // limit only bounds how long a failing test waits: it used to wait for ever).
        let strangerStatus = await stranger.termination.status(within: .seconds(120))
        #expect(strangerStatus != nil && strangerStatus != 0, "the stranger exits with an error")
        #expect(
            Self.reported("refused this node's CURVE key", in: stranger) == 1,
            "\(stranger.stderr.suffix(2000))")
        #expect(stranger.stderr.contains("--allow"))
        #expect(
            await eventually(within: .seconds(30)) { learner.stderr.contains("is not on the allow-list") },
            "the learner refuses the stranger: \(learner.stderr.suffix(2000))")
        // So does an allowed worker given the wrong --learner-key (its handshakes are dropped).
        let misled = try ReinProcess(
            [
                "worker", "--learner", String(endpoint), "--name", "misled", "--curve-secret",
                "\(dir)/workers/worker-1.key", "--learner-key", "\(dir)/outside/stranger.pub",
            ] + tinyOverrides(steps: 3, maxStaleness: 0, runDir: runDir), environment: trace)
        defer { misled.kill() }
        let misledStatus = await misled.termination.status(within: .seconds(120))
        #expect(misledStatus != nil && misledStatus != 0, "the misled worker exits with an error")
        #expect(
            Self.reported("is --learner-key the learner's public key?", in: misled) == 1,
            "\(misled.stderr.suffix(2000))")
        let allowed = try worker("\(dir)/workers/worker-1.key", name: "worker-1")
        defer { allowed.kill() }
        #expect(await eventually(within: .seconds(90)) { !learner.process.isRunning })
        learner.process.waitUntilExit()
        #expect(learner.process.terminationStatus == 0, "\(learner.stderr.suffix(3000))")
        #expect(await eventually(within: .seconds(20)) { !allowed.process.isRunning })
        allowed.process.waitUntilExit()
        #expect(allowed.process.terminationStatus == 0, "\(allowed.stderr.suffix(3000))")
        #expect(
            learner.stderr.components(separatedBy: "joined at version").count == 2, "only one worker joined")
        let ledger = try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
        #expect(ledger.balances && ledger.trained == 3 * 16)
        stranger.kill()
        let logs =
            learner.stderr + learner.stdout + allowed.stderr + allowed.stdout + stranger.stderr
            + stranger.stdout + misled.stderr + misled.stdout
        #expect(logs.count > 1000, "trace logs captured")
        for secret in secrets { #expect(!logs.contains(secret), "a secret key appeared in a log") }
    }

    /// `rein launch --curve`: the children run on fresh keys in a private directory (gone when the
    /// launch ends); the workers train; a stranger with a key of its own is refused and counted,
    /// and the run goes on; SIGTERM drains it to a balanced ledger.
    @Test func launchWithCurveTrainsRefusesAStrangerAndRemovesItsKeys() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-launch-curve-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, output) = try await runRein([
            "keys", "generate", "--out", "\(dir)/outside", "--name", "stranger",
        ])
        #expect(status == 0, "\(output)")
        let runDir = "\(dir)/run"
        let launch = try ReinProcess(
            ["launch", "--workers", "2", "--curve", "--random-reference", "2"]
                + tinyOverrides(steps: 1_000_000, maxStaleness: 2, runDir: runDir),
            environment: ["TMPDIR": dir])
        defer { launch.kill() }
        #expect(
            await eventually(within: .seconds(60)) {
                launch.log.components(separatedBy: "joined at version").count >= 3
            }, "both workers join: \(launch.log.suffix(3000))")
        #expect(launch.log.contains("CURVE on: 2 worker key(s) allowed"))
        let keyDirs = try FileManager.default.contentsOfDirectory(atPath: dir).filter {
            $0.hasPrefix("rein-launch-keys-")
        }
        let keyDir = "\(dir)/\(try #require(keyDirs.first))"
        #expect(keyDirs.count == 1)
        let mode = try FileManager.default.attributesOfItem(atPath: keyDir)[.posixPermissions] as? Int
        #expect(mode == 0o700, "the key directory is private")
        let endpoint = try #require(
            launch.stdout.split(separator: "\n").compactMap { line in
                line.range(of: "learner listening on ").map { line[$0.upperBound...] }
            }.first)

        let stranger = try ReinProcess(
            [
                "worker", "--learner", String(endpoint), "--name", "stranger", "--curve-secret",
                "\(dir)/outside/stranger.key", "--learner-key", "\(keyDir)/learner.pub",
            ] + tinyOverrides(steps: 1_000_000, maxStaleness: 2, runDir: runDir))
        defer { stranger.kill() }
        let strangerStatus = await stranger.termination.status(within: .seconds(120))
        #expect(
            strangerStatus != nil && strangerStatus != 0,
            "the stranger is refused: \(stranger.log.suffix(2000))")
        #expect(stranger.stderr.contains("refused this node's CURVE key"))
        #expect(
            await eventually(within: .seconds(30)) { launch.stderr.contains("is not on the allow-list") },
            "the learner counts the refusal")

        kill(launch.pid, SIGTERM)
        let launchStatus = await launch.termination.status(within: .seconds(120))
        #expect(launchStatus == 0, "\(launch.log.suffix(3000))")
        let ledger = try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
        #expect(ledger.balances && ledger.inFlight == 0 && ledger.trained > 0)
        #expect(ledger.produced == ledger.trained + ledger.lost + ledger.droppedTotal)
        #expect(!FileManager.default.fileExists(atPath: keyDir), "the launch removes its keys")
    }
}
