import ArgumentParser
import Foundation
import Testing

@testable import ReinCLI

@Suite("deploy/: Dockerfile, systemd units, Slurm script, shell scripts")
struct DeployFilesTests {
    // MARK: Dockerfile

    struct Stage {
        var from: String
        var name: String
        var lines: [String]
    }

    /// The stages of a Dockerfile (continuation lines joined).
    static func stages(_ text: String) -> (args: [String: String], stages: [Stage]) {
        let joined = text.replacingOccurrences(of: "\\\n", with: " ")
        var args: [String: String] = [:]
        var stages: [Stage] = []
        for raw in joined.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if words[0] == "ARG", stages.isEmpty, let eq = words[1].firstIndex(of: "=") {
                args[String(words[1][..<eq])] = String(words[1][words[1].index(after: eq)...])
            } else if words[0] == "FROM" {
                let name = words.count >= 4 && words[2].uppercased() == "AS" ? words[3] : ""
                stages.append(Stage(from: words[1], name: name, lines: []))
            } else if !stages.isEmpty {
                stages[stages.count - 1].lines.append(line)
            }
        }
        return (args, stages)
    }

    @Test func theDockerfileBuildsWithSwiftAndRunsOnSlimDebianWithTheRuntimeLibraries() throws {
        let (args, stages) = Self.stages(try repositoryFile("deploy/docker/Dockerfile"))
        #expect(stages.map(\.name) == ["build", "runtime"])
        guard stages.count == 2 else { return }
        let swiftImage = stages[0].from == "${SWIFT_IMAGE}" ? args["SWIFT_IMAGE"] ?? "" : stages[0].from
        let runtimeImage = stages[1].from == "${RUNTIME_IMAGE}" ? args["RUNTIME_IMAGE"] ?? "" : stages[1].from
        #expect(swiftImage.hasPrefix("swift:6."), "build stage: a Swift 6 image, got \(swiftImage)")
        #expect(runtimeImage.hasPrefix("debian:") && runtimeImage.hasSuffix("-slim"), "\(runtimeImage)")
        // Same Debian release in both (the binary links the build stage's libzmq/OpenBLAS/oneDNN ABI).
        let release = swiftImage.split(separator: "-").last.map(String.init) ?? "?"
        #expect(runtimeImage.contains(release), "\(swiftImage) vs \(runtimeImage)")

        let build = stages[0].lines.joined(separator: "\n")
        #expect(
            build.contains("libzmq3-dev") && build.contains("libopenblas-dev") && build.contains("libdnnl-dev")
                && build.contains("pkg-config")
        )
        #expect(build.contains("swift build -c release --product rein"))
        let runtime = stages[1].lines.joined(separator: "\n")
        let install = try #require(stages[1].lines.first { $0.contains("apt-get install") })
        #expect(install.contains("libzmq5") && install.contains("libopenblas0") && install.contains("libdnnl2"))
        #expect(!install.contains("-dev"), "no development packages at runtime")
        #expect(runtime.contains("COPY --from=build") && runtime.contains("/usr/local/bin/rein"))
        #expect(stages[1].lines.contains { $0.hasPrefix("USER ") && !$0.hasSuffix(" root") })
        #expect(stages[1].lines.contains("ENTRYPOINT [\"rein\"]"))
        // Every COPY source from the context exists in the repository.
        for stage in stages {
            for line in stage.lines where line.hasPrefix("COPY ") && !line.contains("--from=") {
                let words = line.split(separator: " ").dropFirst().map(String.init)
                for source in words.dropLast() where !source.hasSuffix("*") {
                    #expect(
                        FileManager.default.fileExists(
                            atPath: repository.appendingPathComponent(source).path),
                        "COPY \(source): not in the repository")
                }
            }
        }
        let ignore = try repositoryFile("deploy/docker/Dockerfile.dockerignore")
        #expect(ignore.contains(".build") && ignore.contains("runs"))
    }

    // MARK: systemd

    /// Sections of a unit file: [section: [key: [values]]].
    static func unit(_ path: String) throws -> [String: [String: [String]]] {
        var sections: [String: [String: [String]]] = [:]
        var current = ""
        for raw in try repositoryFile(path).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast())
                sections[current, default: [:]] = sections[current] ?? [:]
            } else if let eq = line.firstIndex(of: "=") {
                sections[current, default: [:]][String(line[..<eq]), default: []].append(
                    String(line[line.index(after: eq)...]))
            }
        }
        return sections
    }

    /// The variables an `EnvironmentFile` defines.
    static func environmentFile(_ path: String) throws -> [String: String] {
        var values: [String: String] = [:]
        for raw in try repositoryFile(path).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return values
    }

    @Test(arguments: [
        ("deploy/systemd/rein-learner.service", "learner"), ("deploy/systemd/rein-worker@.service", "worker"),
    ])
    func systemdUnitsHaveTheRequiredDirectives(path: String, role: String) throws {
        let unit = try Self.unit(path)
        #expect(unit["Unit"]?["Description"]?.isEmpty == false)
        #expect(unit["Unit"]?["After"]?.first?.contains("network-online.target") == true)
        let service = try #require(unit["Service"])
        let exec = try #require(service["ExecStart"]?.first)
        #expect(exec.hasPrefix("/usr/local/bin/rein \(role) --config ${REIN_CONFIG}"))
        #expect(service["KillSignal"] == ["SIGTERM"], "SIGTERM drains")
        #expect(service["Restart"] == ["on-failure"])
        #expect(service["EnvironmentFile"] == ["/etc/rein/rein.env"])
        #expect(service["User"] == ["rein"])
        #expect(unit["Install"]?["WantedBy"] == ["multi-user.target"])
        if role == "worker" {
            #expect(path.hasSuffix("@.service") && exec.contains("%i"), "a template: one unit per instance")
        }
        // Every variable the command uses is defined by rein.env.
        let env = try Self.environmentFile("deploy/systemd/rein.env")
        let variables = exec.matches(of: /\$\{?([A-Z_]+)\}?/).map { String($0.output.1) }
        #expect(!variables.isEmpty)
        for variable in variables { #expect(env[variable] != nil, "\(variable) is not in rein.env") }

        // The expanded command line parses with the real command (no extra arguments).
        let arguments = exec.split(separator: " ").dropFirst(2).map(String.init).compactMap {
            word -> String? in
            if word.hasPrefix("$") && !word.hasPrefix("${") { return nil }  // $REIN_*_ARGS, empty by default
            return word.replacingOccurrences(of: "${REIN_CONFIG}", with: env["REIN_CONFIG"] ?? "")
                .replacingOccurrences(of: "%H", with: "host").replacingOccurrences(of: "%i", with: "1")
        }
        if role == "learner" {
            _ = try LearnerCommand.parse(arguments)
        } else {
            #expect(try WorkerCommand.parse(arguments).name == "host-1")
        }
    }

    @Test(.enabled(if: which("systemd-analyze") != nil, "needs systemd-analyze"))
    func systemdAnalyzeVerifiesBothUnits() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-units-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths: [String] = []
        for name in ["rein-learner.service", "rein-worker@.service"] {
            // verify insists that ExecStart's binary exists: point it at one that does.
            let text = try repositoryFile("deploy/systemd/" + name).replacingOccurrences(
                of: "/usr/local/bin/rein", with: "/bin/true")
            let url = dir.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            paths.append(url.path)
        }
        let (status, output) = try run(
            try #require(which("systemd-analyze")), ["verify", "--man=no"] + paths)
        #expect(status == 0, "\(output)")
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(output)")
    }

    // MARK: Slurm

    @Test func theSbatchScriptHasItsDirectivesAndStartsLearnerThenWorkers() throws {
        let text = try repositoryFile("deploy/slurm/rein.sbatch")
        #expect(text.hasPrefix("#!/bin/bash\n"))
        let directives = text.split(separator: "\n").filter { $0.hasPrefix("#SBATCH ") }.map {
            String($0.dropFirst("#SBATCH ".count).split(separator: "=").first ?? "")
        }
        for required in ["--job-name", "--nodes", "--ntasks-per-node", "--time", "--output", "--signal"] {
            #expect(directives.contains(required), "#SBATCH \(required)")
        }
        // #SBATCH lines must come before the first command, or sbatch ignores them.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let firstCommand = lines.firstIndex {
            !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty
        }
        let lastDirective = lines.lastIndex { $0.hasPrefix("#SBATCH") }
        #expect(try #require(lastDirective) < (firstCommand ?? lines.endIndex))
        #expect(text.contains("scontrol show hostnames \"$SLURM_JOB_NODELIST\""))
        let sruns = text.ranges(of: "\nsrun ").count
        #expect(sruns == 2, "one step for the learner, one for the workers")
        let learner = try #require(text.range(of: "learner --config"))
        let workers = try #require(text.range(of: "worker --learner"))
        #expect(learner.lowerBound < workers.lowerBound)
        #expect(text.contains("--nodelist=\"$learner_node\"") && text.contains("--exclude=\"$learner_node\""))
        #expect(text.contains("rein\" status --run-dir"), "waits for the learner's status")
    }

    // MARK: Shell scripts

    static let shellScripts = [
        "scripts/netns-test.sh", "scripts/soak.sh", "deploy/ssh/rein-ssh-launch.sh",
        "deploy/slurm/rein.sbatch",
    ]

    @Test(arguments: shellScripts)
    func shellScriptsParseAndAreExecutable(path: String) throws {
        let (status, output) = try run("/bin/bash", ["-n", path])
        #expect(status == 0, "\(output)")
        if path.hasSuffix(".sh") {
            #expect(
                FileManager.default.isExecutableFile(atPath: repository.appendingPathComponent(path).path))
        }
    }

    @Test func theSshLauncherChecksItsArguments() throws {
        let launcher = "deploy/ssh/rein-ssh-launch.sh"
        let (help, usage) = try run(launcher, ["--help"])
        #expect(help == 0 && usage.contains("REIN_SSH"))
        let (missing, message) = try run(launcher, [])
        #expect(missing == 2 && message.contains("--hosts FILE is required"), "\(message)")
        let hosts = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-hosts-\(UUID().uuidString)")
        try "# only a learner\nnode-1\n".write(to: hosts, atomically: true, encoding: .utf8)
        let (one, text) = try run(launcher, ["--hosts", hosts.path])
        #expect(one == 2 && text.contains("needs a learner host and at least one worker host"), "\(text)")
    }

    @Test(.enabled(if: getuid() != 0 || which("setpriv") != nil, "needs a way to run as non-root"))
    func theNetnsTestSkipsVisiblyWithoutPrivileges() throws {
        let (status, output) =
            getuid() == 0
            ? try run(
                try #require(which("setpriv")),
                ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", "scripts/netns-test.sh"])
            : try run("/bin/bash", ["scripts/netns-test.sh"])
        #expect(status == 0, "\(output)")
        #expect(output.hasPrefix("SKIPPED: needs root and ip netns"), "\(output)")
    }
}
