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
        .library(name: "ReinActors", targets: ["ReinActors"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C libraries from Debian.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),

        // The only module that touches the libzmq C API.
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ"],
            swiftSettings: strict
        ),

        // Raw C libzmq peer for `rein bench transport` (the ceiling the Swift binding is compared to).
        .executableTarget(
            name: "rein-zmq-peer",
            dependencies: ["CZeroMQ"],
            path: "Sources/rein-zmq-peer"
        ),

        // The math of docs/kl-gradients.md: KL estimators, placements, ratios; exact enumeration.
        .target(
            name: "ReinKL",
            dependencies: [.product(name: "RealModule", package: "swift-numerics")],
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

        .executableTarget(
            name: "rein",
            dependencies: [
                "ZeroMQ",
                "ReinKL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .testTarget(
            name: "ZeroMQTests",
            dependencies: ["ZeroMQ"],
            swiftSettings: strict
        ),

        // A DistributedActorSystem over ZeroMQ (and an in-memory bus for tests); wire format.
        .target(
            name: "ReinActors",
            dependencies: [
                "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReinActorsTests",
            dependencies: ["ReinActors"],
            swiftSettings: strict
        ),
    ]
)
