import ReinRandom
import ReinTasks
import Testing

@Suite("Dataset splits and TaskRandom")
struct DatasetTests {
    struct Key: Hashable {
        var lhs: Int
        var operation: ArithmeticOperation
        var rhs: Int
        init(_ p: ArithmeticProblem) {
            lhs = p.lhs
            operation = p.operation
            rhs = p.rhs
        }
    }

    @Test("Splits have the configured sizes, repeat nothing and are disjoint")
    func disjoint() throws {
        let data = ArithmeticDataset(task: try ArithmeticTask(config: .default))
        #expect(data.train.count == 14_000)
        #expect(data.heldOut.count == 1_000)
        let train = Set(data.train.map(Key.init))
        let heldOut = Set(data.heldOut.map(Key.init))
        #expect(train.count == data.train.count)
        #expect(heldOut.count == data.heldOut.count)
        #expect(train.isDisjoint(with: heldOut))
        for p in data.train + data.heldOut {
            #expect(independentAnswer(p.text) == p.result)
            #expect(p.answerText == String(p.result))
            #expect(p.prompt.count == 7)
        }
        var prompts = data.trainProblems(seed: 4)
        #expect(Set(prompts.next(14_000).map(Key.init)) == train)
        #expect(data.heldOut(prefix: 10) == data.heldOut[..<10])
        #expect(data.heldOut(prefix: nil).count == 1_000)
        #expect(data.heldOut(prefix: 5_000).count == 1_000)
        #expect(data.heldOut(suffix: 10) == data.heldOut[990...])
        #expect(Set(data.heldOut(prefix: 500)).isDisjoint(with: Set(data.heldOut(suffix: 500))))
        #expect(data.heldOut(suffix: 5_000).count == 1_000)
    }

    @Test("A split can take every problem there is")
    func exhaustive() throws {
        let config = ArithmeticTaskConfig(
            operations: [.add, .sub], maxDigits: 1, trainSize: 100, heldOutSize: 55)
        #expect(config.problemCount == 155)
        let data = ArithmeticDataset(task: try ArithmeticTask(config: config))
        let all = Set((data.train + data.heldOut).map(Key.init))
        #expect(all.count == 155)
    }

    @Test("Same seed, same splits; another seed, other splits; held-out independent of train size")
    func deterministic() throws {
        let a = ArithmeticDataset(task: try ArithmeticTask(config: .default))
        let b = ArithmeticDataset(task: try ArithmeticTask(config: .default))
        #expect(a.train == b.train)
        #expect(a.heldOut == b.heldOut)

        var other = ArithmeticTaskConfig.default
        other.seed = 2
        let c = ArithmeticDataset(task: try ArithmeticTask(config: other))
        #expect(c.heldOut != a.heldOut)
        #expect(Set(c.heldOut.map(Key.init)) != Set(a.heldOut.map(Key.init)))

        var smaller = ArithmeticTaskConfig.default
        smaller.trainSize = 2_000
        let d = ArithmeticDataset(task: try ArithmeticTask(config: smaller))
        #expect(d.heldOut == a.heldOut)
        #expect(Array(d.train) == Array(a.train.prefix(2_000)))
    }

    @Test("The first problems of the default preset are pinned (platform-independent generation)")
    func pinned() throws {
        let data = ArithmeticDataset(task: try ArithmeticTask(config: .default))
        #expect(
            data.heldOut.prefix(4).map(\.description) == ["95+78=173", "33+15=48", "98-73=25", "77-20=57"])
        #expect(data.train.prefix(4).map(\.description) == ["49+07=56", "33-19=14", "42+99=141", "45-25=20"])
    }

    @Test("TaskRandom's stream is pinned")
    func randomPinned() {
        var random = TaskRandom(seed: 0)
        #expect(
            (0..<3).map { _ in random.next() } == [
                9_213_549_237_238_220_964, 2_891_402_322_818_703_217, 2_432_741_770_583_697_060,
            ])
        var other = TaskRandom(seed: 0, stream: 1)
        #expect(other.next() != 9_213_549_237_238_220_964)
        var uniform = TaskRandom(seed: 7)
        #expect((0..<8).map { _ in uniform.next(below: 10) } == [2, 0, 1, 1, 4, 9, 4, 4])
    }

    @Test("The one SplitMix64 matches the published reference vectors")
    func splitMix64ReferenceVectors() {
        var random = SplitMix64(state: 0)
        #expect(
            (0..<3).map { _ in random.next() } == [
                0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F,
            ])
        let seeded = SplitMix64(seed: 5)
        #expect(seeded.state == SplitMix64.mix(5))
    }

    @Test("next(below:) stays in range and covers it; shuffle permutes")
    func randomRanges() {
        var random = TaskRandom(seed: 3)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<7_000 { counts[random.next(below: 7)] += 1 }
        #expect(counts.allSatisfy { (800...1_200).contains($0) }, "\(counts)")
        #expect((0..<100).allSatisfy { _ in random.next(below: 1) == 0 })
        #expect((0..<100).allSatisfy { _ in (5...9).contains(random.next(in: 5...9)) })
        var values = Array(0..<50)
        random.shuffle(&values)
        #expect(values.sorted() == Array(0..<50))
        #expect(values != Array(0..<50))
    }
}

@Suite("Compact training split")
struct CompactTrainSplitTests {
    @Test("The training split keeps a few bytes per problem and builds the drawn problem on reading")
    func compact() throws {
        let task = try ArithmeticTask(config: .default)
        let data = ArithmeticDataset(task: task)
        // Operands and operation only (24 bytes), not the problem's text and token arrays.
        #expect(data.train.storageBytes <= 32 * data.train.count)
        for p in data.train.prefix(50) {
            #expect(p == task.problem(p.lhs, p.operation, p.rhs))
        }
        #expect(data.train == ArithmeticDataset(task: task).train)
    }
}
