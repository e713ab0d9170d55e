import Foundation

/// The one JSON coding configuration of a run folder (every `.json` and `.jsonl` file, and a
/// checkpoint's `state.json`): keys are the types' own snake_case `CodingKeys`, keys sorted,
/// NaN and infinities written as the strings `"nan"`, `"inf"`, `"-inf"`.
///
/// Files written before the run folder had a schema (schema version 0) are read too: their
/// camelCase keys (the distributed learner wrote `lagMean`, `exactKL`, …) are read as their
/// snake_case forms (`lag_mean`, `exact_kl`), so one decoder reads both.
public enum RunCoding {
    /// The schema version this build writes into every run-folder file.
    public static let schemaVersion = 1

    /// The key every run-folder JSON object carries its schema version under.
    public static let schemaVersionKey = "schema_version"

    /// An encoder of the configuration (`pretty`: indented, for files people read).
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// A decoder of the configuration (reads schema-0 camelCase keys as snake_case).
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        decoder.keyDecodingStrategy = .custom { path in
            SnakeKey(stringValue: snakeCase(path.last?.stringValue ?? ""))
        }
        return decoder
    }

    /// `key` in snake_case, as Foundation's `convertToSnakeCase` spells it: `lagMean` →
    /// `lag_mean`, `exactKL` → `exact_kl`, `noEOS` → `no_eos`, `k1Mean` → `k1_mean`; keys
    /// without capitals (every key this build writes) are returned unchanged.
    public static func snakeCase(_ key: String) -> String {
        // Every key of every record goes through here when a file is read: ASCII without capitals
        // (all keys this build writes) is answered from the bytes, without Unicode properties.
        if key.utf8.allSatisfy({ $0 < 0x80 && !(0x41...0x5A).contains($0) }) { return key }
        guard key.contains(where: \.isUppercase) else { return key }
        let characters = Array(key)
        var out = ""
        for (i, c) in characters.enumerated() {
            if c.isUppercase, i > 0, characters[i - 1] != "_" {
                let previousUpper = characters[i - 1].isUppercase
                let nextLower = i + 1 < characters.count && characters[i + 1].isLowercase
                if !previousUpper || nextLower { out += "_" }
            }
            out += c.lowercased()
        }
        return out
    }

    struct SnakeKey: CodingKey {
        var stringValue: String
        var intValue: Int? { Int(stringValue) }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { stringValue = "\(intValue)" }
    }
}

/// A value with the run folder's schema version beside its own keys: `{"schema_version": 1, …}`.
///
/// Decoding reads a missing version as 0 (a file written before schema versions) and refuses a
/// version newer than ``RunCoding/schemaVersion`` with ``RunFolderError``, naming it.
public struct Versioned<Value: Codable & Sendable>: Codable, Sendable {
    /// The schema version the value was written with (0: before versions).
    public var schemaVersion: Int
    /// The value.
    public var value: Value

    /// `value` at this build's schema version.
    public init(_ value: Value) {
        self.schemaVersion = RunCoding.schemaVersion
        self.value = value
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
    }

    public func encode(to encoder: any Encoder) throws {
        try value.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schemaVersion, forKey: .schemaVersion)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try container.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? 0
        guard schemaVersion <= RunCoding.schemaVersion else {
            throw RunFolderError.newerSchema(schemaVersion)
        }
        value = try Value(from: decoder)
    }
}

extension RunFolderError {
    /// A file written by a newer rein than this one.
    static func newerSchema(_ version: Int) -> RunFolderError {
        RunFolderError(
            "schema version \(version), but this rein reads run-folder schema versions 0…\(RunCoding.schemaVersion) (written by a newer rein?)"
        )
    }
}
