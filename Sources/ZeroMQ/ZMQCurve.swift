import CZeroMQ

/// A CURVE key pair in Z85 text form (40 characters each).
///
/// The description never shows the secret key, so a key pair can be logged safely by accident.
public struct ZMQCurveKeyPair: Sendable, Hashable, CustomStringConvertible {
    public var publicKey: String
    public var secretKey: String

    /// Builds a key pair from Z85 strings, checking their form and that they belong together.
    public init(publicKey: String, secretKey: String) throws(ZMQError) {
        guard Self.isZ85Key(publicKey) else {
            throw ZMQError(
                operation: "ZMQCurveKeyPair", code: EINVAL, context: "public key is not 40 Z85 characters")
        }
        guard Self.isZ85Key(secretKey) else {
            throw ZMQError(
                operation: "ZMQCurveKeyPair", code: EINVAL, context: "secret key is not 40 Z85 characters")
        }
        guard try Self.publicKey(forSecret: secretKey) == publicKey else {
            throw ZMQError(
                operation: "ZMQCurveKeyPair", code: EINVAL,
                context: "public key does not match the secret key")
        }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    private init(unchecked publicKey: String, _ secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A fresh random key pair (`zmq_curve_keypair`).
    public static func generate() throws(ZMQError) -> ZMQCurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        if zmq_curve_keypair(&pub, &sec) != 0 { throw ZMQError.last("zmq_curve_keypair") }
        return ZMQCurveKeyPair(unchecked: string(pub), string(sec))
    }

    /// The public key derived from a secret key (`zmq_curve_public`).
    public static func publicKey(forSecret secret: String) throws(ZMQError) -> String {
        var pub = [CChar](repeating: 0, count: 41)
        let rc = secret.withCString { zmq_curve_public(&pub, $0) }
        if rc != 0 { throw ZMQError.last("zmq_curve_public") }
        return string(pub)
    }

    /// Whether `key` looks like a Z85-encoded 32-byte key.
    public static func isZ85Key(_ key: String) -> Bool {
        let alphabet = Set(
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
        return key.count == 40 && key.allSatisfy { alphabet.contains($0) }
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { "ZMQCurveKeyPair(public: \(publicKey), secret: <redacted>)" }
}
