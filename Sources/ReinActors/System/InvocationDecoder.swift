import Distributed

/// Replays a received call on the receiving side for `executeDistributedTarget`.
///
/// Throws ``InvocationDecodingError`` for a generic substitution naming a type this process does
/// not have and for a missing argument; argument frames are decoded in place (no copy out of the
/// received message).
public struct ReinInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable

    let substitutions: [String]
    let arguments: [WireFrame]
    let decoder: BinaryDecoder
    private var next = 0

    init(system: ReinActorSystem, substitutions: [String], arguments: [WireFrame]) {
        self.substitutions = substitutions
        self.arguments = arguments
        self.decoder = BinaryDecoder(userInfo: [.actorSystemKey: system])
    }

    public mutating func decodeGenericSubstitutions() throws -> [Any.Type] {
        try substitutions.map { name in
            guard let type = InvocationTarget.lookUpSubstitution(name) else {
                throw InvocationDecodingError(.unknownType, "no type named \(name) in this process")
            }
            return type
        }
    }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard next < arguments.count else {
            throw InvocationDecodingError(
                .missingArgument,
                "argument \(next + 1) of type \(Argument.self) missing (call has \(arguments.count))")
        }
        let frame = arguments[next]
        next += 1
        let decoder = self.decoder
        return try frame.withUnsafeBytes { raw in try decoder.decode(Argument.self, from: raw) }
    }

    public mutating func decodeReturnType() throws -> Any.Type? { nil }

    public mutating func decodeErrorType() throws -> Any.Type? { nil }
}
