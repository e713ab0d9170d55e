import COneDNN
import COpenBLAS
import Foundation
import Logging
import Synchronization

/// The library that runs the engine's matrix products (`C = α·op(A)·op(B) + β·C`, row-major float32).
///
/// Every product of a model or sampler goes through the backend it was created with. The engine
/// splits batch rows into shards on its own threads and calls the library single-threaded from each,
/// so results are bit-identical for a given backend and thread count (the two backends differ in the
/// last bits). Pick one with ``GemmBackend/configure(_:environment:logger:)`` (the `gemm:` key of a
/// run configuration, overridden by `REIN_GEMM`), or pass one to ``GPTModel`` / ``GPTSampler``.
public enum GemmBackend: String, Sendable, CaseIterable, Codable {
    /// oneDNN's `dnnl_sgemm`: kernels chosen from the CPU's feature bits (AVX2, AVX-512, …).
    /// The default on x86-64.
    case onednn
    /// OpenBLAS's `cblas_sgemm`: kernels chosen from a table of CPU models (`OPENBLAS_CORETYPE`
    /// overrides). The default on other architectures.
    case openblas

    /// The library's name as users know it.
    public var displayName: String {
        switch self {
        case .onednn: "oneDNN"
        case .openblas: "OpenBLAS"
        }
    }

    /// Whether the library computes a known product correctly in this process.
    public var isAvailable: Bool {
        switch self {
        case .onednn: OneDNN.works
        case .openblas: OpenBLAS.works
        }
    }

    /// The backends that work here, in preference order.
    public static var available: [GemmBackend] { allCases.filter(\.isAvailable) }

    /// Library version and the kernels it dispatches to, e.g. `oneDNN 2.6.3, avx512_core_bf16` or
    /// `OpenBLAS Haswell`.
    public var kernels: String {
        switch self {
        case .onednn: "oneDNN \(OneDNN.version), \(OneDNN.isa)"
        case .openblas: "OpenBLAS \(OpenBLAS.coreName)"
        }
    }

    /// `C[m×n] = alpha · op(A) · op(B) + beta · C`, row-major, with leading dimensions, on the calling
    /// thread (`threads` 1) or on `threads` threads of the library's own pool (benchmarks only).
    @inline(__always)
    func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        _ a: ConstFloatPtr, lda: Int, _ b: ConstFloatPtr, ldb: Int,
        beta: Float, _ c: FloatPtr, ldc: Int, threads: Int = 1
    ) {
        switch self {
        case .onednn:
            let status = OneDNN.sgemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb,
                beta: beta, c, ldc: ldc, threads: threads)
            precondition(status == dnnl_success, "dnnl_sgemm \(m)×\(n)×\(k): status \(status.rawValue)")
        case .openblas:
            _ = OpenBLAS.configureOnce
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}

/// The `gemm:` key of a run configuration: a backend, or `auto` (oneDNN on x86-64, else OpenBLAS).
public enum GemmChoice: String, Sendable, CaseIterable, Codable {
    case auto, onednn, openblas
}

/// The backend a process uses, and how it was chosen.
public struct GemmSelection: Sendable, Equatable {
    /// The backend in use.
    public var backend: GemmBackend
    /// What was asked for.
    public var requested: GemmChoice
    /// Where the request came from: `REIN_GEMM`, `config` or `default`.
    public var source: String
    /// Why the requested backend is not the one in use (it does not work here), if so.
    public var fallback: String?

    public init(backend: GemmBackend, requested: GemmChoice, source: String, fallback: String? = nil) {
        self.backend = backend
        self.requested = requested
        self.source = source
        self.fallback = fallback
    }

    /// The environment variable that overrides the configured choice.
    public static let environmentKey = "REIN_GEMM"

    /// Resolves `configured` (overridden by a non-empty `REIN_GEMM` in `environment`) against the
    /// backends that work. Throws when `REIN_GEMM` names no backend, or when none works.
    public static func resolve(
        _ configured: GemmChoice, environment: [String: String], available: [GemmBackend]
    ) throws(ModelError) -> GemmSelection {
        var (choice, source) = (configured, configured == .auto ? "default" : "config")
        if let raw = environment[environmentKey], !raw.isEmpty {
            guard let parsed = GemmChoice(rawValue: raw.lowercased()) else {
                let allowed = GemmChoice.allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalidArgument("\(environmentKey)=\(raw) is not one of \(allowed)")
            }
            (choice, source) = (parsed, environmentKey)
        }
        let wanted: GemmBackend
        switch choice {
        case .auto: wanted = nativeDefault
        case .onednn: wanted = .onednn
        case .openblas: wanted = .openblas
        }
        if available.contains(wanted) {
            return GemmSelection(backend: wanted, requested: choice, source: source)
        }
        guard let other = available.first else {
            throw .invalidArgument("no matrix-product library works here (tried oneDNN and OpenBLAS)")
        }
        return GemmSelection(
            backend: other, requested: choice, source: source,
            fallback: "\(wanted.displayName) does not work in this process; using \(other.displayName)")
    }

