import Foundation
import Logging
import Rein
import ReinModel
import ReinTasks
import Testing
import ZeroMQ

@testable import ReinActors
@testable import ReinRuntime

/// A learner (ROUTER, weight PUB, sample PULL) with CURVE on and a ZAP handler admitting `allowed`.
struct SecureLearner {
    let context: ZMQContext
    let system: ReinActorSystem
    let learner: LearnerActor
    let broadcaster: WeightBroadcaster
    let sink: ZMQSampleSource
    let authenticator: ZMQAuthenticator
    let keys: ZMQCurveKeyPair
    let wire: WireOptions
    let endpoint: String

    init(config: RunConfig, reference: GPTParameters, allowed: Set<String>, logger: Logger) async throws {
        context = try ZMQContext()
        keys = try ZMQCurveKeyPair.generate()
        wire = WireOptions(security: TransportSecurity(keys: keys))
        authenticator = try ZMQAuthenticator(context: context, allowedKeys: allowed)
        system = try ReinActorSystem(
            context: context,
            configuration: .init(
                name: LearnerActor.name, bind: "tcp://127.0.0.1:*", security: wire.security,
                rejections: wire.rejections),
            settings: testSettings, logger: logger)
        broadcaster = try WeightBroadcaster(
            context: context, node: system.node, bind: "tcp://127.0.0.1:*", security: wire.security)
        learner = try LearnerActor.named(
            on: system, config: config, reference: reference, broadcaster: broadcaster, logger: logger)
        sink = ZMQSampleSource(context: context, bind: "tcp://127.0.0.1:*", wire: wire, logger: logger)
        sink.attach(to: learner)
        try await learner.acceptSamples(at: await sink.endpoint())
        endpoint = try #require(system.endpoint)
    }

    func close() async {
        sink.close()
        broadcaster.close()
        await system.shutdown()
        authenticator.stop()
    }
}

