import Foundation
import Rein
import Yams

/// Loads YAML configurations strictly: unknown keys, wrong types and out-of-range values are errors
/// that name the key path; `--set key.path=value` overrides go through the same checks.
public enum ConfigLoader {
    /// Decodes `yaml` (plus overrides) into `T`, rejecting unknown keys and running `validate()`.
    public static func load<T: ValidatedConfig>(
        _ type: T.Type, yaml: String, overrides: [String] = []
    ) throws(ConfigError) -> T {
        var node: Node
        do {
            node = try ConfigYAML.parse(yaml)
        } catch {
            throw ConfigError(path: "", "not valid YAML: \(oneLine(error))")
        }
        guard case .mapping = node else {
            throw ConfigError(path: "", "the top level must be a mapping of keys")
        }
        for override in overrides { try apply(override, to: &node) }
        do {
            node = ConfigYAML.merge(node, over: try ConfigYAML.node(encoding: T()))
        } catch {
            throw ConfigError(path: "", "cannot encode the defaults: \(oneLine(error))")
        }

        let value: T
        do {
            value = try ConfigYAML.decode(T.self, from: node)
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw ConfigError(path: "", oneLine(error))
        }
        // Unknown keys: whatever the input has that the decoded value does not write back.
        let canonical: Node
        do {
            canonical = try ConfigYAML.node(encoding: value)
        } catch {
            throw ConfigError(path: "", "cannot re-encode the configuration: \(oneLine(error))")
        }
        try checkKnownKeys(node, canonical, path: [])
        try value.validate()
        return value
    }

    /// Loads a file (see ``load(_:yaml:overrides:)``).
    public static func load<T: ValidatedConfig>(
        _ type: T.Type, file: String, overrides: [String] = []
    ) throws(ConfigError) -> T {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigError(path: "", "cannot read \(file): \(oneLine(error))")
        }
        return try load(type, yaml: text, overrides: overrides)
    }

    /// The YAML text of a configuration (what a run folder's `config.yaml` holds).
    public static func yaml<T: Encodable>(_ value: T) throws -> String {
        try YAMLEncoder().encode(value)
    }

    // MARK: Overrides

    static func apply(_ override: String, to node: inout Node) throws(ConfigError) {
        guard let eq = override.firstIndex(of: "=") else {
            throw ConfigError(path: override, "--set expects key.path=value")
        }
        let path = override[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty }) else {
            throw ConfigError(path: String(override[..<eq]), "--set has an empty key in its path")
        }
        let text = String(override[override.index(after: eq)...])
        let value: Node
        do {
            value = try ConfigYAML.parseValue(text)
        } catch {
            throw ConfigError(
                path: path.joined(separator: "."), "--set value is not valid YAML: \(oneLine(error))")
        }
        try set(value, at: path[...], in: &node, full: path)
    }

    private static func set(
        _ value: Node, at path: ArraySlice<String>, in node: inout Node, full: [String]
    ) throws(ConfigError) {
        guard let key = path.first else {
            node = value
            return
        }
        guard case .mapping = node else {
            let prefix = full[..<(full.count - path.count)].joined(separator: ".")
            throw ConfigError(path: prefix, "is not a mapping, cannot set '\(key)' inside it")
        }
        var child = node[key] ?? ConfigYAML.mapping([])
        try set(value, at: path.dropFirst(), in: &child, full: full)
        node[key] = child
    }

    // MARK: Checks

    private static func checkKnownKeys(_ input: Node, _ canonical: Node, path: [String]) throws(ConfigError) {
        switch (input, canonical) {
        case (.mapping(let given), .mapping(let known)):
            let knownKeys = known.keys.compactMap(\.string)
            for (key, value) in given {
                guard let name = key.string else { continue }
                guard let counterpart = known[name] else {
                    let allowed = knownKeys.sorted().joined(separator: ", ")
                    throw ConfigError(
                        path: (path + [name]).joined(separator: "."), "unknown key (allowed here: \(allowed))"
                    )
                }
                try checkKnownKeys(value, counterpart, path: path + [name])
            }
        case (.sequence(let given), .sequence(let known)):
            for (i, (a, b)) in zip(given, known).enumerated() {
                try checkKnownKeys(a, b, path: path + ["\(i)"])
            }
        default:
            return
        }
    }

    static func describe(_ error: DecodingError) -> ConfigError {
        func dotted(_ path: [any CodingKey]) -> String {
            path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return ConfigError(
                path: dotted(context.codingPath), "expected \(typeName(type)) (\(context.debugDescription))")
        case .valueNotFound(let type, let context):
            return ConfigError(path: dotted(context.codingPath), "missing \(typeName(type)) value")
        case .keyNotFound(let key, let context):
            return ConfigError(path: dotted(context.codingPath + [key]), "required key is missing")
        case .dataCorrupted(let context):
            return ConfigError(path: dotted(context.codingPath), context.debugDescription)
        @unknown default:
            return ConfigError(path: "", oneLine(error))
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        default: "\(type)"
        }
    }
}

/// Collapses an error's description to one line.
func oneLine(_ error: any Error) -> String {
    "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
}
