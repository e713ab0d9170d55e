import Foundation
import Yams

/// The YAML layer every run-configuration reader goes through (`--config` files, `--set` values,
/// a run folder's `config.yaml`), built so that reading a configuration never reaches ICU.
///
/// Yams's default tag resolver matches each plain scalar against `NSRegularExpression`s, and its
/// encoder formats doubles with `NumberFormatter`: both load ICU's data, 4.8 MiB of a rollout
/// worker's resident memory (issue 14's breakdown), for a file of a few dozen keys. Here the
/// parser runs with Yams's empty resolver, ``tag(ofPlain:)`` resolves plain scalars with the same
/// rules in plain Swift, defaults come from `JSONEncoder` (FoundationEssentials), and every node
/// made here carries a tag with the empty resolver, so Yams's regular expressions are never
/// compiled. Decoding stays Yams's `YAMLDecoder`, with its coding paths for error messages.
public enum ConfigYAML {
    /// The resolver of every tag made here: no rules, so Yams never builds its regular expressions.
    static let resolver = Resolver.basic

    /// Parses `yaml` into a node tree with every plain scalar's tag resolved by ``tag(ofPlain:)``.
    /// An empty document is an empty mapping.
    public static func parse(_ yaml: String) throws -> Node {
        try compose(yaml) ?? mapping([])
    }

    /// One `--set` value: a scalar, sequence or mapping; nothing at all is the null scalar.
    public static func parseValue(_ yaml: String) throws -> Node {
        try compose(yaml) ?? .scalar(Node.Scalar("", Tag(.null, resolver), .plain))
    }

    /// The document's node tree, retagged; nil for an empty document.
    private static func compose(_ yaml: String) throws -> Node? {
        try Yams.compose(yaml: yaml, resolver).map(retagged)
    }

