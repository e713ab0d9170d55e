import Foundation

/// A command failure shown to the user as one line (`Error: <message>`), without a stack trace.
struct CLIError: Error, CustomStringConvertible, LocalizedError {
    var description: String
    var errorDescription: String? { description }

    init(_ description: String) {
        self.description = description
    }
}
