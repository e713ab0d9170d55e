import ArgumentParser
import Foundation
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import Testing
import ZeroMQ

@testable import ReinCLI

@Suite("rein keys and the security options")
struct KeysCommandTests {
    func directory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("rein-keys-\(UUID().uuidString)").path
    }

    @Test func generateWritesAMatchingPairWithAPrivateSecretFile() async throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let output = try await runRein(["keys", "generate", "--out", dir, "--name", "learner"])
        let publicKey = try String(contentsOfFile: "\(dir)/learner.pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let secret = try String(contentsOfFile: "\(dir)/learner.key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ZMQCurveKeyPair.isZ85Key(publicKey) && ZMQCurveKeyPair.isZ85Key(secret))
        #expect(try ZMQCurveKeyPair.publicKey(forSecret: secret) == publicKey)
        #expect(output.contains(publicKey))
        #expect(!output.contains(secret), "the secret key is never printed")
        let mode =
            try FileManager.default.attributesOfItem(atPath: "\(dir)/learner.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try CurveKeyFiles.readSecret("\(dir)/learner.key").publicKey == publicKey)
        #expect(try CurveKeyFiles.readAllowList(dir) == [publicKey])
    }

    @Test func generateRefusesToOverwriteWithoutForce() async throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await runRein(["keys", "generate", "--out", dir, "--name", "node"])
        let before = try String(contentsOfFile: "\(dir)/node.key", encoding: .utf8)
        let message = await userMessage(["keys", "generate", "--out", dir, "--name", "node"])
        #expect(
            message?.contains("node.") == true && message?.contains("--force") == true, "\(message ?? "")")
        #expect(try String(contentsOfFile: "\(dir)/node.key", encoding: .utf8) == before)
        _ = try await runRein(["keys", "generate", "--out", dir, "--name", "node", "--force"])
        #expect(try String(contentsOfFile: "\(dir)/node.key", encoding: .utf8) != before)
    }

    @Test func badKeyFilesAreOneLineErrorsThatNeverShowTheContent() throws {
        let junk = try temporaryFile("not-a-key-but-a-secret-looking-string-xyz\n", name: "bad.key")
        let error = #expect(throws: TransportSecurityError.self) { try CurveKeyFiles.readSecret(junk) }
        #expect(error?.description.contains(junk) == true)
        #expect(error?.description.contains("secret-looking") == false)
        let list = try temporaryFile("# workers\n\nshort\n", name: "allow.txt")
        #expect(throws: TransportSecurityError.self) { try CurveKeyFiles.readAllowList(list) }
        #expect(throws: TransportSecurityError.self) { try CurveKeyFiles.readAllowList("/nonexistent/allow") }
        #expect(throws: TransportSecurityError.self) {
            try CurveKeyFiles.generate(in: NSTemporaryDirectory(), name: "../escape")
        }
    }

    @Test func securityOptionsMustComeInPairs() throws {
        func check(_ arguments: [String], server: Bool) throws {
            _ = try WireSecurityOptions.parse(arguments).resolve(
                SecurityConfig(), role: server ? .learner : .worker)
        }
        #expect(throws: (any Error).self) { try check(["--curve-secret", "k"], server: true) }
        #expect(throws: (any Error).self) { try check(["--allow", "d"], server: true) }
        #expect(throws: (any Error).self) { try check(["--learner-key", "p"], server: true) }
        #expect(throws: (any Error).self) { try check(["--curve-secret", "k"], server: false) }
        #expect(throws: (any Error).self) {
            try check(["--allow", "d", "--curve-secret", "k"], server: false)
        }
        #expect(throws: (any Error).self) { try check(["--max-frame-bytes", "10"], server: false) }
        try check(["--curve-secret", "k", "--allow", "d"], server: true)
        try check(["--curve-secret", "k", "--learner-key", "p"], server: false)
        try check([], server: false)
    }

    @Test func theSecuritySectionResolvesWithFlagsOverItKeyByKey() throws {
        var configured = SecurityConfig()
        configured.curveSecret = "/etc/rein/node.key"
        configured.allow = "/etc/rein/workers"
        configured.learnerKey = "/etc/rein/learner.pub"
        let none = try WireSecurityOptions.parse([])
        // One file serves both roles: each takes its own keys and ignores the other's.
        #expect(
            try none.resolve(configured, role: .learner)
                == .init(
                    secretFile: "/etc/rein/node.key", allowList: "/etc/rein/workers", learnerKeyFile: nil))
        #expect(
            try none.resolve(configured, role: .worker)
                == .init(
                    secretFile: "/etc/rein/node.key", allowList: nil, learnerKeyFile: "/etc/rein/learner.pub")
        )
        let flags = try WireSecurityOptions.parse(["--curve-secret", "/tmp/w.key"])
        #expect(try flags.resolve(configured, role: .worker).secretFile == "/tmp/w.key")
        #expect(try flags.resolve(configured, role: .worker).learnerKeyFile == "/etc/rein/learner.pub")
        #expect(try none.resolve(SecurityConfig(), role: .learner).secretFile == nil, "off by default")
        // Half a pair in the file names the missing key.
        var half = SecurityConfig()
        half.curveSecret = "/etc/rein/node.key"
        let error = #expect(throws: ConfigError.self) { try none.resolve(half, role: .worker) }
        #expect(error?.path == "security.learner_key")
        half.curveSecret = SecurityConfig.off
        half.allow = "/etc/rein/workers"
        #expect(
            (#expect(throws: ConfigError.self) { try none.resolve(half, role: .learner) })?.path
                == "security.curve_secret")
        // The flag completes the pair the file started.
        #expect(
            try WireSecurityOptions.parse(["--curve-secret", "/k"]).resolve(half, role: .learner).allowList
                == "/etc/rein/workers")
    }

    @Test func theFrameLimitFitsTheRunUnlessGiven() throws {
        let config = RunConfig()
        let model = GPTConfig.default
        let derived = try WireSecurityOptions.parse([]).limits(config: config, model: model)
        #expect(derived == WireLimits.forRun(config, model: model))
        #expect(derived.maxFrameBytes != WireLimits.default.maxFrameBytes)
        #expect(try WireSecurityOptions.parse([]).arguments.isEmpty, "children derive it themselves")
        let given = try WireSecurityOptions.parse(["--max-frame-bytes", "4096"])
        #expect(given.limits(config: config, model: model).maxFrameBytes == 4096)
        #expect(given.arguments == ["--max-frame-bytes", "4096"])
    }

    @Test func aMissingKeyFileStopsTheLearnerWithOneLine() async throws {
        let message = await userMessage([
            "learner", "--random-reference", "1", "--curve-secret", "/nonexistent/l.key", "--allow",
            "/nonexistent",
            "--set", "run_dir=\(directory())",
        ])
        #expect(message?.contains("/nonexistent/l.key") == true, "\(message ?? "")")
    }

    @Test func aHalfPairInTheSecuritySectionStopsTheLearnerWithOneLineNamingTheKey() async throws {
        let message = await userMessage([
            "learner", "--random-reference", "1", "--set", "security.curve_secret=/nonexistent/l.key",
            "--set", "run_dir=\(directory())",
        ])
        #expect(
            message?.hasPrefix("config: security.allow: the learner needs both") == true, "\(message ?? "")")
    }

    @Test func launchRefusesOneNodesSecuritySectionWithoutCurve() async throws {
        let message = await userMessage([
            "launch", "--random-reference", "1", "--set", "security.curve_secret=/k", "--set",
            "security.allow=/d", "--set", "run_dir=\(directory())",
        ])
        #expect(message?.contains("--curve") == true, "\(message ?? "")")
    }

    @Test func launchKeysArePrivateAndEveryWorkerIsOnTheLearnersAllowList() throws {
        let parent = directory()
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let keys = try LaunchKeys.generate(workers: 3, parent: parent)
        let mode = try FileManager.default.attributesOfItem(atPath: keys.directory)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        let launch = try LaunchCommand.parse(["--workers", "3"])
        let options = try launch.supervisorOptions(RunConfig(), keys: keys)
        let allowList = try #require(
            options.learnerArguments.firstIndex(of: "--allow").map { options.learnerArguments[$0 + 1] })
        let allowed = try CurveKeyFiles.readAllowList(allowList)
        let learnerSecret = try #require(
            options.learnerArguments.firstIndex(of: "--curve-secret").map { options.learnerArguments[$0 + 1] }
        )
        let learnerPublic = try CurveKeyFiles.readSecret(learnerSecret).publicKey
        #expect(allowed.count == 3)
        for arguments in options.perWorkerArguments {
            let value = { (flag: String) in arguments.firstIndex(of: flag).map { arguments[$0 + 1] } }
            let secret = try #require(value("--curve-secret"))
            #expect(allowed.contains(try CurveKeyFiles.readSecret(secret).publicKey))
            #expect(try CurveKeyFiles.readPublic(try #require(value("--learner-key"))) == learnerPublic)
        }
        #expect(!options.workerArguments.contains("--curve-secret"), "each worker has its own key")
        keys.remove()
        #expect(!FileManager.default.fileExists(atPath: keys.directory))
    }
}
