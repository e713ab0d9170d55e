import Distributed
import Synchronization

/// Checks that a call's target identifier names a distributed method of the actor it would run on.
///
/// `executeDistributedTarget` looks a target up by its mangled name alone and runs it with
/// whatever actor it is given as `self`: a method of one actor type run on an actor of another
/// type reads the wrong object's memory. So before anything runs, the identifier must be the
/// mangling of a function declared directly on the resolved actor's own type: it starts with
/// `$s` and that type's mangled name, and it demangles to `Module.Type.method(labels:)` with no
/// further type between the actor type and the method (a nested type's method is refused too).
/// Generic actor types are never matched (their mangled name differs from their context's).
enum InvocationTarget {
    /// The method's name with its argument labels, `join(worker:)`, if `identifier` names a method
    /// declared on `actorType`; `nil` otherwise.
    static func method(_ identifier: String, on actorType: any Any.Type) -> String? {
        guard isPlain(identifier), let mangledType = _mangledTypeName(actorType),
            identifier.hasPrefix("$s" + mangledType)
        else {
            return nil
        }
        let demangled = RemoteCallTarget(identifier).description
        let typeName = _typeName(actorType, qualified: true)
        guard demangled != identifier, demangled.hasPrefix(typeName + ".") else { return nil }
        let method = demangled.dropFirst(typeName.count + 1)
        guard let paren = method.firstIndex(of: "("), paren > method.startIndex,
            !method[..<paren].contains("."), !method[..<paren].contains("<"), method.last == ")"
        else { return nil }
        return String(method)
    }

    /// The types a call's generic substitution may name, by mangled name: a few standard types,
    /// and those a program allowed with ``ReinActorSystem/allowGenericArguments(_:)``. A name from
    /// a peer is matched against this table and never handed to the runtime's demangler, which a
    /// crafted name can crash (libFuzzer found one: `swift_getTypeByMangledName` read a wild
    /// pointer). No distributed method of Rein's runtime is generic.
    static let substitutionTypes = Mutex<[String: TypeBox]>(
        table([
            Bool.self, Int.self, Int64.self, UInt64.self, Float.self, Double.self, String.self,
            [Float].self, [Double].self, [Int].self, [String].self,
        ]))

    /// A metatype that can sit in a `Mutex` (metatypes are immutable).
    struct TypeBox: @unchecked Sendable { let type: any Any.Type }

    static func table(_ types: [any Any.Type]) -> [String: TypeBox] {
        var table: [String: TypeBox] = [:]
        for type in types {
            if let name = _mangledTypeName(type) { table[name] = TypeBox(type: type) }
        }
        return table
    }

    /// The type a generic substitution names, if it is in ``substitutionTypes`` (`nil` for
    /// anything else).
    static func lookUpSubstitution(_ name: String) -> (any Any.Type)? {
        guard isPlain(name) else { return nil }
        return substitutionTypes.withLock { $0[name]?.type }
    }

    /// Whether `name` is printable ASCII of reasonable length: no symbolic references (control
    /// bytes followed by raw offsets) or other bytes a mangled name from a peer never needs ever
    /// reach the runtime's demangler.
    static func isPlain(_ name: String) -> Bool {
        name.utf8.count <= 1024 && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }
}

extension ReinActorSystem {
    /// Allows `types` as the generic arguments of calls this process receives (a generic
    /// distributed method's caller sends each type's mangled name; only allowed names resolve,
    /// anything else is refused as an unknown type).
    public static func allowGenericArguments(_ types: [any Any.Type]) {
        let more = InvocationTarget.table(types)
        InvocationTarget.substitutionTypes.withLock { $0.merge(more) { old, _ in old } }
    }
}
