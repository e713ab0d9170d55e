import ArgumentParser
import Foundation
import Logging
import Rein
import ZeroMQ

/// `rein bench transport`: PUSH→PULL throughput of the Swift binding against raw C libzmq.
///
/// Both sides run the same experiment as two separate processes (a PULL that binds and times
/// messages 2…N, a PUSH that connects and sends N messages): the Swift pair is `rein bench
/// transport-peer`, the C pair is `rein-zmq-peer`, built from `Sources/rein-zmq-peer/main.c`.
/// Runs alternate between the two so that machine noise hits both alike; each cell is the median.
struct TransportBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "PUSH/PULL throughput: the Swift ZeroMQ binding vs a raw C libzmq peer, same run.",
        discussion: """
            Each measurement uses two processes (a binding PULL and a connecting PUSH). The raw peer \
            is the rein-zmq-peer executable next to rein (built by `swift build`).
            """
    )

    @Flag(name: .long, help: "Fewer messages and one repeat; finishes in well under 30 s.")
    var quick = false

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    @Option(name: .long, help: "Comma-separated transports (tcp, ipc).")
    var transports: String = "tcp,ipc"

    @Option(name: .long, help: "Comma-separated message sizes in bytes.")
    var sizes: String = "64,1024,65536,1048576"

    @Option(name: .long, help: "Repeats per cell (median reported); default 3, or 1 with --quick.")
    var repeats: Int?

    @Option(name: .long, help: "Path of the raw C peer (default: rein-zmq-peer next to rein).")
    var peer: String?

    struct Row: Codable {
        var transport: String
        var bytes: Int
        var messages: Int
        var swift_msgs_per_s: Double
        var raw_msgs_per_s: Double
        var swift_mb_per_s: Double
        var raw_mb_per_s: Double
        var ratio: Double
    }

    struct Report: Codable {
        var benchmark = "transport"
        var layout = "two processes per measurement: PULL binds and times messages 2..N, PUSH connects"
        var libzmq: String
        var repeats: Int
        var results: [Row]
    }

    func run() async throws {
        let logger = Logger(label: "rein.bench.transport")
        let transportList = try parseTransports()
        let sizeList = try parseSizes()
        let repeats = self.repeats ?? (quick ? 1 : 3)
        guard repeats > 0 else { throw ValidationError("--repeats must be positive") }
        let selfPath = try executablePath()
        let rawPath =
            peer
            ?? URL(fileURLWithPath: selfPath).deletingLastPathComponent()
            .appendingPathComponent("rein-zmq-peer").path
        guard FileManager.default.isExecutableFile(atPath: rawPath) else {
            throw CLIError(
                "raw peer not found at \(rawPath); build it with `swift build` (or pass --peer PATH)")
        }
        let peers = (swift: [selfPath, "bench", "transport-peer"], raw: [rawPath])

        var rows: [Row] = []
        for transport in transportList {
            for bytes in sizeList {
                rows.append(
                    try measure(
                        transport: transport, bytes: bytes, repeats: repeats, peers: peers, logger: logger))
            }
        }
        let report = Report(libzmq: ZMQVersion.current.description, repeats: repeats, results: rows)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            emit(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            emitTable(report)
        }
    }

    /// One cell: `repeats` alternating runs of the raw and the Swift pair, medians compared.
    private func measure(
        transport: String, bytes: Int, repeats: Int, peers: (swift: [String], raw: [String]), logger: Logger
    ) throws -> Row {
        let count = messageCount(bytes: bytes)
        var swiftRates: [Double] = []
        var rawRates: [Double] = []
        for _ in 0..<repeats {
            rawRates.append(
                try PeerRun.measure(peers.raw, transport: transport, bytes: bytes, count: count))
            swiftRates.append(
                try PeerRun.measure(peers.swift, transport: transport, bytes: bytes, count: count))
        }
        let s = median(swiftRates)
        let r = median(rawRates)
        let row = Row(
            transport: transport, bytes: bytes, messages: count, swift_msgs_per_s: s.rounded(),
            raw_msgs_per_s: r.rounded(),
            swift_mb_per_s: (s * Double(bytes) / 1e6 * 10).rounded() / 10,
            raw_mb_per_s: (r * Double(bytes) / 1e6 * 10).rounded() / 10,
            ratio: (s / r * 1000).rounded() / 1000)
        logger.info(
            "\(transport) \(bytes) B: swift \(Int(s)) msg/s, raw \(Int(r)) msg/s, ratio \(row.ratio)")
        return row
    }

    private func emitTable(_ report: Report) {
        emit("rein bench transport — libzmq \(report.libzmq), \(report.layout); median of \(report.repeats)")
        emit(
            pad("transport", 9) + pad("bytes", 9) + pad("swift msg/s", 13) + pad("raw msg/s", 13)
                + pad("swift MB/s", 12) + pad("raw MB/s", 12) + "swift/raw")
        for row in report.results {
            emit(
                pad(row.transport, 9) + pad("\(row.bytes)", 9) + pad("\(Int(row.swift_msgs_per_s))", 13)
                    + pad("\(Int(row.raw_msgs_per_s))", 13) + pad("\(row.swift_mb_per_s)", 12)
                    + pad("\(row.raw_mb_per_s)", 12) + String(format: "%.3f", row.ratio))
        }
    }

    /// Messages per measurement: about 0.1–0.5 s of traffic per cell in quick mode, 5× that otherwise.
    func messageCount(bytes: Int) -> Int {
        let base: Int
        switch bytes {
        case ..<4096: base = 200_000
        case ..<262_144: base = 20_000
        default: base = 1_000
        }
        return quick ? base : base * 5
    }

    func parseTransports() throws -> [String] {
        let list = transports.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for t in list where t != "tcp" && t != "ipc" {
            throw ValidationError("unknown transport '\(t)' in --transports (allowed: tcp, ipc)")
        }
        guard !list.isEmpty else { throw ValidationError("--transports is empty") }
        return list
    }

    func parseSizes() throws -> [Int] {
        try sizes.split(separator: ",").map { piece in
            guard let n = Int(piece.trimmingCharacters(in: .whitespaces)), n >= 0, n <= 256 << 20 else {
                throw ValidationError("bad size '\(piece)' in --sizes (bytes, 0…268435456)")
            }
            return n
        }
    }
}

