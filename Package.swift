// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Rein",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rein", targets: ["rein"]),
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "ReinKL", targets: ["ReinKL"]),
        .library(name: "ReinModel", targets: ["ReinModel"]),
        .library(name: "ReinTasks", targets: ["ReinTasks"]),
        .library(name: "Rein", targets: ["Rein"]),
        .library(name: "ReinActors", targets: ["ReinActors"]),
        .library(name: "ReinRuntime", targets: ["ReinRuntime"]),
        .library(name: "ReinTracker", targets: ["ReinTracker"]),
        .library(name: "ReinReport", targets: ["ReinReport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Metrics: the swift-metrics API in the libraries; Prometheus over NIO's HTTP/1 in the CLI.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C libraries from Debian.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // oneDNN has no pkg-config file: the module map links "dnnl" and includes /usr/include/dnnl.h.
        .systemLibrary(
            name: "COneDNN",
            providers: [.apt(["libdnnl-dev"])]
        ),
        // The engine's GELU kernels in C, built for the x86-64 baseline and for AVX2 + FMA, one chosen
        // at run time (Swift cannot compile one function for a wider instruction set than the binary's).
        .target(name: "CReinKernels"),
        // sched_setaffinity for `rein bench scale --pin` (glibc hides it from Swift).
        .target(name: "CReinAffinity"),

        // The only module that touches the libzmq C API.
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ZeroMQTests",
            dependencies: ["ZeroMQ"],
            swiftSettings: strict
        ),

        // Raw C libzmq peer for `rein bench transport` (the ceiling the Swift binding is compared to).
        .executableTarget(
            name: "rein-zmq-peer",
            dependencies: ["CZeroMQ"],
            path: "Sources/rein-zmq-peer"
        ),

        // SplitMix64: the one deterministic random number generator (every module seeds from it).
        .target(
            name: "ReinRandom",
            swiftSettings: strict
        ),

        // The math of the KLGradients article (ReinKL.docc): KL estimators, placements, ratios; exact enumeration.
        .target(
            name: "ReinKL",
            dependencies: ["ReinRandom", .product(name: "RealModule", package: "swift-numerics")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinKLTests",
            dependencies: [
                "ReinKL",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),

        // The GPT policy engine: forward, backward, KV-cache sampler, AdamW, safetensors.
        .target(
            name: "ReinModel",
            dependencies: [
                "COneDNN", "COpenBLAS", "CReinKernels", "ReinRandom",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinModelTests",
            dependencies: ["ReinModel"],
            swiftSettings: strict
        ),

        // Tokenizer, the verifiable arithmetic task, seeded splits and batches, rewards, evaluation.
        .target(
            name: "ReinTasks",
            dependencies: ["ReinRandom"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinTasksTests",
            dependencies: ["ReinTasks"],
            swiftSettings: strict
        ),

        // The algorithm: rollouts, GRPO advantages, learner step with any KL form, configuration.
        .target(
            name: "Rein",
            dependencies: [
                "ReinKL", "ReinModel", "ReinTasks",
                .product(name: "RealModule", package: "swift-numerics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),  // the run folder's config.yaml
            ],
            swiftSettings: strict
        ),
        // Fixtures shared by the test targets (tiny runs).
        .target(
            name: "ReinTestKit",
            dependencies: [
                "Rein", "ReinKL", "ReinModel", "ReinTasks", "ReinActors", "ReinRuntime",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinTests",
            dependencies: [
                "Rein", "ReinTestKit",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Yams", package: "Yams"),  // Yams's own resolver, as the reference
            ],
            swiftSettings: strict
        ),

        // The staleness tracker: exact per-lag bias of every KL implementation, IS diagnostics.
        .target(
            name: "ReinTracker",
            dependencies: [
                "Rein", "ReinKL", "ReinModel",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinTrackerTests",
            dependencies: ["ReinTracker", "Rein", "ReinKL", "ReinModel", "ReinTestKit"],
            swiftSettings: strict
        ),

        // Reports: report.html (inline SVG), report.json (versioned), CSV, from run folders.
        .target(
            name: "ReinReport",
            dependencies: [
                "ReinTracker", "ReinRandom",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinReportTests",
            dependencies: ["ReinReport", "ReinTracker"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),

        // Every metric's name, kind, labels and help (recorded through swift-metrics).
        .target(
            name: "ReinMetrics",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        // The Prometheus registry (swift-metrics bootstrap) and the `GET /metrics` HTTP service.
        .target(
            name: "ReinMetricsServer",
            dependencies: [
                "ReinMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinMetricsTests",
            dependencies: [
                "ReinMetrics", "ReinMetricsServer", "ReinRuntime", "Rein", "ReinActors", "ReinTracker",
                "ReinTestKit", "ZeroMQ",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // A DistributedActorSystem over ZeroMQ (and an in-memory bus for tests); wire format.
        .target(
            name: "ReinActors",
            dependencies: [
                "ReinRandom", "ZeroMQ", "ReinMetrics",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinActorsTests",
            dependencies: ["ReinActors"],
            swiftSettings: strict
        ),

        // The learner and rollout workers as distributed actors; the sample ledger; launch modes.
        .target(
            name: "ReinRuntime",
            dependencies: [
                "Rein", "ReinActors", "ReinModel", "ReinTasks", "ReinTracker", "ZeroMQ", "ReinMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinRuntimeTests",
            dependencies: [
                "ReinRuntime", "Rein", "ReinActors", "ReinTracker", "ZeroMQ", "ReinTestKit",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // The command line as a library (testable); `rein` is a one-line executable around it.
        .target(
            name: "ReinCLI",
            dependencies: [
                "ZeroMQ", "CReinAffinity", "ReinKL", "ReinModel", "ReinTasks", "Rein", "ReinActors",
                "ReinRuntime", "ReinTracker", "ReinReport", "ReinMetrics", "ReinMetricsServer", "ReinRandom",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "rein",
            dependencies: ["ReinCLI"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinCLITests",
            dependencies: ["ReinCLI", "Rein", "ReinActors", "ReinModel", "ReinRuntime", "ReinTestKit"],
            swiftSettings: strict
        ),
        // deploy/ and scripts/: manifests, units, Dockerfile and shell scripts checked statically.
        .testTarget(
            name: "ReinDeployTests",
            dependencies: [
                "ReinCLI", "Rein",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
    ]
)
