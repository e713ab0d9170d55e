import Foundation
import Rein
import ReinRuntime
import Testing

/// The repository root (this file is Tests/ReinRuntimeTests/DeployScriptTests.swift).
private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A TCP port nobody listens on right now (bound to port 0 and released).
private func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    try #require(bound)
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite(
    "deploy/slurm end to end with stand-in srun and scontrol",
    .enabled(if: reinExecutable != nil, "needs the built rein"))
struct SlurmScriptTests {
    /// `srun` as far as rein.sbatch uses it: `--key=value` options, then the command, run
    /// `--ntasks` times on this host with SLURM_PROCID set; SIGTERM is passed on.
    static let srun = """
        #!/bin/bash
        ntasks=1
        while [[ "$1" == --* ]]; do
            case "$1" in --ntasks=*) ntasks="${1#--ntasks=}" ;; esac
            echo "$1" >> "$SRUN_LOG"
            shift
        done
        pids=()
        for ((i = 0; i < ntasks; i++)); do SLURM_PROCID=$i "$@" & pids+=($!); done
        trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
        status=0
        for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
        exit $status
        """

    static let scontrol = """
        #!/bin/bash
        [[ "$1 $2" == "show hostnames" ]] || exit 1
        tr ',' '\\n' <<< "$3"
        """

    @Test func theSbatchScriptRunsALearnerOnTheFirstNodeAndWorkersOnTheOthers() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rein-slurm-\(UUID().uuidString)")
        let bin = dir.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, text) in [("srun", Self.srun), ("scontrol", Self.scontrol)] {
            let url = bin.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        let runDir = dir.appendingPathComponent("run").path
        let steps = 6
        try """
        run_dir: \(runDir)
        threads: 1
        model: {context: 16, d_model: 16, layers: 1, heads: 2}
        task: {train_size: 200, held_out_size: 50}
        train: {steps: \(steps), prompts_per_step: 4, group_size: 4, eval_size: 20, lr: 0.003, max_staleness: 2,
                kl: {estimator: k2, ratio: token}}
        runtime: {heartbeat_timeout: 3}
        """.write(to: dir.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [
            repository.appendingPathComponent("deploy/slurm/rein.sbatch").path,
            dir.appendingPathComponent("config.yaml").path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = bin.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["SLURM_JOB_NODELIST"] = "localhost,localhost,localhost"
        let rein: String = try #require(reinExecutable)
        environment["REIN"] = rein
        environment["REIN_PORT"] = "\(try freePort())"
        environment["REIN_LEARNER_ARGS"] = "--random-reference 2"
        environment["SRUN_LOG"] = dir.appendingPathComponent("srun.log").path
        process.environment = environment
        let log = dir.appendingPathComponent("job.log")
        #expect(FileManager.default.createFile(atPath: log.path, contents: nil))
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let finished = await eventually(within: .seconds(180)) { !process.isRunning }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        try #require(finished, "the job did not end: \(output)")
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("rein.sbatch: learner on localhost:\(environment["REIN_PORT"]!), 2 workers"))
        #expect(output.components(separatedBy: "joined at version").count - 1 == 2, "\(output)")

        let ledger = try JSONDecoder().decode(
            RuntimeLedger.self, from: Data(contentsOf: URL(fileURLWithPath: runDir + "/ledger.json")))
        #expect(ledger.balances && ledger.trained == steps * 16, "\(ledger.summary)")
        let status = try String(contentsOfFile: runDir + "/status.json", encoding: .utf8)
        #expect(status.contains("\"state\":\"finished\""), "\(status)")
        #expect(status.contains("\"version\":\(steps)"), "\(status)")
        // The two steps: the learner pinned to the first node, the workers excluded from it.
        let srun = try String(contentsOf: dir.appendingPathComponent("srun.log"), encoding: .utf8)
        #expect(srun.contains("--nodelist=localhost") && srun.contains("--exclude=localhost"))
        #expect(srun.contains("--ntasks=2"))
    }
}
