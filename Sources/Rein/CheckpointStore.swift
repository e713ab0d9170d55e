import Foundation
import Logging

/// FNV-1a, 64-bit: the checksum of checkpoint files (not cryptographic; it detects truncation and
/// flipped bytes, which is what a checkpoint needs — tampering is out of scope).
public enum FNV1a64 {
    /// The offset basis (the hash of no bytes).
    public static let basis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// The hash of `bytes`, continuing from `hash`.
    public static func hash(_ bytes: UnsafeRawBufferPointer, from hash: UInt64 = basis) -> UInt64 {
        var h = hash
        for byte in bytes {
            h ^= UInt64(byte)
            h = h &* prime
        }
        return h
    }

    /// The hash of `data`.
    public static func hash(_ data: Data) -> UInt64 { data.withUnsafeBytes { hash($0) } }

    /// The hash of `values` (their little-endian bytes).
    public static func hash(_ values: [Float]) -> UInt64 { values.withUnsafeBytes { hash($0) } }

    /// `hash` as 16 lowercase hex digits.
    public static func hex(_ hash: UInt64) -> String {
        let s = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// Why a run folder's checkpoint cannot be used, as one line.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A verified checkpoint read into memory: every file's size and checksum matched the manifest.
public struct StoredCheckpoint: Sendable {
    /// The directory it was read from (`RUN/checkpoint` or `RUN/checkpoint.prev`).
    public let directory: String
    /// What wrote it (``CheckpointStore/save(_:kind:)``'s `kind`).
    public let kind: String
    /// The files by name.
    public let files: [String: Data]

    /// The bytes of `name`.
    /// - Throws: ``CheckpointError`` if the checkpoint has no such file.
    public func data(_ name: String) throws(CheckpointError) -> Data {
        guard let data = files[name] else { throw CheckpointError("\(directory) has no \(name)") }
        return data
    }
}

/// The checkpoints of a run folder: `checkpoint/` (newest) and `checkpoint.prev/` (the one before).
///
/// ``save(_:kind:)`` writes every file into a staging directory (each file fsynced), then a
/// `manifest.json` with each file's size and FNV-1a 64 checksum, then moves the current
/// `checkpoint/` to `checkpoint.prev/` and renames the staging directory to `checkpoint/`. So at
/// any moment at least one complete checkpoint is on disk. ``load(kind:logger:)`` verifies the
/// newest against its manifest and falls back to the previous one, saying so, when the newest is
/// missing, truncated or corrupted.
public struct CheckpointStore: Sendable {
    /// The run folder.
    public let folder: RunFolder
    /// The newest checkpoint's directory name.
    public let name: String

    static let manifestName = "manifest.json"
    /// Kinds written before that load as a newer kind (same files, older `state.json` forms).
    static let formerKinds: [String: Set<String>] = [
        LearnerCheckpoint.kind: ["distributed learner", "single-process trainer"]
    ]
    static let format = "rein-checkpoint-1"

    /// The checkpoints of `folder` (`name/` and `name.prev/`).
    public init(folder: RunFolder, name: String = "checkpoint") {
        self.folder = folder
        self.name = name
    }

    /// The newest checkpoint's directory.
    public var current: String { folder.file(name) }
    /// The previous checkpoint's directory.
    public var previous: String { folder.file(name + ".prev") }

    /// Whether either checkpoint directory exists (usable or not).
    public var exists: Bool {
        [current, previous].contains { FileManager.default.fileExists(atPath: $0) }
    }

    struct Manifest: Codable {
        struct Entry: Codable {
            var bytes: Int
            var fnv1a64: String
        }
        var format: String
        var kind: String
        var files: [String: Entry]
    }

    /// One file of a checkpoint, produced in pieces: `write` hands the file's bytes, in order, to
    /// the sink it is given (so a checkpoint never needs its files in memory at once).
    public struct File {
        public var name: String
        public var write: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void

        /// A file of `name` whose bytes `write` produces.
        public init(
            _ name: String, write: @escaping (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
        ) {
            self.name = name
            self.write = write
        }

        /// A file of `name` holding `data`.
        public init(_ name: String, data: Data) {
            self.init(name) { sink in try data.withUnsafeBytes { try sink($0) } }
        }
    }

    /// Writes `files` (name → bytes) as the new `checkpoint/`; see ``save(streaming:kind:)``.
    public func save(_ files: [String: Data], kind: String) throws(RunFolderError) {
        try save(streaming: files.map { File($0.key, data: $0.value) }, kind: kind)
    }

    /// Writes `files` as the new `checkpoint/`, keeping the previous good one as
    /// `checkpoint.prev/`. Each file is streamed to disk (its size and checksum taken on the way),
    /// one at a time. The staging directory never outlives the call: a failed save (of the disk or
    /// of a file's `write`) removes it, and staging directories left by a process that died while
    /// saving are removed first (the run-folder lock guarantees nobody else is saving).
    /// - Throws: ``RunFolderError`` naming the path that could not be written.
    public func save(streaming files: [File], kind: String) throws(RunFolderError) {
        let fm = FileManager.default
        removeStaleStaging()
        let staging = folder.file(".\(name).staging-\(getpid())")
        try RunFolder.makeDirectories(staging, action: "create")
        do throws(RunFolderError) {
            var entries: [String: Manifest.Entry] = [:]
            for file in files.sorted(by: { $0.name < $1.name }) {
                var (bytes, hash) = (0, FNV1a64.basis)
                try RunFolder.writeAtomically(to: staging + "/" + file.name) { sink in
                    try file.write { piece in
                        (bytes, hash) = (bytes + piece.count, FNV1a64.hash(piece, from: hash))
                        try sink(piece)
                    }
                }
                guard entries[file.name] == nil else {
                    throw RunFolderError("checkpoint file \(file.name) is given twice")
                }
                entries[file.name] = .init(bytes: bytes, fnv1a64: FNV1a64.hex(hash))
            }
            let manifest = Manifest(format: Self.format, kind: kind, files: entries)
            let encoded: Data
            do {
                encoded = try RunCoding.encoder(pretty: true).encode(manifest)
            } catch {
                throw RunFolderError("cannot encode the checkpoint manifest: \(error)")
            }
            try RunFolder.writeAtomically(encoded, to: staging + "/" + Self.manifestName)
            Self.syncDirectory(staging)
            if fm.fileExists(atPath: current) {
                if (try? Self.verify(current, keepingFiles: false)) != nil {
                    try? fm.removeItem(atPath: previous)
                    try Self.move(current, to: previous)
                } else {
                    try Self.remove(current)  // unusable: keep the previous good one instead
                }
            }
            try Self.move(staging, to: current)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
        Self.syncDirectory(folder.path)
    }

    /// Removes `.checkpoint.staging-PID` directories that a crashed save left behind.
    func removeStaleStaging() {
        let prefix = ".\(name).staging-"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        for entry in entries where entry.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: folder.file(entry))
        }
    }

    static func move(_ source: String, to destination: String) throws(RunFolderError) {
        guard rename(source, destination) == 0 else {
            throw .io("rename \(source) to", destination, errno: errno)
        }
    }

    static func remove(_ path: String) throws(RunFolderError) {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw .io("remove", path, error)
        }
    }

    /// Removes both checkpoints (a fresh start must not fall back to an older run's state).
    public func removeAll() throws(RunFolderError) {
        removeStaleStaging()
        for directory in [current, previous] where FileManager.default.fileExists(atPath: directory) {
            try Self.remove(directory)
        }
    }

    /// The newest usable checkpoint written by `kind`, or `nil` if the folder has none.
    ///
    /// Logs a warning when the newest is unusable and the previous one is used instead.
    /// - Throws: ``CheckpointError`` when checkpoints exist but none is usable (naming each one's
    ///   defect), or the usable one was written by another `kind`.
    public func load(kind: String, logger: Logger) throws(CheckpointError) -> StoredCheckpoint? {
        let fm = FileManager.default
        var defects: [String] = []
        for directory in [current, previous] {
            guard fm.fileExists(atPath: directory) else {
                if directory == current, fm.fileExists(atPath: previous) {
                    defects.append("\(directory) is missing (a save was interrupted)")
                }
                continue
            }
            let stored: StoredCheckpoint
            do {
                stored = try Self.verify(directory)
            } catch {
                defects.append(error.description)
                continue
            }
            guard stored.kind == kind || Self.formerKinds[kind]?.contains(stored.kind) == true else {
                throw CheckpointError(
                    "\(directory) was written by the \(stored.kind), not the \(kind); "
                        + "use --fresh or another run_dir")
            }
            if !defects.isEmpty {
                logger.warning(
                    "newest checkpoint unusable (\(defects.joined(separator: "; "))); using the previous good one, \(directory)"
                )
            }
            return stored
        }
        guard defects.isEmpty else {
            throw CheckpointError(
                "no usable checkpoint in \(folder.path): \(defects.joined(separator: "; ")) "
                    + "(nothing was overwritten; start over with --fresh)")
        }
        return nil
    }

    /// Reads `directory` and checks every file against its manifest. Without `keepingFiles` the
    /// files are checked a piece at a time and the result holds none of them (only whether the
    /// checkpoint is usable matters then).
    static func verify(_ directory: String, keepingFiles: Bool = true) throws(CheckpointError)
        -> StoredCheckpoint
    {
        func read(_ file: String) throws(CheckpointError) -> Data {
            do {
                return try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file))
            } catch {
                throw CheckpointError("\(directory)/\(file) cannot be read")
            }
        }
        /// The size and FNV-1a 64 of `file`, read a piece at a time.
        func checksum(_ file: String) throws(CheckpointError) -> (Int, UInt64) {
            let fd = open(directory + "/" + file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CheckpointError("\(directory)/\(file) cannot be read") }
            defer { close(fd) }
            var (count, hash) = (0, FNV1a64.basis)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, $0.count) }
                if n < 0, errno == EINTR { continue }
                guard n >= 0 else { throw CheckpointError("\(directory)/\(file) cannot be read") }
                if n == 0 { return (count, hash) }
                buffer.withUnsafeBytes {
                    hash = FNV1a64.hash(UnsafeRawBufferPointer(rebasing: $0[..<n]), from: hash)
                }
                count += n
            }
        }
        let manifest: Manifest
        do {
            manifest = try RunCoding.decoder().decode(Manifest.self, from: try read(manifestName))
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError("\(directory)/\(manifestName) is not a valid manifest")
        }
        guard manifest.format == format else {
            throw CheckpointError("\(directory): unknown checkpoint format \(manifest.format)")
        }
        var files: [String: Data] = [:]
        for (file, entry) in manifest.files.sorted(by: { $0.key < $1.key }) {
            guard !file.contains("/"), !file.hasPrefix(".") else {
                throw CheckpointError("\(directory): bad file name \(file) in the manifest")
            }
            let data = keepingFiles ? try read(file) : nil
            let (count, hash): (Int, UInt64)
            if let data {
                (count, hash) = (data.count, FNV1a64.hash(data))
            } else {
                (count, hash) = try checksum(file)
            }
            guard count == entry.bytes else {
                throw CheckpointError(
                    "\(directory)/\(file) has \(count) bytes, the manifest says \(entry.bytes) (truncated?)"
                )
            }
            let sum = FNV1a64.hex(hash)
            guard sum == entry.fnv1a64 else {
                throw CheckpointError(
                    "\(directory)/\(file) has checksum \(sum), the manifest says \(entry.fnv1a64) (corrupted)"
                )
            }
            files[file] = data
        }
        return StoredCheckpoint(directory: directory, kind: manifest.kind, files: files)
    }

    /// fsyncs a directory (so renames in it are durable); best effort.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
