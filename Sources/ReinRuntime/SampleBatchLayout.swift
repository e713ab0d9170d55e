import Rein
import ReinActors
import ReinTasks
import ZeroMQ

#if !_endian(little) || !(arch(x86_64) || arch(arm64))
    #error("the sample batch layout copies columns as-is: it needs a little-endian 64-bit host")
#endif

/// The bytes of a sample batch on the sample stream (see <doc:SampleBatchWire>): the payload of
/// a `MessageKind.bulk` message is one header frame — magic, layout version, the batch's scalar
/// fields and a table of its columns (name, dtype, element count) — then one frame per column,
/// holding its elements as raw little-endian bytes.
///
/// This type owns the layout: ``frames(_:)`` writes it and ``decode(_:limits:)`` reads it, each
/// column in one copy. Decoding checks every declared count against the frames present and the
/// limits before it allocates, and throws `WireError` on any mismatch; it never traps.
public enum SampleBatchLayout {
    /// The four bytes that start the header frame, `RSMP`.
    public static let magic: [UInt8] = Array("RSMP".utf8)
    /// The layout version this build writes and reads. Independent of
    /// `WireHeader.currentVersion`, which changes with it. 2: the header carries the sampler
    /// settings (temperature, top-k) after the token count.
    public static let version: UInt16 = 2
    /// The bytes of the header frame before the column table.
    public static let fixedBytes = 104
    /// The bytes of one entry of the column table.
    public static let entryBytes = 32
    /// The bytes of an entry's name field (ASCII, padded with zero bytes).
    public static let nameBytes = 20
    /// The size of the header frame.
    public static var headerBytes: Int { fixedBytes + entryBytes * Column.allCases.count }