    /// The backend `auto` stands for on this architecture.
    public static var nativeDefault: GemmBackend {
        #if arch(x86_64)
            .onednn
        #else
            .openblas
        #endif
    }
}

extension GemmBackend {
    /// The process-wide backend that models and samplers use when not given one: the last
    /// ``configure(_:environment:logger:)``, or else `auto` with `REIN_GEMM` applied.
    public static var preferred: GemmBackend { current.backend }

    /// The process-wide selection (see ``preferred``).
    public static var current: GemmSelection {
        processSelection.withLock { selected in
            if let selected { return selected }
            let env = ProcessInfo.processInfo.environment
            let made =
                (try? GemmSelection.resolve(.auto, environment: env, available: available))
                ?? GemmSelection(backend: .openblas, requested: .auto, source: "default")
            selected = made
            return made
        }
    }

    /// Sets the process-wide backend from a run configuration's `gemm:` key and `REIN_GEMM`, and logs
    /// the choice (a warning when it falls back to the other library).
    @discardableResult
    public static func configure(
        _ configured: GemmChoice, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger
    ) throws(ModelError) -> GemmSelection {
        let selection = try GemmSelection.resolve(configured, environment: environment, available: available)
        processSelection.withLock { $0 = selection }
        let chosen =
            "matrix products: \(selection.backend.kernels) (\(selection.source): \(selection.requested))"
        if let fallback = selection.fallback {
            logger.warning("\(chosen): \(fallback)")
        } else {
            logger.debug("\(chosen)")
        }
        return selection
    }
}

private let processSelection = Mutex<GemmSelection?>(nil)

// MARK: - Libraries

/// OpenBLAS, single-threaded: the engine runs its own shards on separate threads, and a
/// single-threaded kernel gives bit-identical results for a given shard split. (OpenBLAS picks its
/// kernels at load time; `OPENBLAS_CORETYPE` overrides that choice.)
enum OpenBLAS {
    static let configureOnce: Void = { openblas_set_num_threads(1) }()

    /// The OpenBLAS kernel set in use (e.g. `Haswell`, `SkylakeX`).
    static var coreName: String {
        _ = configureOnce
        return String(cString: openblas_get_corename())
    }

    static let works: Bool = {
        _ = configureOnce
        var c: [Float] = [1, 1, 1, 1]
        GemmBackend.openblas.sgemm(
            transA: false, transB: true, m: 2, n: 2, k: 2, [1, 2, 3, 4], lda: 2, [5, 6, 7, 8], ldb: 2,
            beta: 1, &c, ldc: 2)
        return c == [18, 24, 40, 54]
    }()
}

/// oneDNN. Debian builds it with OpenMP: `dnnl_sgemm` runs on `omp_get_max_threads()` threads of the
/// calling thread, and a thread OpenMP did not create starts from the process default (all cores).
/// Each call therefore sets its thread's count first (through libgomp, which libdnnl loads).
enum OneDNN {
    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32

    private static let ompSet: SetThreads? = dlsym(nil, "omp_set_num_threads").map {
        unsafeBitCast($0, to: SetThreads.self)
    }
    private static let ompGet: GetThreads? = dlsym(nil, "omp_get_max_threads").map {
        unsafeBitCast($0, to: GetThreads.self)
    }

    @inline(__always)
    static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        _ a: ConstFloatPtr, lda: Int, _ b: ConstFloatPtr, ldb: Int,
        beta: Float, _ c: FloatPtr, ldc: Int, threads: Int
    ) -> dnnl_status_t {
        if let ompGet, let ompSet, ompGet() != Int32(threads) { ompSet(Int32(threads)) }
        return dnnl_sgemm(
            CChar(UInt8(ascii: transA ? "T" : "N")), CChar(UInt8(ascii: transB ? "T" : "N")),
            Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
    }

    /// `major.minor.patch` of the loaded library.
    static var version: String {
        guard let v = dnnl_version()?.pointee else { return "?" }
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// The widest instruction set oneDNN dispatches to here (`ONEDNN_MAX_CPU_ISA` can lower it).
    static var isa: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: "sse41"
        case dnnl_cpu_isa_avx: "avx"
        case dnnl_cpu_isa_avx2: "avx2"
        case dnnl_cpu_isa_avx2_vnni: "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic: "avx512_mic"
        case dnnl_cpu_isa_avx512_mic_4ops: "avx512_mic_4ops"
        case dnnl_cpu_isa_avx512_core: "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: "avx512_core_amx"
        case let other: "isa 0x\(String(other.rawValue, radix: 16))"
        }
    }

    static let works: Bool = {
        // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]: C = 1 + A·Bᵀ = [[18, 24], [40, 54]].
        var c: [Float] = [1, 1, 1, 1]
        let status = sgemm(
            transA: false, transB: true, m: 2, n: 2, k: 2, alpha: 1, [1, 2, 3, 4], lda: 2, [5, 6, 7, 8],
            ldb: 2, beta: 1, &c, ldc: 2, threads: 1)
        return status == dnnl_success && c == [18, 24, 40, 54]
    }()
}
