import Synchronization

/// How long this node took to answer the calls of one method: from the call's arrival (its
/// frames read off the socket, ``WireMessage/receivedAt``) to its reply handed back to the
/// transport. It includes the transport's and the actor's queues, not the network or the caller
/// (nor the reply's way out through libzmq). For benchmarks
/// (`rein bench scale` asks it of the learner's `requestWork`): nothing is measured unless asked.
public final class AnswerTimes: Sendable {
    private let times = Mutex<[Duration]>([])

    init() {}

    func record(_ duration: Duration) { times.withLock { $0.append(duration) } }

    /// Every answer so far, in the order they were sent.
    public var all: [Duration] { times.withLock { $0 } }
}

/// The methods whose answer times are measured, by method name (`requestWork(worker:haveVersion:inline:)`).
final class AnswerTimeTable: Sendable {
    private let table = Mutex<[String: AnswerTimes]>([:])

    /// The recorder of `method`, made on first use.
    func times(of method: String) -> AnswerTimes {
        table.withLock { table in
            if let times = table[method] { return times }
            let times = AnswerTimes()
            table[method] = times
            return times
        }
    }

    /// The recorder of `method` if it is measured.
    func recorder(for method: String) -> AnswerTimes? { table.withLock { $0[method] } }
}