    /// An element type of a column.
    public enum DType: UInt8, Sendable, CaseIterable {
        /// Unsigned 8-bit integer.
        case u8 = 1
        /// Signed 32-bit integer.
        case i32 = 2
        /// Signed 64-bit integer.
        case i64 = 3
        /// Unsigned 64-bit integer.
        case u64 = 4
        /// IEEE-754 binary32.
        case f32 = 5
        /// IEEE-754 binary64.
        case f64 = 6

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .u8: 1
            case .i32, .f32: 4
            case .i64, .u64, .f64: 8
            }
        }
    }

    /// How many elements a column holds, in terms of the header's counts.
    public enum Extent: Sendable {
        /// One per row.
        case rows
        /// One per row, plus one.
        case rowsPlusOne
        /// The last prompt offset.
        case promptTokens
        /// One per completion token.
        case tokens
        /// One per completion token when the reference was scored (width > 0), else none.
        case referenceTokens
        /// Reference width per completion token.
        case referenceRows
    }

    /// The columns of a batch, in the order they travel.
    public enum Column: Int, Sendable, CaseIterable {
        case ids, groups, promptOffsets, prompts, completionOffsets, completions, behaviourLogProbs
        case versions, rewards, outcomes, referenceLogProbs, referenceRows

        /// The name in the column table.
        public var name: String {
            switch self {
            case .ids: "ids"
            case .groups: "groups"
            case .promptOffsets: "prompt_offsets"
            case .prompts: "prompts"
            case .completionOffsets: "completion_offsets"
            case .completions: "completions"
            case .behaviourLogProbs: "behaviour_logprobs"
            case .versions: "versions"
            case .rewards: "rewards"
            case .outcomes: "outcomes"
            case .referenceLogProbs: "reference_logprobs"
            case .referenceRows: "reference_rows"
            }
        }

        /// The element type.
        public var dtype: DType {
            switch self {
            case .ids: .u64
            case .groups, .promptOffsets, .completionOffsets, .versions: .i64
            case .prompts, .completions: .i32
            case .behaviourLogProbs, .referenceLogProbs, .referenceRows: .f32
            case .rewards: .f64
            case .outcomes: .u8
            }
        }

        /// How many elements it holds.
        public var extent: Extent {
            switch self {
            case .ids, .groups, .rewards, .outcomes: .rows
            case .promptOffsets, .completionOffsets: .rowsPlusOne
            case .prompts: .promptTokens
            case .completions, .behaviourLogProbs, .versions: .tokens
            case .referenceLogProbs: .referenceTokens
            case .referenceRows: .referenceRows
            }
        }
    }

    /// The outcomes by their code in the `outcomes` column (the one mapping both ways).
    private static let outcomeCodes: [AnswerOutcome] = [.correct, .wrongAnswer, .malformed, .noEOS]

    /// The code of an outcome in the `outcomes` column.
    public static func code(_ outcome: AnswerOutcome) -> UInt8 {
        UInt8(outcomeCodes.firstIndex(of: outcome)!)
    }

    /// The outcome of a code in the `outcomes` column, `nil` for an unknown one.
    public static func outcome(_ code: UInt8) -> AnswerOutcome? {
        Int(code) < outcomeCodes.count ? outcomeCodes[Int(code)] : nil
    }

    // MARK: Encoding

    /// The payload frames of `columns`: the header frame, then one frame per column (each
    /// column's elements copied once).
    public static func frames(_ columns: SampleColumns) -> [WireFrame] {
        let outcomes = columns.outcomes.map(code)
        let bodies: [WireFrame] = Column.allCases.map { column in
            switch column {
            case .ids: frame(columns.ids)
            case .groups: frame(columns.groups)
            case .promptOffsets: frame(columns.promptOffsets)
            case .prompts: frame(columns.prompts)
            case .completionOffsets: frame(columns.completionOffsets)
            case .completions: frame(columns.completions)
            case .behaviourLogProbs: frame(columns.behaviourLogProbs)
            case .versions: frame(columns.versions)
            case .rewards: frame(columns.rewards)
            case .outcomes: frame(outcomes)
            case .referenceLogProbs: frame(columns.referenceLogProbs)
            case .referenceRows: frame(columns.referenceRows)
            }
        }
        var w = ByteWriter(capacity: headerBytes)
        w.writeRaw(magic)
        w.write(version)
        w.write(UInt16(Column.allCases.count))
        w.write(columns.worker.rawValue)
        w.write(Int64(columns.index))
        w.write(Int64(columns.attempt))
        w.write(columns.incarnation)
        w.write(columns.token.high)
        w.write(columns.token.low)
        w.write(Int64(columns.groupSize))
        w.write(Int64(columns.referenceWidth))
        w.write(UInt64(columns.ids.count))
        w.write(UInt64(columns.completions.count))
        w.write(columns.sampler.temperature)
        w.write(Int64(columns.sampler.topK))
        for (column, body) in zip(Column.allCases, bodies) {
            let name = Array(column.name.utf8)
            w.writeRaw(name + Array(repeating: 0, count: nameBytes - name.count))
            w.write(column.dtype.rawValue)
            w.writeRaw([0, 0, 0])
            w.write(UInt64(body.count / column.dtype.size))
        }
        return [WireFrame(w.bytes)] + bodies
    }

    /// A frame holding the elements of `values` (one copy).
    private static func frame<T: BitwiseCopyable>(_ values: [T]) -> WireFrame {
        guard !values.isEmpty else { return WireFrame([]) }
        return values.withUnsafeBytes { raw in
            WireFrame(ZMQBuffer(count: raw.count) { $0.copyMemory(from: raw) })
        }
    }

    // MARK: Decoding

    /// The columns of a batch from its payload frames (the bulk message's frames after its
    /// `WireHeader`).
    ///
    /// Checks, in order: the header frame (magic, layout version, column count, size, group size
    /// ≥ 1, reference width ≥ 0, row and token counts, every column's name, dtype and reserved
    /// bytes), the payload frame count, every column's element count against `limits`, its frame's
    /// size and the header's row and token counts, then the offsets (from 0, non-decreasing,
    /// ending at their column's count) and the outcome codes. Each column is copied out of its
    /// frame once, after its count was checked against the frame.
    /// - Throws: `WireError` naming the first check that failed.
    public static func decode(_ frames: [WireFrame], limits: WireLimits = .default) throws(WireError)
        -> SampleColumns
    {
        guard let first = frames.first else { throw WireError(.truncated, "sample batch: no header frame") }
        let header = try first.withUnsafeBytes { (raw) throws(WireError) -> Header in try readHeader(raw) }
        guard frames.count == 1 + Column.allCases.count else {
            throw WireError(
                .lengthMismatch,
                "sample batch: \(frames.count - 1) column frames, the header declares \(Column.allCases.count)"
            )
        }
        let bodies = Array(frames.dropFirst())
        for column in Column.allCases {
            let declared = header.counts[column.rawValue]
            let frame = bodies[column.rawValue]
            let size = column.dtype.size
            guard frame.count <= limits.maxFrameBytes, declared <= UInt64(limits.maxFrameBytes / size) else {
                throw WireError(
                    .oversize,
                    "sample batch column \(column.name): \(declared) elements, limit \(limits.maxFrameBytes) bytes"
                )
            }
            guard Int(declared) * size == frame.count else {
                throw WireError(
                    .lengthMismatch,
                    "sample batch column \(column.name): \(declared) \(column.dtype) elements declared, \(frame.count) bytes present"
                )
            }
        }
        let rows = header.rows
        let tokens = header.tokens
        let width = header.referenceWidth
        func count(_ column: Column) -> Int { Int(header.counts[column.rawValue]) }
        let promptTokens = count(.prompts)
        for column in Column.allCases {
            let expected: Int? =
                switch column.extent {
                case .rows: rows
                case .rowsPlusOne: rows.addingReportingOverflow(1).overflow ? nil : rows + 1
                case .promptTokens: promptTokens
                case .tokens: tokens
                case .referenceTokens: width == 0 ? 0 : tokens
                case .referenceRows:
                    tokens.multipliedReportingOverflow(by: width).overflow ? nil : tokens * width
                }
            guard count(column) == expected else {
                throw WireError(
                    .lengthMismatch,
                    "sample batch column \(column.name): \(count(column)) elements, expected \(expected.map { String($0) } ?? "more than fit") for \(rows) rows, \(tokens) tokens, reference width \(width)"
                )
            }
        }
        let promptOffsets: [Int] = copy(bodies[Column.promptOffsets.rawValue])
        let completionOffsets: [Int] = copy(bodies[Column.completionOffsets.rawValue])
        try checkOffsets(promptOffsets, end: promptTokens, Column.promptOffsets)
        try checkOffsets(completionOffsets, end: tokens, Column.completionOffsets)
        let codes: [UInt8] = copy(bodies[Column.outcomes.rawValue])
        var outcomes: [AnswerOutcome] = []
        outcomes.reserveCapacity(codes.count)
        for code in codes {
            guard let outcome = outcome(code) else {
                throw WireError(.malformed, "sample batch column outcomes: unknown code \(code)")
            }
            outcomes.append(outcome)
        }
        var columns = SampleColumns(
            worker: header.worker, index: header.index, attempt: header.attempt,
            incarnation: header.incarnation, token: header.token, groupSize: header.groupSize,
            sampler: header.sampler)
        columns.ids = copy(bodies[Column.ids.rawValue])
        columns.groups = copy(bodies[Column.groups.rawValue])
        columns.promptOffsets = promptOffsets
        columns.prompts = copy(bodies[Column.prompts.rawValue])
        columns.completionOffsets = completionOffsets
        columns.completions = copy(bodies[Column.completions.rawValue])
        columns.behaviourLogProbs = copy(bodies[Column.behaviourLogProbs.rawValue])
        columns.versions = copy(bodies[Column.versions.rawValue])
        columns.rewards = copy(bodies[Column.rewards.rawValue])
        columns.outcomes = outcomes
        columns.referenceLogProbs = copy(bodies[Column.referenceLogProbs.rawValue])
        columns.referenceRows = copy(bodies[Column.referenceRows.rawValue])
        columns.referenceWidth = width
        return columns
    }

    /// The header frame's fields.
    private struct Header {
        var worker: NodeID
        var index: Int
        var attempt: Int
        var incarnation: UInt64
        var token: AssignmentToken
        var groupSize: Int
        var referenceWidth: Int
        var sampler: SamplerSettings
        var rows: Int
        var tokens: Int
        /// Declared element counts, by ``Column/rawValue``.
        var counts: [UInt64]
    }

    private static func readHeader(_ raw: UnsafeRawBufferPointer) throws(WireError) -> Header {
        var r = ByteReader(raw)
        let magic = try r.take(4, "sample batch magic")
        guard magic.elementsEqual(Self.magic) else {
            throw WireError(.badMagic, "sample batch header starts with \(Array(magic)), expected RSMP")
        }
        let layout = try r.read(UInt16.self, "sample batch layout version")
        guard layout == version else {
            throw WireError(
                .unsupportedVersion, "sample batch layout \(layout), this build reads \(version)")
        }
        let columnCount = try r.read(UInt16.self, "sample batch column count")
        guard Int(columnCount) == Column.allCases.count else {
            throw WireError(
                .lengthMismatch,
                "sample batch declares \(columnCount) columns, expected \(Column.allCases.count)")
        }
        guard raw.count == headerBytes else {
            throw WireError(
                .lengthMismatch, "sample batch header frame is \(raw.count) bytes, expected \(headerBytes)")
        }
        let worker = NodeID(rawValue: try r.read(UInt64.self))
        let index = Int(try r.read(Int64.self))
        let attempt = Int(try r.read(Int64.self))
        let incarnation = try r.read(UInt64.self)
        let token = AssignmentToken(high: try r.read(UInt64.self), low: try r.read(UInt64.self))
        let groupSize = Int(try r.read(Int64.self))
        let referenceWidth = Int(try r.read(Int64.self))
        let rows = try r.read(UInt64.self)
        let tokens = try r.read(UInt64.self)
        let temperature = try r.readDouble("sample batch temperature")
        let topK = try r.read(Int64.self, "sample batch top-k")
        guard groupSize >= 1, referenceWidth >= 0 else {
            throw WireError(
                .malformed, "sample batch: group size \(groupSize), reference width \(referenceWidth)")
        }
        guard temperature.isFinite, temperature >= 0, topK >= 0 else {
            throw WireError(.malformed, "sample batch: temperature \(temperature), top-k \(topK)")
        }
        // Every row and token has at least one byte in some column frame, so a count beyond the
        // largest frame is a lie whatever the columns say.
        guard rows < UInt64(Int32.max), tokens < UInt64(Int.max / 8) else {
            throw WireError(.oversize, "sample batch: \(rows) rows, \(tokens) tokens")
        }
        var counts: [UInt64] = []
        counts.reserveCapacity(Column.allCases.count)
        for column in Column.allCases {
            let name = try r.take(nameBytes, "column name")
            let expected = Array(column.name.utf8)
            guard name.prefix(expected.count).elementsEqual(expected),
                name.dropFirst(expected.count).allSatisfy({ $0 == 0 })
            else {
                throw WireError(
                    .malformed,
                    "sample batch column \(column.rawValue) is not \(column.name) (\(String(decoding: name.prefix(while: { $0 != 0 }), as: UTF8.self).debugDescription))"
                )
            }
            let dtype = try r.read(UInt8.self, "column dtype")
            guard dtype == column.dtype.rawValue else {
                throw WireError(
                    .malformed,
                    "sample batch column \(column.name) has dtype \(dtype), expected \(column.dtype.rawValue)"
                )
            }
            guard try r.take(3, "column reserved").allSatisfy({ $0 == 0 }) else {
                throw WireError(.malformed, "sample batch column \(column.name): reserved bytes are not 0")
            }
            counts.append(try r.read(UInt64.self, "column count"))
        }
        return Header(
            worker: worker, index: index, attempt: attempt, incarnation: incarnation, token: token,
            groupSize: groupSize, referenceWidth: referenceWidth,
            sampler: SamplerSettings(temperature: temperature, topK: Int(topK)), rows: Int(rows),
            tokens: Int(tokens),
            counts: counts)
    }

    /// Throws unless `offsets` start at 0, never decrease and end at `end`.
    private static func checkOffsets(_ offsets: [Int], end: Int, _ column: Column) throws(WireError) {
        var previous = 0
        for offset in offsets {
            guard offset >= previous else {
                throw WireError(
                    .malformed, "sample batch column \(column.name): offset \(offset) after \(previous)")
            }
            previous = offset
        }
        guard offsets.first == 0, offsets.last == end else {
            throw WireError(
                .malformed,
                "sample batch column \(column.name): offsets run from \(offsets.first ?? -1) to \(offsets.last ?? -1), not 0 to \(end)"
            )
        }
    }

    /// The elements of `frame` (its size was checked to be a whole number of them), in one copy.
    private static func copy<T: BitwiseCopyable>(_ frame: WireFrame) -> [T] {
        let count = frame.count / MemoryLayout<T>.stride
        return frame.withUnsafeBytes { raw in
            [T](unsafeUninitializedCapacity: count) { out, initialized in
                if count > 0, let base = raw.baseAddress {
                    UnsafeMutableRawPointer(out.baseAddress!).copyMemory(
                        from: base, byteCount: count * MemoryLayout<T>.stride)
                }
                initialized = count
            }
        }
    }
}
