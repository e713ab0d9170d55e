import ArgumentParser
import Foundation
import Rein
import ReinActors
import ReinRuntime
import Testing

@testable import ReinCLI

@Suite("runtime: config section and rein status")
struct RuntimeConfigTests {
    @Test(arguments: [
        (
            "runtime: {learner_bind: 'udp://0.0.0.0:7070'}",
            "config: runtime.learner_bind: expected tcp://HOST:PORT"
        ),
        (
            "runtime: {learner_bind: 'tcp://0.0.0.0'}",
            "config: runtime.learner_bind: expected tcp://HOST:PORT"
        ),
        (
            "runtime: {learner_bind: 'tcp://0.0.0.0:70000'}",
            "config: runtime.learner_bind: port must be in 1...65535"
        ),
        ("runtime: {broadcast_bind: 'tcp://h:x'}", "config: runtime.broadcast_bind: port must be"),
        ("runtime: {samples_bind: 'ipc://'}", "config: runtime.samples_bind: expected"),
        (
            "runtime: {learner: 'tcp://0.0.0.0:7070'}",
            "config: runtime.learner: 'tcp://0.0.0.0:7070' is a bind address"
        ),
        (
            "runtime: {learner: 'tcp://learner:*'}",
            "config: runtime.learner: port must be in 1...65535, got '*'"
        ),
        ("runtime: {heartbeat_timeout: 0}", "config: runtime.heartbeat_timeout: must be in (0, 3600]"),
        ("runtime: {call_timeout: -1}", "config: runtime.call_timeout: must be in (0, 86400]"),
        ("runtime: {pacing: fast}", "config: runtime.pacing:"),
        ("runtime: {pacing_margin: -0.5}", "config: runtime.pacing_margin: must be in [0, 16]"),
        ("runtime: {min_workers: 0}", "config: runtime.min_workers: must be in 1...max_workers (64), got 0"),
        (
            "train: {partial_rollouts: true, inject_lag: 2, max_staleness: 4}",
            "config: train.partial_rollouts: needs train.inject_lag 0"
        ),
        ("runtime: {max_workers: 0}", "config: runtime.max_workers: must be in 1...65536, got 0"),
        ("runtime: {weight_delivery: multicast}", "config: runtime.weight_delivery:"),
        (
            "{runtime: {weight_delivery: orders}, train: {partial_rollouts: true}}",
            "config: runtime.weight_delivery: orders cannot serve train.partial_rollouts"
        ),
        (
            "runtime: {min_workers: 9, max_workers: 8}",
            "config: runtime.min_workers: must be in 1...max_workers (8), got 9"
        ),
        (
            "security: {curve_secret: ' /etc/rein/l.key'}",
            "config: security.curve_secret: must be a file path"
        ),
        (
            "security: {secret: /etc/rein/l.key}",
            "config: security.secret: unknown key (allowed here: allow, curve_secret, learner_key)"
        ),
        (
            "runtime: {learner_port: 7070}",
            "config: runtime.learner_port: unknown key (allowed here: broadcast_bind,"
        ),
    ])
    func badRuntimeValuesNameTheirKeyPath(yaml: String, message: String) {
        #expect {
            _ = try ConfigLoader.load(RunConfig.self, yaml: yaml)
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    /// A learner bound where the network reaches it, without CURVE, is told so (issue 15: anyone
    /// could join); loopback, ipc and inproc endpoints are not.
    @Test func aLearnerReachableFromTheNetworkWithoutCurveIsWarned() {
        for exposed in ["tcp://0.0.0.0:7070", "tcp://*:7070", "tcp://10.0.0.5:7070", "tcp://learner:7070"] {
            let warning = RuntimeConfig.exposure(bindEndpoint: exposed)
            #expect(warning?.contains("without CURVE") == true, "\(exposed)")
            #expect(warning?.contains(exposed) == true)
        }
        for local in [
            "tcp://127.0.0.1:7070", "tcp://127.0.0.1:*", "tcp://localhost:7070", "ipc:///tmp/l", "inproc://l",
        ] {
            #expect(RuntimeConfig.exposure(bindEndpoint: local) == nil, "\(local)")
        }
    }

    @Test func theSecuritySectionLoadsPathsAndIsOffByDefault() throws {
        #expect(!(try ConfigLoader.load(RunConfig.self, yaml: "")).security.isSet)
        let config = try ConfigLoader.load(
            RunConfig.self, yaml: "security: {curve_secret: /etc/rein/l.key, allow: /etc/rein/workers}",
            overrides: ["security.learner_key=/etc/rein/l.pub"])
        #expect(config.security.curveSecret == "/etc/rein/l.key")
        #expect(config.security.allow == "/etc/rein/workers")
        #expect(config.security.learnerKey == "/etc/rein/l.pub")
        #expect(
            try ConfigLoader.yaml(config).contains("curve_secret: /etc/rein/l.key"), "config show prints it")
    }

