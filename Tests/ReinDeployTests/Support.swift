import Foundation
import Testing
import Yams

/// The repository root (this file is Tests/ReinDeployTests/Support.swift).
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The text of a file under the repository root.
func repositoryFile(_ path: String) throws -> String {
    try String(contentsOf: repository.appendingPathComponent(path), encoding: .utf8)
}

/// Runs a program; its exit status and combined output.
@discardableResult
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (
    Int32, String
) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = repository
    if let environment { process.environment = environment }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The first executable called `name` on PATH (or the usual system directories).
func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A YAML mapping node as a dictionary-like accessor that records where a lookup failed.
struct YAMLNode: CustomStringConvertible {
    let node: Node?
    let path: String

    init(_ node: Node?, path: String = "") {
        self.node = node
        self.path = path
    }

    subscript(_ key: String) -> YAMLNode { YAMLNode(node?[key], path: path + "." + key) }
    subscript(_ index: Int) -> YAMLNode {
        YAMLNode(node?.sequence.flatMap { index < $0.count ? $0[index] : nil }, path: path + "[\(index)]")
    }

    var exists: Bool { node != nil }
    var string: String? { node?.string }
    var int: Int? { node?.int }
    var array: [YAMLNode] {
        (node?.sequence.map(Array.init) ?? []).enumerated().map { YAMLNode($1, path: path + "[\($0)]") }
    }
    var strings: [String] { array.compactMap(\.string) }
    var mapping: [String: YAMLNode] {
        var result: [String: YAMLNode] = [:]
        for (key, value) in node?.mapping ?? [:] {
            if let name = key.string { result[name] = YAMLNode(value, path: path + "." + name) }
        }
        return result
    }
    var description: String { "\(path) = \(node.map { String(describing: $0) } ?? "missing")" }
}
