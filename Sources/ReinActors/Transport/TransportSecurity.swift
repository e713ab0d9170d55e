import Foundation
import ZeroMQ

/// CURVE authentication and encryption for every socket of a node.
///
/// A socket that binds becomes a CURVE server with ``keys`` (the learner: its ROUTER, sample PULL
/// and weight PUB); a socket that connects becomes a CURVE client with ``keys`` that expects the
/// server's public key ``serverKey`` (a worker: its DEALER, sample PUSH and weight SUB). Which
/// clients a server admits is decided by the ZAP handler of the context
/// (`ZMQAuthenticator`, started before the server sockets bind).
///
/// The description never shows the secret key.
public struct TransportSecurity: Sendable, CustomStringConvertible {
    /// This node's key pair.
    public var keys: ZMQCurveKeyPair
    /// The public key of the server this node connects to (`nil` for a node that only binds).
    public var serverKey: String?

    /// Security with `keys`, connecting to the server whose public key is `serverKey`.
    public init(keys: ZMQCurveKeyPair, serverKey: String? = nil) {
        self.keys = keys
        self.serverKey = serverKey
    }

    /// Configures `socket` before it binds (`binding`) or connects.
    /// - Throws: `ZMQError` if an option is refused, or ``TransportSecurityError`` for a connecting
    ///   socket without a ``serverKey``.
    public func apply(to socket: ZMQSocket, binding: Bool) throws {
        if binding {
            try socket.setCurveServer(keys)
            try socket.setZAPDomain("rein")
        } else {
            guard let serverKey else {
                throw TransportSecurityError("this node has no server key to connect with (--learner-key)")
            }
            try socket.setCurveClient(keys, serverKey: serverKey)
        }
    }

    /// Configures `socket` for `link` (bind: server, connect: client).
    public func apply(to socket: ZMQSocket, link: BulkLink) throws {
        if case .bind = link {
            try apply(to: socket, binding: true)
        } else {
            try apply(to: socket, binding: false)
        }
    }

    public var description: String {
        "CURVE(public \(keys.publicKey)\(serverKey.map { ", server \($0)" } ?? ""))"
    }
}

/// A key file that cannot be used; the message names the file, never its content.
public struct TransportSecurityError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reading and writing CURVE keys as files: `NAME.pub` holds the public key, `NAME.key` the secret
/// key (mode 0600), each as one line of Z85 text.
public enum CurveKeyFiles {
    /// Writes a fresh key pair as `DIR/NAME.pub` and `DIR/NAME.key` (0600).
    /// - Parameter force: overwrite existing files (otherwise an existing file is an error).
    /// - Returns: the key pair and the two paths.
    @discardableResult
    public static func generate(in directory: String, name: String, force: Bool = false) throws
        -> (keys: ZMQCurveKeyPair, publicFile: String, secretFile: String)
    {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw TransportSecurityError("key name '\(name)' must be a plain file name")
        }
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let publicFile = (directory as NSString).appendingPathComponent(name + ".pub")
        let secretFile = (directory as NSString).appendingPathComponent(name + ".key")
        if !force {
            for file in [publicFile, secretFile] where manager.fileExists(atPath: file) {
                throw TransportSecurityError("\(file) exists; pass --force to overwrite it")
            }
        }
        let keys = try ZMQCurveKeyPair.generate()
        try write(keys.secretKey + "\n", to: secretFile, mode: 0o600)
        try write(keys.publicKey + "\n", to: publicFile, mode: 0o644)
        return (keys, publicFile, secretFile)
    }

    /// Reads a secret key file and derives its public key.
    public static func readSecret(_ path: String) throws -> ZMQCurveKeyPair {
        let secret = try readKey(path, what: "secret key")
        do {
            return try ZMQCurveKeyPair(
                publicKey: try ZMQCurveKeyPair.publicKey(forSecret: secret), secretKey: secret)
        } catch {
            throw TransportSecurityError("\(path): not a usable CURVE secret key")
        }
    }

    /// Reads a public key file.
    public static func readPublic(_ path: String) throws -> String {
        try readKey(path, what: "public key")
    }

    /// The allow-list at `path`: every `*.pub` file of a directory, or every non-empty line (not
    /// starting with `#`) of a file.
    public static func readAllowList(_ path: String) throws -> Set<String> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TransportSecurityError("no allow-list at \(path)")
        }
        if isDirectory.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path).filter {
                $0.hasSuffix(".pub")
            }
            guard !names.isEmpty else { throw TransportSecurityError("\(path) holds no *.pub files") }
            return Set(
                try names.sorted().map { try readPublic((path as NSString).appendingPathComponent($0)) })
        }
        let lines = try contents(path).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        var keys: Set<String> = []
        for (i, line) in lines.enumerated() {
            guard ZMQCurveKeyPair.isZ85Key(line) else {
                throw TransportSecurityError("\(path): entry \(i + 1) is not a 40-character Z85 public key")
            }
            keys.insert(line)
        }
        guard !keys.isEmpty else { throw TransportSecurityError("\(path) lists no keys") }
        return keys
    }

    private static func readKey(_ path: String, what: String) throws -> String {
        let text = try contents(path).trimmingCharacters(in: .whitespacesAndNewlines)
        guard ZMQCurveKeyPair.isZ85Key(text) else {
            throw TransportSecurityError("\(path): not a \(what) (expected 40 Z85 characters on one line)")
        }
        return text
    }

    private static func contents(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TransportSecurityError("cannot read \(path)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes `text` to a temporary file created with `mode`, fsyncs and renames it into place.
    private static func write(_ text: String, to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw TransportSecurityError("cannot create \(temporary): errno \(errno)") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        _ = fchmod(fd, mode)  // the umask may have narrowed or the file existed
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw TransportSecurityError("cannot write \(path)")
        }
    }
}

