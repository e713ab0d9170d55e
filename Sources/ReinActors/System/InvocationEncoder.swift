import Distributed

/// Records a distributed call on the caller's side: one binary frame per argument and the generic
/// substitutions as mangled type names (one frame per argument maps 1:1 onto ZeroMQ frames).
public struct ReinInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = Codable

    /// Mangled names of the generic substitutions, in order.
    var genericSubstitutions: [String] = []
    /// One encoded frame per argument, in order.
    var arguments: [WireFrame] = []

    init() {}

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        genericSubstitutions.append(_mangledTypeName(type) ?? _typeName(type))
    }

    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        arguments.append(try BinaryEncoder().encodeFrame(argument.value))
    }

    /// Return and error types are not sent: the receiver takes them from the target's metadata.
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}

    public mutating func doneRecording() throws {}
}
