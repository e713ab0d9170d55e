import Foundation
import ReinActors

/// Fresh CURVE key pairs for one `rein launch --curve`: one for the learner, one per worker, in a
/// private directory (mode 0700, made by `mkdtemp`; secret keys 0600) that the launch removes when
/// it ends.
///
/// The learner gets its secret key and the workers' public keys as its allow-list; worker i gets
/// its own secret key and the learner's public key. The children read them from files given as
/// flags (paths, never keys, on the command lines). A restarted worker reuses its index's key.
/// Nothing outside the launch holds a key, so no other process on the host can join the run, and
/// the keys die with it (a launch killed with SIGKILL leaves the directory behind, still private).
public struct LaunchKeys: Sendable {
    /// The private directory: `learner.key`/`learner.pub`, `workers/worker-i.key`/`.pub`.
    public let directory: String
    /// Workers keyed.
    public let workers: Int

    /// Generates the key pairs of a launch of `workers` workers under `parent` (the temporary
    /// directory by default).
    public static func generate(workers: Int, parent: String = NSTemporaryDirectory()) throws -> LaunchKeys {
        var template = Array(
            ((parent as NSString).appendingPathComponent("rein-launch-keys-XXXXXX")).utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TransportSecurityError("cannot create a private key directory in \(parent): errno \(errno)")
        }
        let keys = LaunchKeys(directory: String(cString: made), workers: workers)
        do {
            try CurveKeyFiles.generate(in: keys.directory, name: "learner")
            for i in 0..<workers {
                try CurveKeyFiles.generate(in: keys.workersDirectory, name: "worker-\(i)")
            }
        } catch {
            keys.remove()
            throw error
        }
        return keys
    }

    var workersDirectory: String { (directory as NSString).appendingPathComponent("workers") }

    /// The learner's flags: its secret key and the workers' public keys as the allow-list.
    public var learnerArguments: [String] {
        ["--curve-secret", "\(directory)/learner.key", "--allow", workersDirectory]
    }

    /// Worker i's flags: its secret key and the learner's public key.
    public func workerArguments(_ i: Int) -> [String] {
        [
            "--curve-secret", "\(workersDirectory)/worker-\(i).key", "--learner-key",
            "\(directory)/learner.pub",
        ]
    }

    /// Deletes the directory and the keys in it.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