    @Test func goodEndpointsLoad() throws {
        let config = try ConfigLoader.load(
            RunConfig.self,
            yaml: """
                runtime: {learner_bind: 'tcp://*:*', broadcast_bind: 'ipc:///tmp/w', samples_bind: auto,
                          learner: 'tcp://[::1]:7070', heartbeat_timeout: 4, call_timeout: 9}
                """)
        #expect(config.runtime.learnerBind == "tcp://*:*")
        #expect(config.runtime.broadcastBind == "ipc:///tmp/w")
        #expect(config.runtime.learner == "tcp://[::1]:7070")
        #expect(config.runtime.heartbeatTimeout == 4 && config.runtime.callTimeout == 9)
    }

    @Test func pacingLoadsAndReachesTheRunStateMachine() throws {
        #expect(try ConfigLoader.load(RunConfig.self, yaml: "").runtime.pacing == RuntimeConfig().pacing)
        for mode in PacingMode.allCases {
            let config = try ConfigLoader.load(RunConfig.self, yaml: "runtime: {pacing: \(mode.rawValue)}")
            #expect(config.runtime.pacing == mode)
            #expect(RunStateMachine<Int>.Settings(config).pacing == mode)
        }
        for partial in [false, true] {
            let config = try ConfigLoader.load(RunConfig.self, yaml: "train: {partial_rollouts: \(partial)}")
            #expect(config.train.partialRollouts == partial)
            #expect(RunStateMachine<Int>.Settings(config).partialRollouts == partial)
        }
        #expect(try ConfigLoader.load(RunConfig.self, yaml: "{}").train.partialRollouts == false)
        let quorum = try ConfigLoader.load(RunConfig.self, yaml: "runtime: {min_workers: 2}")
        #expect(RunStateMachine<Int>.Settings(quorum).minWorkers == 2)
        let margin = try ConfigLoader.load(RunConfig.self, yaml: "runtime: {pacing: auto, pacing_margin: 1}")
        let machine = RunStateMachine<Int>(settings: .init(margin), incarnation: 1)
        #expect(machine.pacer.margin == 1 && machine.pacer.lookahead == 1)
    }

    @Test func configShowPrintsTheRuntimeSection() async throws {
        let output = try await runRein(["config", "show", "--set", "runtime.learner=tcp://learner-0:7171"])
        #expect(output.contains("runtime:\n  learner_bind: tcp://0.0.0.0:7070\n"))
        #expect(output.contains("  learner: tcp://learner-0:7171\n"))
        let value = try await runRein(["config", "show", "--key", "runtime.samples_bind"])
        #expect(value.trimmingCharacters(in: .newlines) == "auto")
        let pacing = try await runRein([
            "config", "show", "--key", "runtime.pacing", "--set", "runtime.pacing=auto",
        ])
        #expect(pacing.trimmingCharacters(in: .newlines) == "auto")
    }

    @Test func learnerEndpointsComeFromConfigAndFlagsOverrideThem() throws {
        var runtime = RuntimeConfig()
        runtime.learnerBind = "tcp://10.0.0.1:7000"
        runtime.samplesBind = "tcp://10.0.0.1:7002"
        let fromConfig = try LearnerCommand.parse([]).endpoints(runtime)
        #expect(fromConfig.bind == "tcp://10.0.0.1:7000")
        #expect(fromConfig.broadcast == "tcp://10.0.0.1:*", "auto: same host, any port")
        #expect(fromConfig.samples == "tcp://10.0.0.1:7002")
        let flags = try LearnerCommand.parse([
            "--bind", "ipc:///tmp/l", "--broadcast-bind", "tcp://*:7100",
        ]).endpoints(runtime)
        #expect(flags.bind == "ipc:///tmp/l")
        #expect(flags.broadcast == "tcp://*:7100")
        #expect(flags.samples == "tcp://10.0.0.1:7002")
        #expect(throws: CLIError.self) { try LearnerCommand.parse(["--bind", "nope"]).endpoints(runtime) }
    }

