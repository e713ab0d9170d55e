import Foundation

/// A run's output folder: `config.yaml`, `metrics.jsonl`, checkpoints, evaluation. Every file
/// except the append-only metrics log is written atomically (temporary file, fsync, rename), so a
/// crash never leaves a half-written file behind.
public struct RunFolder: Sendable {
    public let path: String

    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes `data` to `name` atomically.
    public func write(_ data: Data, to name: String) throws {
        try RunFolder.writeAtomically(data, to: file(name))
    }

    /// Appends one line to `name` (creating it).
    public func append(line: String, to name: String) throws {
        let url = URL(fileURLWithPath: file(name))
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((line + "\n").utf8))
    }

    /// Writes `data` to `path` through a temporary file in the same directory: fsync, then rename.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary =
            (directory.isEmpty ? "." : directory)
            + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary])
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
            if rename(temporary, path) != 0 {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }
}