private func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

private func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

/// The path of the running executable.
func executablePath() throws -> String {
    let path = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    return path
}

/// One measurement with a pair of peer processes speaking the rein-zmq-peer protocol.
enum PeerRun {
    static func measure(_ command: [String], transport: String, bytes: Int, count: Int) throws -> Double {
        let unique = UUID().uuidString.prefix(8)
        let endpoint =
            transport == "tcp" ? "tcp://127.0.0.1:*" : "ipc:///tmp/rein-bench-\(getpid())-\(unique).sock"
        let pull = Process()
        let exited = DispatchSemaphore(value: 0)  // signalled once per peer that exits
        pull.terminationHandler = { _ in exited.signal() }
        pull.executableURL = URL(fileURLWithPath: command[0])
        pull.arguments = Array(command.dropFirst()) + ["pull", endpoint, "\(bytes)", "\(count)"]
        let out = Pipe()
        let err = Pipe()
        pull.standardOutput = out
        pull.standardError = err
        try pull.run()
        // The PULL side reports the endpoint it bound (port resolved) on its first stderr line.
        let bound = try readLine(err.fileHandleForReading, what: "\(command[0]) pull")
        guard bound.hasPrefix("bound ") else {
            pull.terminate()
            throw CLIError("\(command[0]) pull failed: \(bound)")
        }
        let resolved = String(bound.dropFirst("bound ".count))
        let push = Process()
        push.executableURL = URL(fileURLWithPath: command[0])
        push.arguments = Array(command.dropFirst()) + ["push", resolved, "\(bytes)", "\(count)"]
        let pushErr = Pipe()
        let pushIn = Pipe()
        push.standardError = pushErr
        push.standardInput = pushIn
        push.terminationHandler = { _ in exited.signal() }
        try push.run()
        // The puller ends first: the pusher keeps its socket open until its stdin closes, because a
        // PUSH closed right after its last send can drop the tail of its queue (libzmq #3774). Every
        // wait is bounded, so a peer that loses messages or hangs ends the cell with an error.
        let deadline = DispatchTime.now() + .seconds(Self.cellLimitSeconds)
        while pull.isRunning {
            // A pusher that failed ends the cell at once; otherwise wait for the next exit.
            if !push.isRunning && push.terminationStatus != 0 { break }
            if exited.wait(timeout: deadline) == .timedOut { break }
        }
        let finished = !pull.isRunning
        try? pushIn.fileHandleForWriting.close()
        if !finished { stop(pull, exited: exited) }
        let pushDeadline = DispatchTime.now() + .seconds(10)
        while push.isRunning && exited.wait(timeout: pushDeadline) == .success {}
        stop(push, exited: exited)
        let result = out.fileHandleForReading.readDataToEndOfFile()
        pull.waitUntilExit()
        push.waitUntilExit()
        if transport == "ipc" { try? FileManager.default.removeItem(atPath: String(resolved.dropFirst(6))) }
        if !finished {
            throw CLIError(
                "peer \(command[0]) pull did not receive all \(count) messages within \(Self.cellLimitSeconds) s"
                    + (push.terminationStatus != 0
                        ? " (the pusher failed with status \(push.terminationStatus))" : "")
            )
        }
        guard pull.terminationStatus == 0, push.terminationStatus == 0 else {
            let detail = String(decoding: pushErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw CLIError(
                "peer \(command[0]) failed (pull \(pull.terminationStatus), push \(push.terminationStatus)): \(detail)"
            )
        }
        struct Line: Decodable { var msgs_per_s: Double }
        do {
            return try JSONDecoder().decode(Line.self, from: result).msgs_per_s
        } catch {
            throw CLIError(
                "peer \(command[0]) printed an unreadable result: \(String(decoding: result, as: UTF8.self))")
        }
    }

    /// Ends `process`: SIGTERM, then SIGKILL if it still runs 5 s later.
    private static func stop(_ process: Process, exited: DispatchSemaphore) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = DispatchTime.now() + .seconds(5)
        while process.isRunning && exited.wait(timeout: deadline) == .success {}
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// The longest one cell may take, send and receive together.
    static let cellLimitSeconds = 120

    private static func readLine(_ handle: FileHandle, what: String) throws -> String {
        var bytes: [UInt8] = []
        while true {
            let chunk = try handle.read(upToCount: 1) ?? Data()
            if chunk.isEmpty { break }
            if chunk[chunk.startIndex] == UInt8(ascii: "\n") { break }
            bytes.append(contentsOf: chunk)
        }
        if bytes.isEmpty { throw CLIError("\(what) exited before binding") }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `rein bench transport-peer`: the Swift side of the transport benchmark (same protocol as
/// rein-zmq-peer). Not meant to be run by hand.
struct TransportPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport-peer",
        abstract: "Swift PUSH/PULL peer used by `rein bench transport`.",
        shouldDisplay: false
    )

    @Argument var mode: String
    @Argument var endpoint: String
    @Argument var bytes: Int
    @Argument var count: Int

    func validate() throws {
        guard mode == "push" || mode == "pull" else { throw ValidationError("mode must be push or pull") }
        guard count >= 2, bytes >= 0 else { throw ValidationError("COUNT must be ≥ 2 and BYTES ≥ 0") }
    }

    func run() throws {
        let context = try ZMQContext()
        if mode == "pull" {
            let pull = try context.socket(.pull)
            try pull.bind(endpoint)
            FileHandle.standardError.write(Data("bound \(try pull.lastEndpoint)\n".utf8))
            let expected = bytes
            func take(_ frame: UnsafeRawBufferPointer, _ more: Bool) throws {
                if frame.count != expected {
                    throw CLIError("got \(frame.count) bytes, expected \(expected)")
                }
            }
            _ = try pull.receive(take)
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 1..<count { _ = try pull.receive(take) }
            let elapsed = clock.now - start
            let time = seconds(elapsed)
            emit("{\"msgs\":\(count - 1),\"seconds\":\(time),\"msgs_per_s\":\(Double(count - 1) / time)}")
            pull.close()
        } else {
            let push = try context.socket(.push)
            try push.setLinger(nil)  // deliver everything before exiting
            try push.connect(endpoint)
            let payload = [UInt8](repeating: 0, count: max(bytes, 1))
            try payload.withUnsafeBytes { raw in
                let frame = UnsafeRawBufferPointer(rebasing: raw[0..<bytes])
                for _ in 0..<count { try push.send(frame) }
            }
            // Stay open until the benchmark has seen the puller finish (see rein-zmq-peer's main.c).
            _ = FileHandle.standardInput.readDataToEndOfFile()
            push.close()
        }
    }
}