    @Test func nodeTimeoutsComeFromConfigAndFlagsOverrideThem() throws {
        var config = RunConfig()
        config.runtime.heartbeatTimeout = 4
        config.runtime.callTimeout = 12
        let fromConfig = try NodeOptions.parse([]).settings(config)
        #expect(fromConfig.heartbeatTimeout == .seconds(4))
        #expect(fromConfig.callTimeout == .seconds(12))
        #expect(try NodeOptions.parse([]).arguments.isEmpty, "children read the same config")
        let flags = try NodeOptions.parse(["--heartbeat-timeout", "0.5"])
        #expect(flags.settings(config).heartbeatTimeout == .milliseconds(500))
        #expect(flags.settings(config).callTimeout == .seconds(12))
        #expect(flags.arguments == ["--heartbeat-timeout", "0.5"])
    }

    @Test func aWorkerWithABindAddressAsItsLearnerIsRejectedInOneLine() async throws {
        let message = await userMessage(["worker", "--set", "runtime.learner=tcp://learner:0"])
        #expect(
            message?.contains("runtime.learner: port must be in 1...65535") == true, "\(message ?? "nil")")
        let flag = await userMessage(["worker", "--learner", "tcp://0.0.0.0:7070"])
        #expect(
            flag?.contains("--learner: 'tcp://0.0.0.0:7070' is a bind address") == true, "\(flag ?? "nil")")
    }

    // MARK: rein status

    func statusFolder(_ status: LearnerStatus?) throws -> String {
        let folder = try RunFolder(
            path: FileManager.default.temporaryDirectory.appendingPathComponent(
                "rein-status-\(UUID().uuidString)"
            )
            .path)
        try status?.write(to: folder)
        return folder.path
    }

    func status(_ state: LearnerStatus.State, age: Double, pid: Int32 = getpid()) -> LearnerStatus {
        LearnerStatus(
            state: state, endpoint: "tcp://10.0.0.1:7070", pid: pid, host: ProcessInfo.processInfo.hostName,
            version: 7, workers: 3, trained: 448, updated: Date().timeIntervalSince1970 - age)
    }

    @Test func statusIsReadyOnlyWhileAFreshLearnerListens() async throws {
        let ready = try await runRein(["status", "--run-dir", try statusFolder(status(.listening, age: 1))])
        #expect(ready.hasPrefix("learner listening on tcp://10.0.0.1:7070"))
        #expect(ready.contains("version 7, 3 workers, 448 samples trained"))

        let stale = await userMessage(["status", "--run-dir", try statusFolder(status(.listening, age: 60))])
        #expect(stale?.contains("stale: more than 10.0 s") == true, "\(stale ?? "nil")")
        let finished = await userMessage(["status", "--run-dir", try statusFolder(status(.finished, age: 0))])
        #expect(finished?.contains("learner finished") == true)
        let missing = await userMessage(["status", "--run-dir", try statusFolder(nil)])
        #expect(missing?.contains("no learner status at") == true)
    }

    @Test func statusOfADeadLearnerOnThisHostIsNotReady() async throws {
        // A pid that cannot be running: above the kernel's pid_max.
        let dead = await userMessage([
            "status", "--run-dir", try statusFolder(status(.listening, age: 0, pid: 1 << 30)),
        ])
        #expect(dead?.contains("but no process 1073741824 runs here") == true, "\(dead ?? "nil")")
    }

    @Test func aCorruptStatusFileIsAOneLineError() async throws {
        let dir = try statusFolder(nil)
        try Data("{\"state\": \"listen".utf8).write(to: URL(fileURLWithPath: dir + "/status.json"))
        let message = await userMessage(["status", "--run-dir", dir])
        #expect(
            message?.contains("unreadable learner status: \(dir)/status.json") == true, "\(message ?? "nil")")
        #expect(message?.contains("\n") == false)
    }
}
