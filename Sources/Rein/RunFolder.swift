import Foundation
import ReinTasks
import Yams

/// The files of a run folder, by name. See the "Run folder" article for their schemas.
public enum RunFile: String, Sendable, CaseIterable {
    /// The run's configuration as it ran (YAML, every key).
    case config = "config.yaml"
    /// One ``StepMetrics`` JSON line per step (batch), in step order.
    case metrics = "metrics.jsonl"
    /// Held-out evaluation before training (``HeldOutEvaluation``).
    case evalStart = "eval-start.json"
    /// Held-out evaluation after training (``HeldOutEvaluation``).
    case eval = "eval.json"
    /// The sample ledger at the end of the run.
    case ledger = "ledger.json"
    /// One staleness-tracker record per observation (JSON lines).
    case tracker = "tracker.jsonl"
    /// What a running learner says about itself (rewritten every few seconds).
    case status = "status.json"
    /// The batches and samples trained from each rollout worker (a distributed run's end).
    case workers = "workers.json"
    /// The newest checkpoint (a folder; see ``CheckpointStore``).
    case checkpoint = "checkpoint"
    /// The lock a process holds while it writes the folder (see ``RunFolder/lock()``).
    case lock = ".lock"
}

/// A run's output folder: the one reader and writer of every file in it (``RunFile``), with one
/// JSON coding configuration (``RunCoding``) and a schema version in each file.
///
/// Every file except the append-only JSON-lines logs is written atomically (temporary file,
/// fsync, rename), so a crash never leaves a half-written file behind. An append starts on a
/// fresh line, so a line torn by a crash never glues onto the next record, and readers skip a
/// torn last line. Failures are ``RunFolderError``s: one line naming the path.
public struct RunFolder: Sendable {
    public let path: String

