import Foundation

/// Why a run folder (or one of its files) cannot be used, as one line that names the path.
///
/// Every file-system failure of ``RunFolder`` and ``CheckpointStore`` goes through
/// ``io(_:_:_:)`` or ``io(_:_:errno:)``, the one place where an `errno` or a Foundation error
/// becomes a sentence (no raw `NSCocoaErrorDomain` dumps reach the user).
public struct RunFolderError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String

    /// An error described by `description`.
    public init(_ description: String) { self.description = description }

    /// "cannot `action` `path`: reason", the reason taken from `code` (an `errno` value).
    public static func io(_ action: String, _ path: String, errno code: Int32) -> RunFolderError {
        RunFolderError("cannot \(action) \(path): \(reason(errno: code))")
    }

    /// "cannot `action` `path`: reason" for whatever `error` a file operation threw.
    public static func io(_ action: String, _ path: String, _ error: any Error) -> RunFolderError {
        if let error = error as? RunFolderError { return error }
        if let code = errnoCode(of: error) { return io(action, path, errno: code) }
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain else {
            return RunFolderError(
                "cannot \(action) \(path): \("\(error)".split(whereSeparator: \.isNewline).joined(separator: " "))"
            )
        }
        return RunFolderError("cannot \(action) \(path) (file system error \(ns.code))")
    }

    /// A Foundation file error (`NSCocoaErrorDomain`, POSIX) as one line naming its path; `nil`
    /// for any other error. The command line's last resort, so no raw error dump reaches a user.
    public static func fileError(_ error: any Error) -> RunFolderError? {
        guard !(error is RunFolderError) else { return nil }
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return nil }
        let path =
            ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            ?? "a file"
        return io("use", path, error)
    }

    /// A short, lowercase reason for `errno` value `code`, with a hint where one helps.
    static func reason(errno code: Int32) -> String {
        switch code {
        case ENOSPC: return "no space left on the device"
        case EDQUOT: return "disk quota exceeded"
        case EROFS: return "the file system is read-only"
        case EACCES, EPERM: return "permission denied"
        case ENOTDIR: return "a part of the path is a file, not a folder"
        case EISDIR: return "it is a folder, not a file"
        case ENOENT: return "no such file or folder"
        case EEXIST: return "something else already exists there"
        case ENAMETOOLONG: return "the path is too long"
        case EIO: return "input/output error"
        default: return String(cString: strerror(code)).lowercased()
        }
    }

    /// The `errno` behind a Foundation or POSIX error, when there is one.
    static func errnoCode(of error: any Error) -> Int32? {
        if let posix = error as? POSIXError { return posix.code.rawValue }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain
        {
            return Int32(underlying.code)
        }
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileWriteOutOfSpace: return ENOSPC
        case .fileWriteVolumeReadOnly: return EROFS
        case .fileWriteNoPermission, .fileReadNoPermission: return EACCES
        case .fileNoSuchFile, .fileReadNoSuchFile: return ENOENT
        case .fileWriteFileExists: return EEXIST
        case .fileWriteInvalidFileName, .fileReadInvalidFileName: return ENAMETOOLONG
        default: return nil
        }
    }
}
