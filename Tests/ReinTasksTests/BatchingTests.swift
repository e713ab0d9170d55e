import ReinTasks
import Testing

@Suite("Supervised examples and batching")
struct BatchingTests {
    @Test("An example masks exactly the answer and EOS")
    func example() throws {
        let task = try ArithmeticTask(config: .default)
        let e = task.problem(37, .add, 58).supervisedExample
        #expect(e.tokens == [1, 6, 10, 13, 8, 11, 16, 12, 8, 2])
        #expect(e.lossMask == [false, false, false, false, false, false, false, true, true, true])
        #expect(e.promptLength == 7)
    }

    @Test("A batch pads every row with PAD and masks only answer tokens")
    func padding() throws {
        let task = try ArithmeticTask(
            config: ArithmeticTaskConfig(operations: [.add, .sub], padOperands: false, prependBOS: false))
        let examples = [task.problem(5, .sub, 5), task.problem(99, .add, 99), task.problem(12, .add, 3)]
            .map(\.supervisedExample)
        let batch = SupervisedBatch(examples, padID: Tokenizer.standard.pad)
        #expect(batch.rows == 3)
        #expect(batch.lengths == [6, 10, 8])  // 5-5=0$, 99+99=198$, 12+3=15$
        #expect(batch.length == 10)
        #expect(batch.tokens.count == 30)
        #expect(try Tokenizer.standard.decode(batch.row(0)) == "5-5=0$____")
        #expect(try Tokenizer.standard.decode(batch.row(1)) == "99+99=198$")
        #expect(try Tokenizer.standard.decode(batch.row(2)) == "12+3=15$__")
        let masked = zip(batch.tokens, batch.lossMask).filter(\.1).map(\.0)
        #expect(try Tokenizer.standard.decode(masked) == "0$198$15$")
        #expect(batch.maskedTokenCount == 9)
        #expect(batch.int32Tokens == batch.tokens.map { Int32($0) })

        let target = batch.targetMask
        #expect(target.count == 3 * 9)
        for b in 0..<3 {
            for t in 0..<9 {
                #expect(target[b * 9 + t] == batch.lossMask[b * 10 + t + 1])
            }
        }

        let wide = SupervisedBatch(examples, padID: 0, length: 12)
        #expect(wide.length == 12)
        #expect(wide.lengths == batch.lengths)
        #expect(Array(wide.row(1).suffix(2)) == [0, 0])
    }

    @Test("Batchers are seeded, cover every example once per epoch and keep one shape")
    func batcher() throws {
        let data = ArithmeticDataset(
            task: try ArithmeticTask(config: ArithmeticTaskConfig(trainSize: 100, heldOutSize: 10)))
        var a = data.supervisedBatches(batchSize: 10, seed: 5)
        var b = data.supervisedBatches(batchSize: 10, seed: 5)
        var c = data.supervisedBatches(batchSize: 10, seed: 6)
        var seen: [[Int]] = []
        for _ in 0..<10 {
            let batch = a.next()
            #expect(batch == b.next())
            #expect(batch.rows == 10)
            #expect(batch.length == 11)
            for r in 0..<10 { seen.append(Array(batch.row(r).prefix(batch.lengths[r]))) }
        }
        #expect(a.epoch == 0)
        #expect(Set(seen) == Set(data.train.map(\.sequence)))
        #expect(a.next() != c.next())
        #expect(a.epoch == 1)
    }

    @Test("Epoch samplers draw permutations, epoch after epoch")
    func epochs() {
        var sampler = EpochSampler(Array(0..<7), seed: 1)
        let first = sampler.next(7)
        let second = sampler.next(7)
        #expect(first.sorted() == Array(0..<7))
        #expect(second.sorted() == Array(0..<7))
        #expect(first != second)
        #expect(sampler.epoch == 1)
        #expect(sampler.drawn == 14)
        var again = EpochSampler(Array(0..<7), seed: 1)
        #expect(again.next(14) == first + second)
        #expect(sampler.next(0) == [])
    }
}