@Suite("CURVE security of a run")
struct WireSecurityTests {
    @Test func anAllowedWorkerTrainsTheRunAndNoSecretKeyIsEverLogged() async throws {
        let (config, reference, folder) = try tinyRun(steps: 3, maxStaleness: 0)
        let log = CapturedLog()
        let keyDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-keys-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: keyDirectory) }
        let worker = try CurveKeyFiles.generate(in: keyDirectory, name: "worker")
        let allowed = try CurveKeyFiles.readAllowList(keyDirectory)
        let secure = try await SecureLearner(
            config: config, reference: reference, allowed: allowed, logger: log.logger("rein.learner"))
        let workerContext = try ZMQContext()
        let workerWire = WireOptions(
            security: TransportSecurity(
                keys: try CurveKeyFiles.readSecret(worker.secretFile), serverKey: secure.keys.publicKey))
        let workerSystem = try ReinActorSystem(
            context: workerContext,
            configuration: .init(
                name: "worker", security: workerWire.security, rejections: workerWire.rejections),
            settings: testSettings, logger: log.logger("rein.worker"))
        async let served = serveLearner(
            secure.learner, on: secure.system, folder: folder, logger: log.logger("rein.serve"))
        try await runWorker(
            on: workerSystem, learnerAddress: secure.endpoint, config: config, gpt: reference.config,
            logger: log.logger("rein.worker"),
            channels: ZMQBulkChannels(context: workerContext, wire: workerWire, logger: quiet),
            wire: workerWire)
        let result = try await served
        #expect(
            result.ledger.trained == config.train.steps * config.train.promptsPerStep * config.train.groupSize
        )
        #expect(result.weights.version == config.train.steps)
        #expect(
            secure.authenticator.admitted >= 3, "ROUTER, sample PULL and weight PUB each admitted the worker")
        #expect(secure.authenticator.denied == 0)
        await workerSystem.shutdown()
        await secure.close()

        let lines = log.all
        #expect(lines.count >= 5, "trace logging captured (\(lines.count) lines)")
        for secret in [secure.keys.secretKey, worker.keys.secretKey] {
            #expect(!lines.contains { $0.contains(secret) }, "a secret key appeared in the log")
        }
        let mode =
            try FileManager.default.attributesOfItem(atPath: worker.secretFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func aPeerWithoutAnAllowedKeyCannotJoinSendSamplesOrReceiveWeights() async throws {
        let (config, reference, _) = try tinyRun(steps: 2, maxStaleness: 0)
        let allowedKeys = try ZMQCurveKeyPair.generate()
        let strangerKeys = try ZMQCurveKeyPair.generate()
        let secure = try await SecureLearner(
            config: config, reference: reference, allowed: [allowedKeys.publicKey], logger: quiet)
        let outside = try ZMQContext()
        let stranger = TransportSecurity(keys: strangerKeys, serverKey: secure.keys.publicKey)
        let allowed = TransportSecurity(keys: allowedKeys, serverKey: secure.keys.publicKey)

        // Cannot join: the connect fails with an error that says what to check.
        let strangerSystem = try ReinActorSystem(
            context: outside, configuration: .init(name: "stranger", security: stranger),
            settings: testSettings,
            logger: quiet)
        // The learner's ZAP handler refuses the key, and the worker is told so at once (not after
        // its 30 s connect timeout).
        let error = await #expect(throws: TransportSecurityError.self) {
            try await runWorker(
                on: strangerSystem, learnerAddress: secure.endpoint, config: config, gpt: reference.config,
                logger: quiet,
                channels: ZMQBulkChannels(
                    context: outside, wire: WireOptions(security: stranger), logger: quiet),
                connectTimeout: .seconds(30), wire: WireOptions(security: stranger))
        }
        #expect(error?.description.contains("--allow") == true)
        // Without CURVE at all, no better: a plain worker is told the learner requires CURVE and
        // which flags to add, instead of "no welcome" after its timeout.
        let plain = try ReinActorSystem(
            context: outside, configuration: .init(name: "plain"), settings: testSettings, logger: quiet)
        let refusal = await #expect(throws: TransportSecurityError.self) {
            try await plain.connect(to: secure.endpoint, timeout: .seconds(30))
        }
        #expect(refusal?.description.contains("requires CURVE") == true)
        #expect(refusal?.description.contains("--curve-secret") == true)
        #expect(refusal?.description.contains("--learner-key") == true)
        #expect(secure.system.members.isEmpty)

        // Cannot send samples: nothing reaches the sample stream's checks. An allowed key's batch
        // does (and is refused there, as unassigned), which shows the path is open to it.
        let samples = await secure.sink.endpoint()
        for (security, name) in [(stranger, "stranger"), (allowed, "allowed")] {
            let push = try BulkSender(
                context: outside, node: .random(), link: .connect(samples), sendTimeout: .seconds(1),
                security: security)
            try? await push.send(Self.sampleFrames(), policyVersion: 0)
            if name == "allowed" {
                #expect(await eventually { secure.sink.rejections.count(WireRejections.refused) == 1 })
            } else {
                try await Task.sleep(for: .milliseconds(500))
                #expect(secure.sink.rejections.total == 0, "the stranger's batch reached the learner")
            }
            push.close()
        }
        #expect(try await secure.learner.currentLedger().produced == 0)

        // Receives no weights: the allowed subscriber does, the stranger never.
        let endpoint = try #require(secure.broadcaster.endpoint)
        let count = reference.values.count
        let strangerCache = WeightCache(
            context: outside, endpoint: endpoint, keep: 2, expectedCount: count,
            wire: WireOptions(security: stranger), logger: quiet)
        let allowedCache = WeightCache(
            context: outside, endpoint: endpoint, keep: 2, expectedCount: count,
            wire: WireOptions(security: allowed), logger: quiet)
        let weights = PolicyWeights(version: 0, values: reference.values)
        #expect(
            await eventually(within: .seconds(10)) {
                try? await secure.broadcaster.publish(weights)
                return allowedCache.receivedCount > 0
            })
        try await Task.sleep(for: .milliseconds(200))
        #expect(strangerCache.receivedCount == 0)
        #expect(secure.authenticator.denied >= 3, "stranger refused on ROUTER, PULL and PUB")
        strangerCache.close()
        allowedCache.close()
        await strangerSystem.shutdown()
        await plain.shutdown()
        await secure.close()
    }

    @Test func aWorkerOfAnotherProtocolVersionGetsAnErrorNamingBothVersions() async throws {
        let (config, reference, _) = try tinyRun(steps: 2, maxStaleness: 0)
        let context = try ZMQContext()
        let log = CapturedLog()
        var configuration = ZMQTransport.Configuration(name: LearnerActor.name, bind: "tcp://127.0.0.1:*")
        let newer = WireHeader.currentVersion + 1
        configuration.protocolVersion = newer  // a newer learner
        let learnerSystem = try ReinActorSystem(
            context: context, configuration: configuration, settings: testSettings,
            logger: log.logger("learner"))
        let learner = try LearnerActor.named(
            on: learnerSystem, config: config, reference: reference, logger: quiet)
        let workerSystem = try ReinActorSystem(
            context: context, configuration: .init(name: "worker"), settings: testSettings, logger: quiet)
        let error = await #expect(throws: WireError.self) {
            try await runWorker(
                on: workerSystem, learnerAddress: try #require(learnerSystem.endpoint), config: config,
                gpt: reference.config, logger: quiet, connectTimeout: .seconds(1))
        }
        #expect(error?.code == .unsupportedVersion)
        #expect(
            error?.context == "peer speaks protocol \(newer), this build speaks \(WireHeader.currentVersion)")
        // The learner's side says it too, in its rate-limited rejection line.
        #expect(
            log.all.contains {
                $0.contains("peer speaks protocol \(WireHeader.currentVersion), this build speaks \(newer)")
            })
        await workerSystem.shutdown()
        await learnerSystem.shutdown()
        withExtendedLifetime(learner) {}
    }

    /// A well-formed sample batch for an assignment that does not exist.
    static func sampleFrames() -> [WireFrame] {
        let rollouts = (0..<4).map { r in
            Rollout(
                id: UInt64(r), group: 0, prompt: [1], completion: [2], behaviourLogProbs: [-1], versions: [0],
                reward: 1, outcome: .correct)
        }
        return SampleBatchLayout.frames(
            SampleColumns(
                RolloutBatch(rollouts: rollouts, groupSize: 4), worker: .random(), index: 77, attempt: 0))
    }
}