/// Why a ZeroMQ handshake failed, in words that name the fix.
struct HandshakeRefusal: CustomStringConvertible {
    /// `ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH`: one side plain, the other CURVE.
    static let mechanismMismatch: UInt32 = 0x1100_0002
    /// `ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC`: a CURVE box that does not open (wrong key).
    static let cryptographic: UInt32 = 0x1100_0001

    let description: String

    /// The refusal for a handshake-failure monitor `event` on a connection to `address`, made
    /// with CURVE (`curve`) or plain; `nil` for a failure that retrying may cure.
    init?(_ event: ZMQMonitorEvent, address: String, curve: Bool) {
        switch (event.kind, event.value, curve) {
        case (.handshakeFailedAuth, _, _):
            description =
                "the node at \(address) refused this node's CURVE key: add its public key to the learner's --allow list"
        case (.handshakeFailedProtocol, Self.mechanismMismatch, false):
            description = """
                the node at \(address) requires CURVE and refused this plain connection: add --curve-secret \
                FILE (this worker's key, on the learner's --allow list) and --learner-key FILE (the learner's public key)
                """
        case (.handshakeFailedProtocol, Self.mechanismMismatch, true):
            description = """
                the node at \(address) does not use CURVE: drop --curve-secret and --learner-key, or check the address
                """
        case (.handshakeFailedProtocol, Self.cryptographic, _):
            description =
                "the CURVE handshake with \(address) failed: is --learner-key the learner's public key?"
        default:
            return nil
        }
    }

    /// CURVE handshakes closed by the other side before finishing, in a row, that make a refusal.
    static let dropsBeforeRefusal = 5

    /// The refusal for a CURVE client whose handshakes with `address` the server closed `drops`
    /// times (`nil` below ``dropsBeforeRefusal``, or without CURVE): a server that cannot open
    /// our box — we encrypted to the wrong public key — drops the connection without a reason.
    init?(drops: Int, address: String, curve: Bool) {
        guard curve, drops >= Self.dropsBeforeRefusal else { return nil }
        description = """
            the node at \(address) closed \(drops) CURVE handshakes in a row: is --learner-key the \
            learner's public key? (or the learner is at its connection cap)
            """
    }

    /// The error a `connect` fails with.
    var error: TransportSecurityError { TransportSecurityError(description) }
}
