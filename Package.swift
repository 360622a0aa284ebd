// swift-tools-version: 6.2
import PackageDescription

/// Settings every MedLedger target is built with: Swift 6 mode, the upcoming features the
/// project depends on, and warnings treated as errors.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "MedLedger",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MedLedgerCore", targets: ["MedLedgerCore"]),
        .library(name: "MedLedgerStore", targets: ["MedLedgerStore"]),
        .library(name: "MedLedgerMQTT", targets: ["MedLedgerMQTT"]),
        .library(name: "MedLedgerBroker", targets: ["MedLedgerBroker"]),
        .library(name: "MedLedgerConsensus", targets: ["MedLedgerConsensus"]),
        .library(name: "MedLedgerContracts", targets: ["MedLedgerContracts"]),
        .executable(name: "medledger", targets: ["medledger"]),
        .executable(name: "medledger-fleet", targets: ["medledger-fleet"]),
        .library(name: "MedLedgerFleet", targets: ["MedLedgerFleet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swiftwasm/WasmKit.git", from: "0.4.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Without its default traits: no swift-configuration support, which the node does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .target(
            name: "MedLedgerCore",
            dependencies: [
                "CZstd",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerContracts",
            dependencies: [
                "MedLedgerCore",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WasmParser", package: "WasmKit"),
                .product(name: "WAT", package: "WasmKit"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerStore",
            dependencies: ["MedLedgerCore", "MedLedgerContracts", "CSQLite"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerMQTT",
            dependencies: ["CMosquitto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerBroker",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerConsensus",
            dependencies: ["MedLedgerCore"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerWeb",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerNode",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerConsensus", "MedLedgerMQTT", "MedLedgerWeb",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerBench",
            dependencies: ["MedLedgerCore", "CMosquitto"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "medledger",
            dependencies: [
                "MedLedgerBench",
                "MedLedgerCore",
                "MedLedgerStore",
                "MedLedgerBroker",
                "MedLedgerNode",
                "MedLedgerMQTT",
                "MedLedgerFleet",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                "MedLedgerContracts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerFleet",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerMQTT", "MedLedgerNode",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "firmware-sim/Sources/MedLedgerFleet",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "medledger-fleet",
            dependencies: [
                "MedLedgerFleet", "MedLedgerCore", "MedLedgerStore", "MedLedgerMQTT", "MedLedgerNode",
                "MedLedgerBroker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "firmware-sim/Sources/medledger-fleet",
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerTestSupport",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerNode", "MedLedgerMQTT", "MedLedgerBroker",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerCoreTests",
            dependencies: ["MedLedgerCore", "MedLedgerTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerBenchTests",
            dependencies: ["MedLedgerBench", "MedLedgerCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerContractsTests",
            dependencies: ["MedLedgerCore", "MedLedgerContracts", "MedLedgerTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerStoreTests",
            dependencies: ["MedLedgerCore", "MedLedgerStore", "MedLedgerContracts", "MedLedgerTestSupport", "CSQLite"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerFleetTests",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerFleet", "MedLedgerTestSupport", "MedLedgerMQTT",
                "MedLedgerBroker", "MedLedgerNode", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FirmwareDeviceTests",
            dependencies: ["MedLedgerCore", "MedLedgerStore", "MedLedgerNode", "MedLedgerTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerMQTTTests",
            dependencies: [
                "MedLedgerMQTT", "MedLedgerBroker", "MedLedgerCore", "MedLedgerTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerConsensusTests",
            dependencies: ["MedLedgerConsensus", "MedLedgerCore", "MedLedgerStore", "MedLedgerTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerNodeTests",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerNode", "MedLedgerMQTT", "MedLedgerBroker",
                "MedLedgerConsensus",
                "MedLedgerTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerWebTests",
            dependencies: ["MedLedgerWeb"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerToolTests",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerTestSupport", "MedLedgerBroker", "MedLedgerNode",
                "MedLedgerMQTT", "MedLedgerBench",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
