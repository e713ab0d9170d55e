import Foundation
import Rein
import ReinRuntime
import Synchronization
import Testing

/// The repository root (this file is Tests/ReinRuntimeTests/DeployScriptTests.swift).
private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent()
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

/// A child process started with every signal unblocked and at its default action, in its own
/// process group. (A `Process` started from the test runner inherits its blocked signals, so a
/// shell script in it never sees SIGTERM.)
final class SignalableProcess: Sendable {
    let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    init(_ path: String, _ arguments: [String], environment: [String: String], output: String) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0)=\($1)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
        self.pid = pid
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// SIGKILL to the whole process group (the script and everything it started), if still there.
    func killGroup() {
        if exitStatus() == nil { kill(-pid, SIGKILL) }
        _ = exitStatus()
    }

    /// The exit code (128 + signal if killed) once the process ended, nil while it runs.
    func exitStatus() -> Int32? {
        status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return status
        }
    }
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
        for pid in "${pids[@]}"; do
            while true; do
                code=0; wait "$pid" || code=$?
                kill -0 "$pid" 2>/dev/null || break  # exited; otherwise a signal interrupted `wait`
            done
            ((code == 0)) || status=$code
        done
        exit $status
        """

    static let scontrol = """
        #!/bin/bash
        [[ "$1 $2" == "show hostnames" ]] || exit 1
        tr ',' '\\n' <<< "$3"
        """

    @Test func theSbatchScriptRunsALearnerOnTheFirstNodeAndWorkersOnTheOthers() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-slurm-\(UUID().uuidString)")
        let bin = dir.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, text) in [("srun", Self.srun), ("scontrol", Self.scontrol)] {
            let url = bin.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        let runDir = dir.appendingPathComponent("run").path
        // A run that never ends by itself: once both workers joined and the policy moved on, the
        // job gets SIGTERM (what `--signal=B:TERM@120` and scancel send) and the learner drains.
        let steps = 1_000_000
        try """
        run_dir: \(runDir)
        threads: 1
        model: {context: 16, d_model: 16, layers: 1, heads: 2}
        task: {train_size: 200, held_out_size: 50}
        train: {steps: \(steps), prompts_per_step: 4, group_size: 4, eval_size: 20, lr: 0.003, max_staleness: 2,
                kl: {estimator: k2, ratio: token}}
        runtime: {heartbeat_timeout: 3}
        """.write(to: dir.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)

        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = bin.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["SLURM_JOB_NODELIST"] = "localhost,localhost,localhost"
        let rein: String = try #require(reinExecutable)
        environment["REIN"] = rein
        environment["REIN_PORT"] = "\(try freePort())"
        environment["REIN_LEARNER_ARGS"] = "--random-reference 2"
        environment["SRUN_LOG"] = dir.appendingPathComponent("srun.log").path
        let log = dir.appendingPathComponent("job.log")
        let job = try SignalableProcess(
            "/bin/bash",
            [
                repository.appendingPathComponent("deploy/slurm/rein.sbatch").path,
                dir.appendingPathComponent("config.yaml").path,
            ], environment: environment, output: log.path)
        defer { job.killGroup() }
        let text = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        let ready = await eventually(within: .seconds(120)) {
            let status = (try? String(contentsOfFile: runDir + "/status.json", encoding: .utf8)) ?? ""
            let version = status.firstMatch(of: /"version":(\d+)/).flatMap { Int($0.output.1) } ?? 0
            return text().components(separatedBy: "joined at version").count - 1 == 2 && version >= 3
        }
        try #require(ready, "both workers join and train: \(text())")
        job.signal(SIGTERM)
        let finished = await eventually(within: .seconds(120)) { job.exitStatus() != nil }
        let output = text()
        try #require(finished, "the job did not end: \(output)")
        #expect(job.exitStatus() == 0, "\(output)")
        #expect(output.contains("rein.sbatch: learner on localhost:\(environment["REIN_PORT"]!), 2 workers"))
        #expect(output.components(separatedBy: "joined at version").count - 1 == 2, "\(output)")

        let ledger = try #require(try RunFolder.existing(runDir).ledger(RuntimeLedger.self))
        #expect(ledger.balances && ledger.trained >= 3 * 16 && ledger.inFlight == 0, "\(ledger.summary)")
        #expect(output.contains("rein.sbatch: SIGTERM: the learner drains"))
        #expect(output.contains("rein.sbatch: learner exited with status 0"))
        let status = try String(contentsOfFile: runDir + "/status.json", encoding: .utf8)
        #expect(status.contains("\"state\":\"finished\""), "\(status)")
        #expect(status.contains("\"trained\":\(ledger.trained)"), "\(status)")
        // The two steps: the learner pinned to the first node, the workers excluded from it.
        let srun = try String(contentsOf: dir.appendingPathComponent("srun.log"), encoding: .utf8)
        #expect(srun.contains("--nodelist=localhost") && srun.contains("--exclude=localhost"))
        #expect(srun.contains("--ntasks=2"))
    }
}
