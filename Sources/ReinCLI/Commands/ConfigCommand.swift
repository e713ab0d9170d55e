import ArgumentParser
import Foundation
import Rein
import Yams

/// `rein config show`: the resolved configuration (defaults + file + overrides), or one key.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Inspect run configurations.",
        subcommands: [Show.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the resolved configuration as YAML (or one value with --key a.b.c).")

        @OptionGroup var options: ConfigOptions

        @Option(name: .long, help: "Print only this key path's value.")
        var key: String?

        func run() async throws {
            let config = try options.load()
            let yaml = try ConfigLoader.yaml(config)
            guard let key else {
                emit(yaml.trimmingCharacters(in: .newlines))
                return
            }
            var node = try Yams.compose(yaml: yaml)
            for part in key.split(separator: ".") {
                guard let next = node?[String(part)] else { throw CLIError("config: \(key): no such key") }
                node = next
            }
            if let scalar = node?.scalar {
                emit(scalar.string)
            } else {
                emit(try Yams.serialize(node: node!).trimmingCharacters(in: .newlines))
            }
        }
    }
}