    /// The folder at `path`, created (with its parents) if missing.
    /// - Throws: ``RunFolderError`` if it cannot be created, or `path` is a file.
    public init(path: String) throws(RunFolderError) {
        self.path = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw RunFolderError("run_dir \(path) is a file, not a folder")
            }
            return
        }
        try Self.makeDirectories(path, action: "create the run folder")
    }

    /// Creates the directory `path` and its missing parents (`mkdir -p`), so that a failure has
    /// its `errno` (a parent that is a file, a read-only file system, a full disk).
    static func makeDirectories(_ path: String, action: String, naming target: String? = nil)
        throws(RunFolderError)
    {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path {
            try makeDirectories(parent, action: action, naming: target ?? path)
        }
        if mkdir(path, 0o755) != 0, errno != EEXIST { throw .io(action, target ?? path, errno: errno) }
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw .io(action, target ?? path, errno: ENOTDIR)
        }
    }

    /// An existing folder at `path`, for reading (nothing is created).
    /// - Throws: ``RunFolderError`` if there is no folder at `path`.
    public static func existing(_ path: String) throws(RunFolderError) -> RunFolder {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw RunFolderError("\(path) is not a run folder (no such folder)")
        }
        return RunFolder(unchecked: path)
    }

    private init(unchecked path: String) { self.path = path }

    /// The path of `name` in the folder.
    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// The path of `file` in the folder.
    public func file(_ file: RunFile) -> String { self.file(file.rawValue) }

    /// Whether `file` exists.
    public func has(_ file: RunFile) -> Bool { FileManager.default.fileExists(atPath: self.file(file)) }

    /// Removes `file` if it exists.
    public func remove(_ file: RunFile) throws(RunFolderError) {
        let path = self.file(file)
        guard FileManager.default.fileExists(atPath: path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw .io("remove", path, error)
        }
    }

    // MARK: Raw files

    /// Writes `data` to `name` atomically.
    public func write(_ data: Data, to name: String) throws(RunFolderError) {
        try RunFolder.writeAtomically(data, to: file(name))
    }

    /// Appends one line to `name` (creating it), starting on a fresh line if the file does not
    /// end with one (a line torn by a crash stays on its own line).
    public func append(line: String, to name: String) throws(RunFolderError) {
        let path = file(name)
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io("open", path, errno: errno) }
        defer { close(fd) }
        var text = line + "\n"
        var info = stat()
        var last: UInt8 = 0
        if fstat(fd, &info) == 0, info.st_size > 0, pread(fd, &last, 1, off_t(info.st_size - 1)) == 1,
            last != UInt8(ascii: "\n")
        {
            text = "\n" + text
        }
        try Self.writeAll(fd, Data(text.utf8), path: path, action: "append to")
    }

    /// Writes `data` to `path` through a temporary file in the same directory: fsync, then rename.
    public static func writeAtomically(_ data: Data, to path: String) throws(RunFolderError) {
        try writeAtomically(to: path) { write in try data.withUnsafeBytes { try write($0) } }
    }

    /// Writes `path` atomically from pieces: `body` hands the file's bytes, in order, to the `write`
    /// it is given; they go to a temporary file in the same directory, which is fsynced and renamed
    /// to `path` once `body` returns. If `body` or the disk fails, the temporary file is removed and
    /// `path` is untouched: it never holds part of a file. The file need never be in memory whole.
    public static func writeAtomically(
        to path: String, _ body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws(RunFolderError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary =
            (directory.isEmpty ? "." : directory)
            + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io("write", path, errno: errno) }
        var isOpen = true
        do {
            try body { bytes throws(RunFolderError) in try writeAll(fd, bytes, path: path, action: "write") }
            guard fsync(fd) == 0 else { throw RunFolderError.io("write", path, errno: errno) }
            isOpen = false
            guard close(fd) == 0 else { throw RunFolderError.io("write", path, errno: errno) }
            guard rename(temporary, path) == 0 else { throw RunFolderError.io("write", path, errno: errno) }
        } catch {
            if isOpen { close(fd) }
            unlink(temporary)
            throw .io("write", path, error)
        }
    }

    private static func writeAll(_ fd: Int32, _ data: Data, path: String, action: String)
        throws(RunFolderError)
    {
        let failure = data.withUnsafeBytes { buffer -> RunFolderError? in
            do throws(RunFolderError) {
                try writeAll(fd, buffer, path: path, action: action)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String, action: String)
        throws(RunFolderError)
    {
        var offset = 0
        while offset < buffer.count {
            let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(action, path, errno: errno)
            }
            offset += n
        }
    }

    /// The bytes of `name`, or `nil` if it does not exist.
    func read(_ name: String) throws(RunFolderError) -> Data? {
        let path = file(name)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .io("read", path, error)
        }
    }

    // MARK: JSON files

    /// Writes `value` as `file` (JSON with ``RunCoding/schemaVersion``), atomically: indented
    /// for people, or on one line (`pretty: false`) for files scripts grep, like `status.json`.
    public func write<Value: Codable & Sendable>(_ value: Value, as file: RunFile, pretty: Bool = true)
        throws(RunFolderError)
    {
        let data: Data
        do {
            data = try RunCoding.encoder(pretty: pretty).encode(Versioned(value))
        } catch {
            throw RunFolderError("cannot encode \(self.file(file)): \(error)")
        }
        try write(data, to: file.rawValue)
    }

    /// `file` decoded as `Value`, or `nil` if the file does not exist.
    /// - Throws: ``RunFolderError`` naming the file if it does not decode or has a newer schema.
    public func read<Value: Codable & Sendable>(_ type: Value.Type, from file: RunFile) throws(RunFolderError)
        -> Value?
    {
        guard let data = try read(file.rawValue) else { return nil }
        return try decode(type, from: data, path: self.file(file))
    }

    func decode<Value: Codable & Sendable>(_ type: Value.Type, from data: Data, path: String)
        throws(RunFolderError) -> Value
    {
        do {
            return try RunCoding.decoder().decode(Versioned<Value>.self, from: data).value
        } catch let error as RunFolderError {
            throw RunFolderError("\(path): \(error)")
        } catch {
            throw RunFolderError("\(path) is not a valid \(Value.self) (\(Self.oneLine(error)))")
        }
    }

    static func oneLine(_ error: any Error) -> String {
        if let error = error as? DecodingError {
            switch error {
            case .keyNotFound(let key, let context):
                return "missing key \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                let at = context.codingPath.map(\.stringValue).joined(separator: ".")
                return (at.isEmpty ? "" : "at \(at): ") + context.debugDescription
            @unknown default: break
            }
        }
        return "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    // MARK: JSON lines

    /// Appends `value` to `file` as one JSON line with ``RunCoding/schemaVersion``.
    public func append<Value: Codable & Sendable>(_ value: Value, to file: RunFile) throws(RunFolderError) {
        try append(line: try Self.line(value, path: self.file(file)), to: file.rawValue)
    }

    /// `value` as one JSON line of a run-folder log (no newline).
    public static func line<Value: Codable & Sendable>(_ value: Value, path: String = "a run folder")
        throws(RunFolderError) -> String
    {
        do {
            return String(decoding: try RunCoding.encoder().encode(Versioned(value)), as: UTF8.self)
        } catch {
            throw RunFolderError("cannot encode a line of \(path): \(error)")
        }
    }

    /// Every line of `file` decoded as `Value` (empty if the file does not exist). A last line
    /// without its newline that does not decode was torn by a crash and is skipped.
    /// - Throws: ``RunFolderError`` naming the file and line of the first bad record.
    public func lines<Value: Codable & Sendable>(_ type: Value.Type, of file: RunFile) throws(RunFolderError)
        -> [Value]
    {
        guard let data = try read(file.rawValue) else { return [] }
        return try Self.decodeLines(type, data, path: self.file(file))
    }

    static func decodeLines<Value: Codable & Sendable>(_ type: Value.Type, _ data: Data, path: String)
        throws(RunFolderError) -> [Value]
    {
        try decodeRecords(Versioned<Value>.self, data, path: path).map(\.value)
    }

    /// Every line of `file` decoded as `Record`, a type that carries its own schema version (the
    /// staleness tracker's records); a torn last line is skipped as in ``lines(_:of:)``.
    public func records<Record: Decodable>(_ type: Record.Type, of file: RunFile) throws(RunFolderError)
        -> [Record]
    {
        guard let data = try read(file.rawValue) else { return [] }
        return try Self.decodeRecords(type, data, path: self.file(file))
    }

    /// Appends `record`, a type that carries its own schema version, to `file` as one JSON line.
    public func append<Record: Encodable>(record: Record, to file: RunFile) throws(RunFolderError) {
        let line: String
        do {
            line = String(decoding: try RunCoding.encoder().encode(record), as: UTF8.self)
        } catch {
            throw RunFolderError("cannot encode a line of \(self.file(file)): \(error)")
        }
        try append(line: line, to: file.rawValue)
    }

    static func decodeRecords<Record: Decodable>(_ type: Record.Type, _ data: Data, path: String)
        throws(RunFolderError) -> [Record]
    {
        let endsWithNewline = data.last == UInt8(ascii: "\n")
        let raw = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let decoder = RunCoding.decoder()
        var values: [Record] = []
        values.reserveCapacity(raw.count)
        for (index, line) in raw.enumerated() where !line.isEmpty {
            do {
                values.append(try decoder.decode(Record.self, from: Data(line)))
            } catch let error as RunFolderError {
                throw RunFolderError("\(path) line \(index + 1): \(error)")
            } catch {
                if index == raw.count - 1, !endsWithNewline { break }  // torn by a crash
                throw RunFolderError("\(path) line \(index + 1) is not a valid record (\(oneLine(error)))")
            }
        }
        return values
    }

    /// Keeps the first `count` records of `file` (rewritten atomically, in this build's schema):
    /// what a run resumed from a checkpoint at step `count` does, so that the steps it repeats
    /// are not logged twice.
    /// - Throws: ``RunFolderError`` if the file has fewer than `count` records.
    public func keep<Value: Codable & Sendable>(first count: Int, of file: RunFile, as type: Value.Type)
        throws(RunFolderError)
    {
        // Only the kept lines are decoded: what follows them (a line torn by the crash, records
        // of steps that will be trained again) is dropped unread.
        let data = try read(file.rawValue) ?? Data()
        var head = Data()
        var kept = 0
        for line in data.split(separator: UInt8(ascii: "\n")) where kept < count {
            head += line + [UInt8(ascii: "\n")]
            kept += 1
        }
        let all = try Self.decodeLines(type, head, path: self.file(file))
        guard all.count >= count else {
            throw RunFolderError(
                "\(self.file(file)) has \(all.count) records, the checkpoint is at step \(count)")
        }
        try rewrite(all, as: file)
    }

    /// Keeps the records of `file` (a log of records that carry their own schema version) for
    /// which `keep` holds, rewritten atomically; what a resumed run does with the tracker's
    /// records of the steps it trains again. A torn last line is dropped.
    public func keepRecords<Record: Codable>(
        _ type: Record.Type, of file: RunFile, where keep: (Record) -> Bool
    ) throws(RunFolderError) {
        guard has(file) else { return }
        var text = ""
        for record in try records(type, of: file) where keep(record) {
            do {
                text += String(decoding: try RunCoding.encoder().encode(record), as: UTF8.self) + "\n"
            } catch {
                throw RunFolderError("cannot encode a line of \(self.file(file)): \(error)")
            }
        }
        try write(Data(text.utf8), to: file.rawValue)
    }

    /// Replaces `file` by `values`, one JSON line each (atomically).
    public func rewrite<Value: Codable & Sendable>(_ values: [Value], as file: RunFile) throws(RunFolderError)
    {
        var text = ""
        for value in values { text += try Self.line(value, path: self.file(file)) + "\n" }
        try write(Data(text.utf8), to: file.rawValue)
    }

    // MARK: Typed files

    /// Appends one step's metrics to `metrics.jsonl`.
    public func appendMetrics(_ step: StepMetrics) throws(RunFolderError) {
        try append(step, to: .metrics)
    }

    /// The complete lines of `file` (each ending in a newline; 0 if there is no file), counted
    /// without decoding them: what a learner checks `metrics.jsonl` against at the end of a run,
    /// instead of reading back one record per batch.
    public func lineCount(of file: RunFile) throws(RunFolderError) -> Int {
        guard let data = try read(file.rawValue) else { return 0 }
        return data.withUnsafeBytes { raw in
            var count = 0
            for byte in raw where byte == UInt8(ascii: "\n") { count += 1 }
            return count
        }
    }

    /// Every step of `metrics.jsonl` (empty if there is none).
    public func metrics() throws(RunFolderError) -> [StepMetrics] {
        try lines(StepMetrics.self, of: .metrics)
    }

    /// The held-out evaluation before (`start`) or after training, if the folder has it.
    public func evaluation(start: Bool = false) throws(RunFolderError) -> HeldOutEvaluation? {
        try read(HeldOutEvaluation.self, from: start ? .evalStart : .eval)
    }

    /// Writes the held-out evaluation before (`start`) or after training.
    public func writeEvaluation(_ evaluation: HeldOutEvaluation, start: Bool = false) throws(RunFolderError) {
        try write(evaluation, as: start ? .evalStart : .eval)
    }

    /// Writes the sample ledger (`ledger.json`); generic over the ledger type.
    public func writeLedger<Ledger: Codable & Sendable>(_ ledger: Ledger) throws(RunFolderError) {
        try write(ledger, as: .ledger)
    }

    /// The sample ledger (`ledger.json`), if the folder has one.
    public func ledger<Ledger: Codable & Sendable>(_ type: Ledger.Type) throws(RunFolderError) -> Ledger? {
        try read(type, from: .ledger)
    }

    // MARK: config.yaml

    /// The first line of `config.yaml`: a YAML comment, so the file stays a valid `--config`.
    static let configHeader = "# rein run folder, schema_version: "

    /// Writes the configuration the run uses as `config.yaml` (every key, as it ran).
    public func writeConfig(_ config: RunConfig) throws(RunFolderError) {
        let yaml: String
        do {
            yaml = try YAMLEncoder().encode(config)
        } catch {
            throw RunFolderError("cannot encode \(file(.config)): \(error)")
        }
        try write(
            Data((Self.configHeader + "\(RunCoding.schemaVersion)\n" + yaml).utf8),
            to: RunFile.config.rawValue)
    }

    /// The configuration in `config.yaml`, if the folder has one. Keys missing from it (a folder
    /// written by an older rein) take their defaults; keys this build does not know are ignored.
    public func config() throws(RunFolderError) -> RunConfig? {
        guard let data = try read(RunFile.config.rawValue) else { return nil }
        let path = file(.config)
        let text = String(decoding: data, as: UTF8.self)
        if text.hasPrefix(Self.configHeader) {
            let rest = text.dropFirst(Self.configHeader.count).prefix { $0 != "\n" }
            guard let version = Int(rest.trimmingCharacters(in: .whitespaces)) else {
                throw RunFolderError("\(path): unreadable schema version '\(rest)'")
            }
            guard version <= RunCoding.schemaVersion else {
                throw RunFolderError("\(path): \(RunFolderError.newerSchema(version))")
            }
        }
        do {
            let node = try ConfigYAML.parse(text)
            let defaults = try ConfigYAML.node(encoding: RunConfig())
            return try ConfigYAML.decode(RunConfig.self, from: ConfigYAML.merge(node, over: defaults))
        } catch {
            throw RunFolderError("\(path) is not a valid configuration (\(Self.oneLine(error)))")
        }
    }

    // MARK: Lock

    /// Takes the folder's lock (`flock` on `.lock`), held until the returned value is released.
    /// Every process that writes a run folder (`rein train`, `rein learner`) holds it, so a second
    /// one on the same `run_dir` refuses to start instead of interleaving its writes.
    /// - Throws: ``RunFolderError`` naming the process that holds it.
    public func lock() throws(RunFolderError) -> RunFolderLock {
        let path = file(.lock)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io("create the lock", path, errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard code == EWOULDBLOCK else { throw .io("lock", path, errno: code) }
            let holder =
                n > 0
                ? String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(
                    in: .whitespacesAndNewlines) : "?"
            throw RunFolderError(
                "run_dir \(self.path) is in use by another rein process (pid \(holder)); "
                    + "wait for it to finish, or use another run_dir")
        }
        let pid = Data("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return RunFolderLock(fd: fd)
    }
}

/// A held run-folder lock (see ``RunFolder/lock()``); released when this value is deinitialised
/// or the process ends (however it ends).
public final class RunFolderLock: Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }
}
