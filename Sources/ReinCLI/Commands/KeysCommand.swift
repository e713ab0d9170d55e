import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ZeroMQ

/// `rein keys`: CURVE key pairs for authenticated, encrypted learner/worker traffic.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage CURVE key pairs (authentication and encryption of learner/worker traffic).",
        subcommands: [KeysGenerateCommand.self]
    )
}

/// `rein keys generate --out DIR [--name NAME] [--force]`.
struct KeysGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a key pair: NAME.pub (public key) and NAME.key (secret key, mode 0600).",
        discussion: """
            Give the learner its NAME.key (--curve-secret) and a directory of the workers' .pub files \
            (--allow); give each worker its own NAME.key (--curve-secret) and the learner's .pub \
            (--learner-key). Keys are 40-character Z85 text. Prints the public key, never the secret.
            """
    )

    @Option(name: .long, help: "Directory to write the key files to (created if missing).")
    var out: String

    @Option(name: .long, help: "File name stem of the key pair.")
    var name = "rein"

    @Flag(name: .long, help: "Overwrite existing key files.")
    var force = false

    func run() throws {
        do {
            let written = try CurveKeyFiles.generate(in: out, name: name, force: force)
            emit("public key \(written.keys.publicKey)")
            emit("wrote \(written.publicFile) and \(written.secretFile) (secret, mode 0600)")
        } catch let error as TransportSecurityError {
            throw CLIError(error.message)
        } catch let error as ZMQError {
            throw CLIError("cannot generate a key pair: \(error)")
        }
    }
}

/// CURVE and wire-limit options of `rein learner` and `rein worker`.
struct WireSecurityOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "This node's CURVE secret key file (from `rein keys generate`); turns on CURVE for every socket.")
    var curveSecret: String?

    @Option(
        name: .long,
        help:
            "Learner: the worker public keys admitted (a directory of *.pub files, or a file of keys, one per line)."
    )
    var allow: String?

    @Option(name: .long, help: "Worker: the learner's CURVE public key file.")
    var learnerKey: String?

    @Option(
        name: .long,
        help: """
            The largest inbound frame accepted (ZMQ_MAXMSGSIZE); bigger ones drop the connection. \
            Default: what the run needs (the policy and reference weights, or the largest sample \
            batch, whichever is larger) plus 1 MiB.
            """)
    var maxFrameBytes: Int?

    /// The node's key files: these flags over `configured` (the `security:` section), key by key,
    /// checked for `role` (``Rein/SecurityConfig/resolved(for:)``: the one place that decides).
    func resolve(_ configured: SecurityConfig, role: SecurityConfig.Role) throws -> SecurityConfig.Resolved {
        if let maxFrameBytes, maxFrameBytes < 1024 {
            throw ValidationError("--max-frame-bytes must be at least 1024")
        }
        switch role {
        case .learner:
            guard learnerKey == nil else { throw ValidationError("--learner-key is a worker option") }
        case .worker:
            guard allow == nil else { throw ValidationError("--allow is a learner option") }
        }
        let flags = SecurityConfig(curveSecret: curveSecret, allow: allow, learnerKey: learnerKey)
        return try configured.overridden(by: flags).resolved(for: role)
    }

    /// The wire limits of a node of a run of `config` with a model of shape `model`: frames fit
    /// the run (`WireLimits.forRun`) unless `--max-frame-bytes` says otherwise.
    func limits(config: RunConfig, model: GPTConfig) -> WireLimits {
        var limits = WireLimits.forRun(config, model: model)
        if let maxFrameBytes { limits.maxFrameBytes = maxFrameBytes }
        return limits
    }

    /// The node's wire options (`keys` read from their files), with the default limits: set
    /// ``limits(config:model:)`` once the run's model is known.
    func wire(_ keys: SecurityConfig.Resolved) throws -> WireOptions {
        let limits = WireLimits.default
        var security: TransportSecurity?
        do {
            if let secret = keys.secretFile {
                security = TransportSecurity(
                    keys: try CurveKeyFiles.readSecret(secret),
                    serverKey: try keys.learnerKeyFile.map { try CurveKeyFiles.readPublic($0) })
            }
        } catch let error as TransportSecurityError {
            throw CLIError(error.message)
        }
        return WireOptions(security: security, limits: limits)
    }

    /// The learner's allow-list, if CURVE is on.
    func allowedKeys(_ keys: SecurityConfig.Resolved) throws -> Set<String>? {
        guard let allow = keys.allowList else { return nil }
        do {
            return try CurveKeyFiles.readAllowList(allow)
        } catch let error as TransportSecurityError {
            throw CLIError(error.message)
        }
    }

    /// The same options as arguments (for child processes).
    var arguments: [String] {
        var arguments: [String] = []
        if let curveSecret { arguments += ["--curve-secret", curveSecret] }
        if let allow { arguments += ["--allow", allow] }
        if let learnerKey { arguments += ["--learner-key", learnerKey] }
        if let maxFrameBytes { arguments += ["--max-frame-bytes", "\(maxFrameBytes)"] }
        return arguments
    }
}

/// Starts the ZAP handler that admits `allowed` keys on `context`. Refusals are counted in
/// `rejections` as `unauthenticated` and logged at most once per second per address, by public key
/// (public keys only, never a secret).
func startAuthenticator(
    context: ZMQContext, allowed: Set<String>, rejections: WireRejections, logger: Logger
) throws -> ZMQAuthenticator {
    let authenticator = try ZMQAuthenticator(context: context, allowedKeys: allowed) { decision in
        if decision.allowed {
            logger.debug("admitted CURVE client \(decision.publicKey) from \(decision.address)")
        } else {
            let key = decision.publicKey.isEmpty ? "no key" : "public key \(decision.publicKey)"
            rejections.record(
                "unauthenticated", peer: decision.address,
                error: TransportSecurityError(
                    "\(decision.mechanism) client (\(key)) is not on the allow-list"),
                logger: logger)
        }
    }
    logger.info("CURVE on: \(allowed.count) worker key(s) allowed")
    return authenticator
}
