import Foundation
import Rein

/// A distributed-runtime failure, as one line.
public struct RuntimeError: Error, Codable, CustomStringConvertible, Equatable {
    public var description: String
    /// An error described by `description`.
    public init(_ description: String) { self.description = description }
}

/// The distributed runtime's name for the one sample ledger of every launch mode (``Rein/SampleLedger``).
public typealias RuntimeLedger = SampleLedger
