import Foundation
import Rein
import Testing
import Yams

@Suite struct ConfigYAMLTests {
    /// Every string over an alphabet of the characters YAML's implicit rules look at, up to four
    /// long, plus hand-picked ones: the plain-Swift rules give each the tag Yams's regular
    /// expressions give it (timestamps, which configurations never hold, are read as strings).
    @Test func plainScalarsResolveAsYamsDefaultResolverDoes() {
        let alphabet = Array("0159+-._:eExXbo~nN")
        var corpus: [String] = [""]
        var level = [""]
        for _ in 0..<4 {
            level = level.flatMap { prefix in alphabet.map { prefix + String($0) } }
            corpus += level
        }
        corpus += [
            "true", "True", "TRUE", "false", "yes", "No", "on", "OFF", "tRue", "null", "Null", "NULL", "~",
            "nil", "<<", "=", "0", "-0", "+12", "012", "08", "0o17", "0o8", "0x1F", "0xg", "0b101", "0b2",
            "1_000", "1:30", "1:60", "190:20:30", "1:30.5", "1.5", "-1.5e-3", "1e5", "1E+5", ".5", ".5e+3",
            ".5e3", "-.5", "+.inf", "-.Inf", ".INF", ".nan", ".NaN", "-.nan", "1.", "1._", "_1", "1.2.3",
            "0.1", "3e-05", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "hello", "1 2", "a:b", "1e",
            "1e+", "e5", "0x", "0b", "0o",
        ]
        for text in corpus {
            var expected = Resolver.default.resolveTag(of: Node(text))
            if expected == .timestamp { expected = .str }
            #expect(ConfigYAML.tag(ofPlain: text) == expected, "\(text.debugDescription)")
        }
    }

    @Test func aParsedDocumentDecodesWithYAMLTypes() throws {
        struct Sample: Codable, Equatable {
            var flag: Bool
            var count: Int
            var rate: Double
            var name: String
            var quoted: String
            var missing: Int?
            var list: [Double]
        }
        let yaml = """
            flag: yes
            count: 0x10
            rate: 1e-3
            name: 012x
            quoted: "true"
            missing: ~
            list: [1, 2.5, -.5]
            """
        let value = try ConfigYAML.decode(Sample.self, from: ConfigYAML.parse(yaml))
        #expect(
            value
                == Sample(
                    flag: true, count: 16, rate: 0.001, name: "012x", quoted: "true", missing: nil,
                    list: [1, 2.5, -0.5]))
        // A plain scalar that is a number is not a Bool, and a quoted one is not a number.
        #expect(throws: (any Error).self) {
            try ConfigYAML.decode(
                Sample.self, from: ConfigYAML.parse(yaml.replacing("flag: yes", with: "flag: 1")))
        }
        #expect(throws: (any Error).self) {
            try ConfigYAML.decode(
                Sample.self, from: ConfigYAML.parse(yaml.replacing("count: 0x10", with: "count: \"16\"")))
        }
    }

    /// The defaults' node tree (through JSON) decodes back to the same configuration, and merging a
    /// file over it keeps the file's keys.
    @Test func encodedDefaultsRoundTripAndMergeUnderAFile() throws {
        var config = RunConfig()
        config.seed = 7
        config.train.beta = 0.125
        let node = try ConfigYAML.node(encoding: config)
        #expect(try ConfigYAML.decode(RunConfig.self, from: node) == config)
        let merged = ConfigYAML.merge(try ConfigYAML.parse("seed: 9\ntrain:\n  beta: 0.5\n"), over: node)
        let decoded = try ConfigYAML.decode(RunConfig.self, from: merged)
        #expect(decoded.seed == 9 && decoded.train.beta == 0.5)
        #expect(decoded.train.steps == config.train.steps)
    }

    /// Non-finite doubles survive the trip through JSON, and a string that spells one stays a string.
    @Test func nonFiniteNumbersRoundTrip() throws {
        struct Limits: Codable, Equatable {
            var high: Double
            var low: Double
            var label: String
        }
        let value = Limits(high: .infinity, low: -.infinity, label: ".inf")
        #expect(try ConfigYAML.decode(Limits.self, from: ConfigYAML.node(encoding: value)) == value)
        let nan = try ConfigYAML.decode(
            Limits.self, from: ConfigYAML.node(encoding: Limits(high: .nan, low: 0, label: "")))
        #expect(nan.high.isNaN)
    }

    @Test func anEmptyDocumentIsAnEmptyMappingAndAnEmptyValueIsNull() throws {
        #expect(try ConfigYAML.parse("").mapping?.count == 0)
        let value = try ConfigYAML.parseValue("")
        struct Holder: Decodable { var x: Int? }
        let holder = try ConfigYAML.decode(
            Holder.self, from: ConfigYAML.mapping([(ConfigYAML.string("x"), value)]))
        #expect(holder.x == nil)
    }
}