    /// The node tree of `value`'s encoding (through JSON: the same keys and values as YAMLEncoder
    /// gives, without its number formatter).
    public static func node<T: Encodable>(encoding value: T) throws -> Node {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: ".inf", negativeInfinity: "-.inf", nan: ".nan")
        let data = try encoder.encode(value)
        return try JSONDecoder().decode(JSONTree.self, from: data).node
    }

    /// Decodes `T` from `node` (Yams's decoder: its coding paths name the key in errors).
    public static func decode<T: Decodable>(_ type: T.Type, from node: Node) throws -> T {
        try YAMLDecoder().decode(type, from: node)
    }

    /// `input` with every mapping key it lacks filled in from `defaults` (recursively).
    public static func merge(_ input: Node, over defaults: Node) -> Node {
        guard case .mapping(var merged) = input, case .mapping(let base) = defaults else { return input }
        for (key, value) in base {
            if let given = merged[key] {
                merged[key] = merge(given, over: value)
            } else {
                merged[key] = value
            }
        }
        return .mapping(merged)
    }

    /// A string scalar (a mapping key, a `--set` value) with this layer's tag.
    public static func string(_ text: String) -> Node {
        .scalar(Node.Scalar(text, Tag(.str, resolver), .plain))
    }

    /// A mapping with this layer's tag. Mappings and sequences keep the implicit tag name: Yams's
    /// decoder compares the keys of an explicitly tagged mapping with its `yamlTag` key node, which it
    /// makes with the default resolver (and so with ICU).
    public static func mapping(_ pairs: [(Node, Node)]) -> Node {
        .mapping(Node.Mapping(pairs, Tag(.implicit, resolver)))
    }

    // MARK: Plain scalars

    /// The tag YAML 1.1's implicit rules (the ones Yams's default resolver uses, in its order: bool,
    /// int, float, merge, null, then string; timestamps are read as strings) give a plain scalar.
    public static func tag(ofPlain text: String) -> Tag.Name {
        if boolWords.contains(text) { return .bool }
        if isInt(text) { return .int }
        if isFloat(text) { return .float }
        if text == "<<" { return .merge }
        if nullWords.contains(text) { return .null }
        if text == "=" { return .value }
        return .str
    }

    private static let boolWords: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF",
    ]
    private static let nullWords: Set<String> = ["~", "null", "Null", "NULL", ""]

    /// `[-+]?0b[01_]+ | [-+]?0o?[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+ |
    /// [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`
    static func isInt(_ text: String) -> Bool {
        var s = Substring(text)
        if let c = s.first, c == "-" || c == "+" { s = s.dropFirst() }
        func all(_ t: Substring, _ allowed: (Character) -> Bool) -> Bool {
            !t.isEmpty && t.allSatisfy(allowed)
        }
        if s.hasPrefix("0b") { return all(s.dropFirst(2)) { $0 == "0" || $0 == "1" || $0 == "_" } }
        if s.hasPrefix("0x") { return all(s.dropFirst(2)) { $0.isHexDigit || $0 == "_" } }
        if s.hasPrefix("0o") { return all(s.dropFirst(2)) { ("0"..."7").contains($0) || $0 == "_" } }
        if s == "0" { return true }
        if s.hasPrefix("0") { return all(s.dropFirst()) { ("0"..."7").contains($0) || $0 == "_" } }
        guard let first = s.first, ("1"..."9").contains(first) else { return false }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts[0].allSatisfy({ $0.isASCIIDigit || $0 == "_" }) else { return false }
        return parts.dropFirst().allSatisfy(isSexagesimalDigits)
    }

    /// `[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)? |
    /// [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`
    static func isFloat(_ text: String) -> Bool {
        if [".nan", ".NaN", ".NAN"].contains(text) { return true }
        var s = Substring(text)
        let signed = s.first == "-" || s.first == "+"
        if signed { s = s.dropFirst() }
        if [".inf", ".Inf", ".INF"].contains(s) { return true }
        if s.first == "." {  // \.[0-9_]+([eE][-+][0-9]+)?, unsigned, the exponent's sign required
            guard !signed else { return false }
            let body = s.dropFirst()
            let (digits, exponent) = splitExponent(body)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCIIDigit || $0 == "_" }) else { return false }
            guard let exponent else { return true }
            return (exponent.first == "-" || exponent.first == "+") && isDigits(exponent.dropFirst())
        }
        guard let first = s.first, first.isASCIIDigit else { return false }
        if s.contains(":") {  // sexagesimal: [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
            guard let dot = s.firstIndex(of: ".") else { return false }
            let parts = s[..<dot].split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].allSatisfy({ $0.isASCIIDigit || $0 == "_" }) else {
                return false
            }
            guard parts.dropFirst().allSatisfy(isSexagesimalDigits) else { return false }
            return s[s.index(after: dot)...].allSatisfy { $0.isASCIIDigit || $0 == "_" }
        }
        let (mantissa, exponent) = splitExponent(s)
        let pieces = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard pieces[0].allSatisfy({ $0.isASCIIDigit || $0 == "_" }) else { return false }
        if pieces.count == 2, !pieces[1].allSatisfy({ $0.isASCIIDigit || $0 == "_" }) { return false }
        guard let exponent else { return true }
        let digits = exponent.first == "-" || exponent.first == "+" ? exponent.dropFirst() : exponent
        return isDigits(digits)
    }

    private static func splitExponent(_ s: Substring) -> (Substring, Substring?) {
        guard let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) else { return (s, nil) }
        return (s[..<e], s[s.index(after: e)...])
    }

    private static func isDigits(_ s: Substring) -> Bool { !s.isEmpty && s.allSatisfy(\.isASCIIDigit) }

    /// `[0-5]?[0-9]`
    private static func isSexagesimalDigits(_ s: Substring) -> Bool {
        switch s.count {
        case 1: s.first!.isASCIIDigit
        case 2: ("0"..."5").contains(s.first!) && s.last!.isASCIIDigit
        default: false
        }
    }

    // MARK: Trees

    /// `node` with plain scalars tagged by ``tag(ofPlain:)`` and every tag on this layer's resolver.
    private static func retagged(_ node: Node) -> Node {
        switch node {
        case .scalar(let s):
            // The parser tags quoted scalars `str` and leaves plain ones implicit.
            // (`description` is the tag's name as given, not resolved.)
            let given = Tag.Name(rawValue: s.tag.description)
            let name = given == .implicit ? tag(ofPlain: s.string) : given
            return .scalar(Node.Scalar(s.string, Tag(name, resolver), s.style, s.mark, s.anchor))
        case .mapping(let m):
            return .mapping(
                Node.Mapping(
                    m.map { (retagged($0.key), retagged($0.value)) }, Tag(.implicit, resolver), m.style,
                    m.mark,
                    m.anchor))
        case .sequence(let q):
            return .sequence(
                Node.Sequence(q.map(retagged), Tag(.implicit, resolver), q.style, q.mark, q.anchor))
        case .alias:
            return node
        }
    }

    /// A JSON value, decoded from an encoder's output and turned into nodes with explicit tags.
    private enum JSONTree: Decodable {
        case null
        case bool(Bool)
        case int(Int64)
        case double(Double)
        case string(String)
        case array([JSONTree])
        case object([String: JSONTree])

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() {
                self = .null
            } else if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? c.decode(Int64.self) {
                self = .int(i)
            } else if let d = try? c.decode(Double.self) {
                self = .double(d)
            } else if let s = try? c.decode(String.self) {
                self = .string(s)
            } else if let a = try? c.decode([JSONTree].self) {
                self = .array(a)
            } else {
                self = .object(try c.decode([String: JSONTree].self))
            }
        }

        var node: Node {
            func scalar(_ text: String, _ name: Tag.Name) -> Node {
                .scalar(
                    Node.Scalar(text, Tag(name, ConfigYAML.resolver), name == .str ? .doubleQuoted : .plain))
            }
            switch self {
            case .null: return scalar("null", .null)
            case .bool(let b): return scalar(b ? "true" : "false", .bool)
            case .int(let i): return scalar(String(i), .int)
            case .double(let d):
                if d.isNaN { return scalar(".nan", .float) }
                if d.isInfinite { return scalar(d < 0 ? "-.inf" : ".inf", .float) }
                return scalar("\(d)", .float)
            // YAML's spellings of the non-finite floats (the encoder writes them as strings); a
            // String decodes from a float-tagged scalar all the same.
            case .string(let s) where [".inf", "-.inf", ".nan"].contains(s): return scalar(s, .float)
            case .string(let s): return scalar(s, .str)
            case .array(let a):
                return .sequence(Node.Sequence(a.map(\.node), Tag(.implicit, ConfigYAML.resolver)))
            case .object(let o):
                return ConfigYAML.mapping(
                    o.sorted { $0.key < $1.key }.map { (ConfigYAML.string($0.key), $0.value.node) })
            }
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isWholeNumber }
}
