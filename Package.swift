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
        .library(name: "MedLedgerContracts", targets: ["MedLedgerContracts"]),
        .executable(name: "medledger", targets: ["medledger"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swiftwasm/WasmKit.git", from: "0.4.2"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
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
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerStore",
            dependencies: ["MedLedgerCore", "MedLedgerContracts", "CSQLite"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "medledger",
            dependencies: [
                "MedLedgerCore",
                "MedLedgerStore",
                "MedLedgerContracts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MedLedgerTestSupport",
            dependencies: ["MedLedgerCore", "MedLedgerStore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MedLedgerCoreTests",
            dependencies: ["MedLedgerCore", "MedLedgerTestSupport", .product(name: "Crypto", package: "swift-crypto")],
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
            name: "MedLedgerToolTests",
            dependencies: [
                "MedLedgerCore", "MedLedgerStore", "MedLedgerTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
