import Foundation

/// The `security:` block: CURVE key files of a `rein learner` or `rein worker` node.
///
/// Paths only, never keys inline: a configuration file is copied into the run folder and shown
/// by `rein config show`, so it must not hold a secret. Every key is `none` (off) by default. The
/// learner reads `curve_secret` and `allow`; a worker reads `curve_secret` and `learner_key`; each
/// ignores the other role's key, so that one file can serve as a template for both. The
/// `--curve-secret`, `--allow` and `--learner-key` flags override these keys one by one, and
/// ``resolved(for:)`` checks the combination for the node's role.
public struct SecurityConfig: Codable, Sendable, Hashable {
    /// The value of a key that is not set.
    public static let off = "none"

    /// This node's CURVE secret key file (`rein keys generate`); turns CURVE on for every socket.
    public var curveSecret = SecurityConfig.off
    /// Learner: the worker public keys admitted (a directory of `*.pub` files, or a file of keys,
    /// one per line).
    public var allow = SecurityConfig.off
    /// Worker: the learner's CURVE public key file.
    public var learnerKey = SecurityConfig.off

    public init() {}

    /// The key files as given (nil: not set).
    public init(curveSecret: String?, allow: String?, learnerKey: String?) {
        self.curveSecret = curveSecret ?? Self.off
        self.allow = allow ?? Self.off
        self.learnerKey = learnerKey ?? Self.off
    }

    enum CodingKeys: String, CodingKey {
        case curveSecret = "curve_secret"
        case allow
        case learnerKey = "learner_key"
    }

    /// The role of the node whose security is resolved.
    public enum Role: Sendable {
        /// `rein learner`: a CURVE server that admits an allow-list.
        case learner
        /// `rein worker`: a CURVE client that knows the learner's public key.
        case worker
    }

    /// The key files of one node, checked for its role: CURVE is on when ``secretFile`` is set.
    public struct Resolved: Sendable, Hashable {
        /// This node's secret key file (nil: CURVE off).
        public var secretFile: String?
        /// Learner: the allow-list (a directory or a file of keys).
        public var allowList: String?
        /// Worker: the learner's public key file.
        public var learnerKeyFile: String?

        public init(secretFile: String?, allowList: String?, learnerKeyFile: String?) {
            self.secretFile = secretFile
            self.allowList = allowList
            self.learnerKeyFile = learnerKeyFile
        }
    }

    /// `path` unless it is empty or `none`.
    static func set(_ path: String) -> String? {
        path.isEmpty || path == off ? nil : path
    }

    /// This configuration with every key `overrides` sets replacing its own (flags over the file).
    public func overridden(by overrides: SecurityConfig) -> SecurityConfig {
        SecurityConfig(
            curveSecret: Self.set(overrides.curveSecret) ?? Self.set(curveSecret),
            allow: Self.set(overrides.allow) ?? Self.set(allow),
            learnerKey: Self.set(overrides.learnerKey) ?? Self.set(learnerKey))
    }

    /// The key files `role` uses, or the first missing half of a pair: the learner needs
    /// `curve_secret` and `allow` or neither, a worker `curve_secret` and `learner_key` or neither.
    /// The other role's key is ignored.
    public func resolved(for role: Role) throws(ConfigError) -> Resolved {
        let secret = Self.set(curveSecret)
        switch role {
        case .learner:
            let allow = Self.set(allow)
            guard (secret == nil) == (allow == nil) else {
                throw ConfigError(
                    path: secret == nil ? "security.curve_secret" : "security.allow",
                    "the learner needs both security.curve_secret and security.allow (or --curve-secret and --allow), or neither"
                )
            }
            return Resolved(secretFile: secret, allowList: allow, learnerKeyFile: nil)
        case .worker:
            let learnerKey = Self.set(learnerKey)
            guard (secret == nil) == (learnerKey == nil) else {
                throw ConfigError(
                    path: secret == nil ? "security.curve_secret" : "security.learner_key",
                    "a worker needs both security.curve_secret and security.learner_key (or --curve-secret and --learner-key), or neither"
                )
            }
            return Resolved(secretFile: secret, allowList: nil, learnerKeyFile: learnerKey)
        }
    }

    /// Whether any key is set.
    public var isSet: Bool {
        [curveSecret, allow, learnerKey].contains { Self.set($0) != nil }
    }

    func validate() throws(ConfigError) {
        for (value, key) in [(curveSecret, "curve_secret"), (allow, "allow"), (learnerKey, "learner_key")] {
            guard let path = Self.set(value) else { continue }
            guard !path.contains("\n"), path.trimmingCharacters(in: .whitespaces) == path else {
                throw ConfigError(
                    path: "security.\(key)",
                    "must be a file path (no surrounding spaces, no line breaks), or none; keys themselves never go in a configuration"
                )
            }
        }
    }
}
