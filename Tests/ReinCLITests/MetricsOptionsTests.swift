import ArgumentParser
import Rein
import Testing

@testable import ReinCLI

@Suite("--metrics-bind and runtime.metrics_bind")
struct MetricsOptionsTests {
    @Test func theConfigKeyIsTypedAndValidated() throws {
        #expect(try ConfigLoader.load(RunConfig.self, yaml: "").runtime.metricsBind == .none)
        let config = try ConfigLoader.load(RunConfig.self, yaml: "runtime: {metrics_bind: '127.0.0.1:9464'}")
        #expect(config.runtime.metricsBind == .address(host: "127.0.0.1", port: 9464))
        #expect(try ConfigLoader.yaml(config).contains("metrics_bind: 127.0.0.1:9464"))
        #expect(throws: ConfigError.self) {
            try ConfigLoader.load(RunConfig.self, yaml: "runtime: {metrics_bind: 'localhost'}")
        }
        do {
            _ = try ConfigLoader.load(RunConfig.self, yaml: "runtime: {metrics_bind: 'h:99999'}")
            Issue.record("accepted port 99999")
        } catch {
            #expect(error.description.hasPrefix("config: runtime.metrics_bind: port must be in 0...65535"))
        }
    }

    @Test func theFlagOverridesTheConfigAndLaunchGivesEveryChildItsPort() throws {
        var config = RunConfig()
        config.runtime.metricsBind = .address(host: "127.0.0.1", port: 9000)
        #expect(try MetricsOptions.parse([]).bind(config) == .address(host: "127.0.0.1", port: 9000))
        let flag = try MetricsOptions.parse(["--metrics-bind", "none"])
        #expect(try flag.bind(config) == .none)
        #expect(try flag.childArguments(config, index: 1, children: 3) == [])
        // From the config too: children all read it, so each is given its own port.
        let options = try MetricsOptions.parse([])
        #expect(
            try options.childArguments(config, index: 0, children: 3) == ["--metrics-bind", "127.0.0.1:9000"])
        #expect(
            try options.childArguments(config, index: 2, children: 3) == ["--metrics-bind", "127.0.0.1:9002"])
        config.runtime.metricsBind = .address(host: "::1", port: 0)
        #expect(try options.childArguments(config, index: 2, children: 3) == ["--metrics-bind", "[::1]:0"])
        config.runtime.metricsBind = .address(host: "h", port: 65535)
        #expect(throws: CLIError.self) { try options.childArguments(config, index: 0, children: 2) }
        #expect(throws: (any Error).self) { try MetricsOptions.parse(["--metrics-bind", "h"]) }
        #expect(throws: (any Error).self) { try TrainCommand.parse(["--metrics-bind", "127.0.0.1:0"]) }
        _ = try TrainCommand.parse(["--workers", "1", "--metrics-bind", "127.0.0.1:0"])
    }
}
