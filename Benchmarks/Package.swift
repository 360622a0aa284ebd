// swift-tools-version: 6.1
import PackageDescription

/// Benchmarks of MedLedger, kept in their own package so the main package does not depend on
/// ordo-one/benchmark. Run them with `scripts/bench.sh`.
let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "MedLedgerBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(name: "MedLedger", path: ".."),
    ],
    targets: [
        .systemLibrary(name: "CBenchSQLite", path: "Sources/CBenchSQLite", pkgConfig: "sqlite3"),
        .target(
            name: "LedgerFixtures",
            dependencies: [
                .product(name: "MedLedgerCore", package: "MedLedger"),
                .product(name: "MedLedgerStore", package: "MedLedger"),
            ],
            path: "Sources/LedgerFixtures",
            swiftSettings: settings
        ),
        .executableTarget(
            name: "ledger-figures",
            dependencies: [
                "CBenchSQLite",
                "LedgerFixtures",
                .product(name: "MedLedgerCore", package: "MedLedger"),
                .product(name: "MedLedgerStore", package: "MedLedger"),
            ],
            path: "Sources/ledger-figures",
            swiftSettings: settings
        ),
        // The plain-libmosquitto program the Swift client's throughput is compared with.
        .executableTarget(
            name: "mqtt-bare",
            path: "Sources/mqtt-bare",
            linkerSettings: [.linkedLibrary("mosquitto"), .linkedLibrary("pthread")]
        ),
        .executableTarget(
            name: "mqtt-figures",
            dependencies: [
                .product(name: "MedLedgerMQTT", package: "MedLedger"),
                .product(name: "MedLedgerBroker", package: "MedLedger"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/mqtt-figures",
            swiftSettings: settings
        ),
        .executableTarget(
            name: "mqtt-fleet",
            dependencies: [
                .product(name: "MedLedgerMQTT", package: "MedLedger"),
                .product(name: "MedLedgerBroker", package: "MedLedger"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/mqtt-fleet",
            swiftSettings: settings
        ),
        .executableTarget(
            name: "LedgerBenchmarks",
            dependencies: [
                "LedgerFixtures",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MedLedgerCore", package: "MedLedger"),
                .product(name: "MedLedgerStore", package: "MedLedger"),
            ],
            path: "Benchmarks/LedgerBenchmarks",
            swiftSettings: settings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
