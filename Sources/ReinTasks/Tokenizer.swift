/// A character-level tokenizer: one token per character, over a fixed table of at most 32
/// symbols, three of them special (padding, beginning and end of sequence).
///
/// Every token is exactly one character, so ``decode(_:)`` inverts ``encode(_:)`` exactly.
/// Special tokens are written with one-character glyphs: `_` padding, `^` beginning of sequence,
/// `$` end of sequence. The ids of ``standard`` are stable (checkpoints record them):
///
/// | id | 0 | 1 | 2 | 3–12 | 13 | 14 | 15 | 16 |
/// |---|---|---|---|---|---|---|---|---|
/// | symbol | `_` PAD | `^` BOS | `$` EOS | `0`–`9` | `+` | `-` | `*` | `=` |
///
/// `-` is both the subtraction operator and the sign of a negative answer.
public struct Tokenizer: Sendable, Hashable {
    /// The largest table a model of Rein can take (its vocabulary is padded to 32).
    public static let maxVocabSize = 32

    /// The version written to ``jsonDescription``; other versions are rejected.
    public static let formatVersion = 1

    /// The table of the arithmetic task (ids in the table above).
    public static let standard = try! Tokenizer(
        symbols: ["_", "^", "$", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "*", "="],
        pad: 0, bos: 1, eos: 2)

    /// The symbol of every id, in id order.
    public let symbols: [Character]
    /// The padding id (batches are padded with it; never generated on purpose).
    public let pad: Int
    /// The beginning-of-sequence id.
    public let bos: Int
    /// The end-of-sequence id: ends every answer.
    public let eos: Int

    /// A table; throws ``TokenizerError/invalidTable(_:)`` unless it has at most
    /// ``maxVocabSize`` distinct symbols and the special ids are distinct ids of the table.
    public init(symbols: [Character], pad: Int, bos: Int, eos: Int) throws(TokenizerError) {
        guard !symbols.isEmpty, symbols.count <= Tokenizer.maxVocabSize else {
            throw .invalidTable("\(symbols.count) symbols; allowed: 1...\(Tokenizer.maxVocabSize)")
        }
        guard Set(symbols).count == symbols.count else {
            throw .invalidTable("symbols are not distinct: \(String(symbols))")
        }
        for (name, id) in [("pad", pad), ("bos", bos), ("eos", eos)] where !symbols.indices.contains(id) {
            throw .invalidTable("\(name) id \(id) is not in 0..<\(symbols.count)")
        }
        guard Set([pad, bos, eos]).count == 3 else {
            throw .invalidTable("pad, bos and eos ids must differ (got \(pad), \(bos), \(eos))")
        }
        self.symbols = symbols
        self.pad = pad
        self.bos = bos
        self.eos = eos
    }

    /// The number of ids (at most ``maxVocabSize``).
    public var vocabSize: Int { symbols.count }

    /// The id of `symbol`, or nil if it is not in the table.
    public func id(of symbol: Character) -> Int? {
        symbols.firstIndex(of: symbol)
    }

    /// The symbol of `id`, or nil if `id` is outside the table.
    public func symbol(of id: Int) -> Character? {
        symbols.indices.contains(id) ? symbols[id] : nil
    }

    /// The ids of the characters of `text` (special glyphs included).
    ///
    /// - Throws: ``TokenizerError/unknownCharacter(_:position:)`` for the first character that is
    ///   not in the table, with its position in characters.
    public func encode(_ text: String) throws(TokenizerError) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.count)
        for (position, character) in text.enumerated() {
            guard let id = id(of: character) else {
                throw .unknownCharacter(character, position: position)
            }
            ids.append(id)
        }
        return ids
    }

    /// The text of `ids` (special tokens as their glyphs).
    ///
    /// - Throws: ``TokenizerError/unknownID(_:position:)`` for the first id outside the table
    ///   (a model whose vocabulary is padded to 32 can sample such ids).
    public func decode<IDs: Sequence>(_ ids: IDs) throws(TokenizerError) -> String
    where IDs.Element: BinaryInteger {
        var text = ""
        for (position, raw) in ids.enumerated() {
            guard let id = Int(exactly: raw), let symbol = symbol(of: id) else {
                throw .unknownID(Int(truncatingIfNeeded: raw), position: position)
            }
            text.append(symbol)
        }
        return text
    }

    /// The text of `ids` for logs: never fails; an id outside the table is written `⟨id⟩`.
    public func render<IDs: Sequence>(_ ids: IDs) -> String where IDs.Element: BinaryInteger {
        var text = ""
        for raw in ids {
            if let id = Int(exactly: raw), let symbol = symbol(of: id) {
                text.append(symbol)
            } else {
                text += "⟨\(raw)⟩"
            }
        }
        return text
    }
}

/// A table that cannot be built, text that cannot be encoded or ids that cannot be decoded.
public enum TokenizerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A character of the input text that is not in the table, and its position (in characters).
    case unknownCharacter(Character, position: Int)
    /// An id outside the table, and its position in the input.
    case unknownID(Int, position: Int)
    /// A symbol table or JSON description that breaks a rule, with the reason.
    case invalidTable(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .unknownCharacter(let character, let position):
            return "character '\(character)' at position \(position) is not in the tokenizer's table"
        case .unknownID(let id, let position):
            return "token id \(id) at position \(position) is not in the tokenizer's table"
        case .invalidTable(let reason):
            return "invalid tokenizer table: \(reason)"
        }
    }
}
