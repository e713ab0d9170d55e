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
        .library(name: "ReinModel", targets: ["ReinModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
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

        // The only module that touches the libzmq C API.
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ"],
            swiftSettings: strict
        ),

        // The GPT policy engine: forward, backward, KV-cache sampler, AdamW, safetensors.
        .target(
            name: "ReinModel",
            dependencies: ["COpenBLAS"],
            swiftSettings: strict
        ),

        // Raw C libzmq peer for `rein bench transport` (the ceiling the Swift binding is compared to).
        .executableTarget(
            name: "rein-zmq-peer",
            dependencies: ["CZeroMQ"],
            path: "Sources/rein-zmq-peer"
        ),

        .executableTarget(
            name: "rein",
            dependencies: [
                "ZeroMQ",
                "ReinModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .testTarget(
            name: "ReinModelTests",
            dependencies: ["ReinModel"],
            swiftSettings: strict
        ),
    ]
)
