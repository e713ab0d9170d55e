import Foundation
import Rein
import Testing
import Yams

@testable import ReinCLI

/// The ICU-free configuration reader (`ConfigYAML`) gives exactly what Yams's default path gives:
/// its regular-expression resolver, defaults through `YAMLEncoder`, `YAMLDecoder`.
@Suite struct ConfigYAMLEquivalenceTests {
    /// Yams's default path, as `ConfigLoader` read configurations before `ConfigYAML`.
    private func yamsDefault(_ yaml: String) throws -> RunConfig {
        let node = try Yams.compose(yaml: yaml) ?? Node.mapping(Node.Mapping([]))
        let defaults = try Yams.compose(yaml: try YAMLEncoder().encode(RunConfig())) ?? node
        return try YAMLDecoder().decode(RunConfig.self, from: ConfigYAML.merge(node, over: defaults))
    }

    static let files: [String] = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../configs").standardized
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { dir.appendingPathComponent($0).path }
    }()

    @Test func theRepositorysConfigurationsAreFound() {
        #expect(Self.files.count >= 2)
    }

    @Test(arguments: files)
    func everyShippedConfigurationReadsAsWithYamsDefaults(file: String) throws {
        let yaml = try String(contentsOfFile: file, encoding: .utf8)
        let loaded = try ConfigLoader.load(RunConfig.self, yaml: yaml)
        #expect(loaded == (try yamsDefault(yaml)))
    }

    @Test func theDefaultsReadAsWithYamsDefaults() throws {
        #expect(try ConfigLoader.load(RunConfig.self, yaml: "") == (try yamsDefault("")))
        let written = try ConfigLoader.yaml(RunConfig())
        #expect(try ConfigLoader.load(RunConfig.self, yaml: written) == RunConfig())
    }
}
