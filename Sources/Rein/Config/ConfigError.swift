/// A configuration with defaults for every key, that can check its values after decoding.
///
/// Keys missing from a file take their values from `init()`; nested defaults are merged key by key.
public protocol ValidatedConfig: Codable {
    /// The default configuration.
    init()

    /// Throws ``ConfigError`` naming the key path and the allowed values of the first bad field.
    func validate() throws(ConfigError)
}

/// A problem with a configuration file or a `--set` override, as one line naming the key path.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// Dotted key path (`train.kl.estimator`), or empty for the whole document.
    public var path: String
    public var problem: String

    public init(path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { path.isEmpty ? "config: \(problem)" : "config: \(path): \(problem)" }
}
