import Rein
import Testing

@testable import ReinCLI

struct ToyConfig: ValidatedConfig, Equatable {
    struct Inner: Codable, Equatable {
        enum Mode: String, Codable { case fast, slow }
        var mode: Mode = .fast
        var rate: Double = 0.1
        var clip: [Double] = [0.2, 0.28]
    }
    var steps: Int = 10
    var name: String = "toy"
    var inner = Inner()

    func validate() throws(ConfigError) {
        guard steps > 0 else { throw ConfigError(path: "steps", "must be at least 1, got \(steps)") }
    }
}

@Suite("Strict YAML configuration loading")
struct ConfigLoaderTests {
    let base = """
        steps: 5
        name: run
        inner:
          mode: slow
          rate: 0.5
          clip: [0.1, 0.2]
        """

    @Test func loadsAndRoundTrips() throws {
        let config = try ConfigLoader.load(ToyConfig.self, yaml: base)
        #expect(config.steps == 5 && config.inner.mode == .slow && config.inner.clip == [0.1, 0.2])
        let again = try ConfigLoader.load(ToyConfig.self, yaml: try ConfigLoader.yaml(config))
        #expect(again == config)
    }

    @Test func overridesUseTheSameTypes() throws {
        let config = try ConfigLoader.load(
            ToyConfig.self, yaml: base, overrides: ["steps=7", "inner.rate=2e-3", "inner.mode=fast"])
        #expect(config.steps == 7 && config.inner.rate == 0.002 && config.inner.mode == .fast)
    }

    @Test(arguments: [
        ("stepz: 3", "config: stepz: unknown key (allowed here: inner, name, steps)"),
        ("inner: {mood: fast}", "config: inner.mood: unknown key (allowed here: clip, mode, rate)"),
        ("steps: many", "config: steps: expected an integer"),
        ("steps: 0", "config: steps: must be at least 1, got 0"),
        ("inner: {mode: medium}", "config: inner.mode:"),
        ("- 1\n- 2", "config: the top level must be a mapping of keys"),
        ("steps: [1", "config: not valid YAML"),
    ])
    func errorsNameTheKeyPath(_ yaml: String, _ expected: String) throws {
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(ToyConfig.self, yaml: yaml) }
        let text = try #require(error).description
        #expect(text.hasPrefix(expected), "got: \(text)")
        #expect(!text.contains("\n"))
    }

    @Test(arguments: [
        ("inner.rate=fast", "config: inner.rate: expected a number"),
        ("inner.speed=1", "config: inner.speed: unknown key"),
        ("steps", "config: steps: --set expects key.path=value"),
        ("name.first=x", "config: name: is not a mapping"),
        ("steps=-1", "config: steps: must be at least 1, got -1"),
    ])
    func badOverridesAreRejected(_ override: String, _ expected: String) throws {
        let error = #expect(throws: ConfigError.self) {
            try ConfigLoader.load(ToyConfig.self, yaml: base, overrides: [override])
        }
        let text = try #require(error).description
        #expect(text.hasPrefix(expected), "got: \(text)")
    }
}
