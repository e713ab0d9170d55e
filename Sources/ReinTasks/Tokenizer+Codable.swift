import Foundation

/// The JSON form of a tokenizer, as checkpoints record it:
/// `{"bos":1,"eos":2,"pad":0,"symbols":["_","^","$","0",…],"version":1}`.
extension Tokenizer: Codable {
    enum CodingKeys: String, CodingKey {
        case version, symbols, pad, bos, eos
    }

    /// Decodes and validates a table; throws for another ``formatVersion``, a symbol that is not
    /// exactly one character, or any rule of ``init(symbols:pad:bos:eos:)``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try c.decode(Int.self, forKey: .version)
        guard version == Tokenizer.formatVersion else {
            throw TokenizerError.invalidTable(
                "version \(version) is not supported; allowed: \(Tokenizer.formatVersion)")
        }
        let strings = try c.decode([String].self, forKey: .symbols)
        var symbols: [Character] = []
        for (id, string) in strings.enumerated() {
            guard string.count == 1, let symbol = string.first else {
                throw TokenizerError.invalidTable("symbol \(id) is \"\(string)\"; each must be one character")
            }
            symbols.append(symbol)
        }
        try self.init(
            symbols: symbols,
            pad: try c.decode(Int.self, forKey: .pad),
            bos: try c.decode(Int.self, forKey: .bos),
            eos: try c.decode(Int.self, forKey: .eos))
    }

    /// Encodes the table with its ``formatVersion``.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Tokenizer.formatVersion, forKey: .version)
        try c.encode(symbols.map { String($0) }, forKey: .symbols)
        try c.encode(pad, forKey: .pad)
        try c.encode(bos, forKey: .bos)
        try c.encode(eos, forKey: .eos)
    }

    /// The table as one line of JSON with sorted keys (the checkpoint metadata value).
    public var jsonDescription: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try! encoder.encode(self)  // Strings and Ints only: cannot fail.
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads a table written by ``jsonDescription``.
    public init(jsonDescription: String) throws {
        self = try JSONDecoder().decode(Tokenizer.self, from: Data(jsonDescription.utf8))
    }
}
