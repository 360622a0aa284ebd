// swift-tools-version: 6.1
import PackageDescription

/// libFuzzer targets for MedLedger's decoders of untrusted bytes. Build and run them with
/// `scripts/fuzz.sh`, which passes `-sanitize=fuzzer,address -parse-as-library`: the
/// targets have no `main`, libFuzzer supplies it.
let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The fuzz targets: one per decoder, and `fuzz-intake`, which runs validly signed readings of
/// arbitrary payloads through a manager's intake, block assembly, the validator's check and apply.
let fuzzers = ["fuzz-reading", "fuzz-header", "fuzz-body", "fuzz-certificate", "fuzz-transaction", "fuzz-intake"]

let package = Package(
    name: "MedLedgerFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "MedLedger", path: "..")
    ],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(
            name: "FuzzSupport",
            dependencies: ["CFuzzDriver", .product(name: "MedLedgerCore", package: "MedLedger")],
            swiftSettings: settings
        ),
    ]
        + fuzzers.map { name in
            .executableTarget(
                name: name,
                dependencies: ["FuzzSupport", .product(name: "MedLedgerCore", package: "MedLedger")],
                swiftSettings: settings
            )
        }
)
