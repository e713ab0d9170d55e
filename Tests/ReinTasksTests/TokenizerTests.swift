import Foundation
import ReinTasks
import Testing

@Suite("Tokenizer")
struct TokenizerTests {
    let tokenizer = Tokenizer.standard

    @Test("The standard table has stable ids and fits the model's 32-symbol vocabulary")
    func stableIDs() {
        #expect(tokenizer.vocabSize == 17)
        #expect(tokenizer.vocabSize <= Tokenizer.maxVocabSize)
        #expect(Tokenizer.maxVocabSize == 32)
        #expect(tokenizer.pad == 0)
        #expect(tokenizer.bos == 1)
        #expect(tokenizer.eos == 2)
        let expected: [Character: Int] = [
            "_": 0, "^": 1, "$": 2, "0": 3, "1": 4, "2": 5, "3": 6, "4": 7, "5": 8, "6": 9, "7": 10, "8": 11,
            "9": 12, "+": 13, "-": 14, "*": 15, "=": 16,
        ]
        for (symbol, id) in expected {
            #expect(tokenizer.id(of: symbol) == id, "id of \(symbol)")
            #expect(tokenizer.symbol(of: id) == symbol, "symbol of \(id)")
        }
    }

    @Test("Encode and decode are inverse, special glyphs included")
    func roundTrip() throws {
        let text = "^37+58=95$__"
        let ids = try tokenizer.encode(text)
        #expect(ids == [1, 6, 10, 13, 8, 11, 16, 12, 8, 2, 0, 0])
        #expect(try tokenizer.decode(ids) == text)
        #expect(try tokenizer.decode(ids.map { Int32($0) }) == text)
        let every = String(tokenizer.symbols)
        #expect(try tokenizer.decode(tokenizer.encode(every)) == every)
        #expect(try tokenizer.encode("") == [])
    }

    @Test("Encoding names the first unknown character and its position")
    func unknownCharacter() {
        #expect(throws: TokenizerError.unknownCharacter("x", position: 3)) {
            try tokenizer.encode("12+x4=")
        }
        #expect(throws: TokenizerError.unknownCharacter(" ", position: 2)) {
            try tokenizer.encode("12 +4=")
        }
        let message = TokenizerError.unknownCharacter("x", position: 3).description
        #expect(message.contains("'x'") && message.contains("position 3"))
    }

    @Test("Decoding reports ids outside the table; render never fails")
    func unknownID() {
        #expect(throws: TokenizerError.unknownID(27, position: 2)) {
            try tokenizer.decode([3, 4, 27, 2])
        }
        #expect(throws: TokenizerError.unknownID(-1, position: 0)) {
            try tokenizer.decode([-1])
        }
        #expect(tokenizer.render([3, 4, 27, 2]) == "01⟨27⟩$")
        #expect(tokenizer.render([Int32]()) == "")
    }

    @Test("JSON description round-trips and is pinned")
    func json() throws {
        let json = tokenizer.jsonDescription
        #expect(
            json
                == #"{"bos":1,"eos":2,"pad":0,"symbols":["_","^","$","0","1","2","3","4","5","6","7","8","9","+","-","*","="],"version":1}"#
        )
        #expect(try Tokenizer(jsonDescription: json) == tokenizer)
        let decoded = try JSONDecoder().decode(Tokenizer.self, from: JSONEncoder().encode(tokenizer))
        #expect(decoded == tokenizer)
    }

    @Test("Invalid tables and descriptions are rejected")
    func invalidTables() {
        #expect(throws: TokenizerError.self) {
            try Tokenizer(symbols: ["a", "b", "a"], pad: 0, bos: 1, eos: 2)
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(symbols: ["a", "b", "c"], pad: 0, bos: 1, eos: 1)
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(symbols: ["a", "b", "c"], pad: 0, bos: 1, eos: 3)
        }
        let tooMany = (0..<33).map { Character(UnicodeScalar(UInt8(65 + $0))) }
        #expect(throws: TokenizerError.self) {
            try Tokenizer(symbols: tooMany, pad: 0, bos: 1, eos: 2)
        }
        #expect(throws: (any Error).self) {
            try Tokenizer(jsonDescription: #"{"bos":1,"eos":2,"pad":0,"symbols":["_","^","$"],"version":2}"#)
        }
        #expect(throws: (any Error).self) {
            try Tokenizer(jsonDescription: #"{"bos":1,"eos":2,"pad":0,"symbols":["_","^","$$"],"version":1}"#)
        }
    }
}
