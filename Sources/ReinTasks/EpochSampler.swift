/// An endless, seeded stream of elements in shuffled epochs: each epoch is a fresh permutation
/// of all elements, and batches are taken from the stream in order.
///
/// Within an epoch no element repeats; a batch that spans two epochs may contain an element twice
/// (once from the end of one epoch and once from the start of the next). The stream depends only
/// on the elements and the seed.
public struct EpochSampler<Element: Sendable>: Sendable {
    /// The elements, in their original order.
    public let elements: [Element]
    /// Completed epochs (0 during the first pass).
    public private(set) var epoch = 0
    /// Elements drawn so far.
    public private(set) var drawn = 0
    private var order: [Int]
    private var position = 0
    private var random: TaskRandom

    /// A stream over `elements` fixed by `seed`.
    ///
    /// - Precondition: `elements` is not empty.
    public init(_ elements: [Element], seed: UInt64) {
        precondition(!elements.isEmpty, "an epoch sampler needs at least one element")
        self.elements = elements
        self.random = TaskRandom(seed: seed, stream: 2)
        self.order = Array(elements.indices)
        random.shuffle(&order)
    }

    /// The next element of the stream.
    public mutating func next() -> Element {
        if position == order.count {
            order = Array(elements.indices)
            random.shuffle(&order)
            position = 0
            epoch += 1
        }
        defer {
            position += 1
            drawn += 1
        }
        return elements[order[position]]
    }

    /// The next `count` elements of the stream.
    public mutating func next(_ count: Int) -> [Element] {
        precondition(count >= 0, "cannot draw \(count) elements")
        var batch: [Element] = []
        batch.reserveCapacity(count)
        for _ in 0..<count { batch.append(next()) }
        return batch
    }
}
