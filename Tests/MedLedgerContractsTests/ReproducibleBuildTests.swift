import Foundation
import MedLedgerTestSupport
import Testing

/// The committed contract modules are exactly what scripts/build-contracts.sh makes from the sources.
@Suite("Reproducible contract builds", .network)
struct ReproducibleBuildTests {
    static let clang = ProcessInfo.processInfo.environment["CLANG"] ?? "/opt/swift/usr/bin/clang"

    /// The committed modules' toolchain (its `clang --version` first line).
    static var committedToolchain: String {
        (try? String(contentsOfFile: ShippedContracts.directory + "/TOOLCHAIN", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    static var installedToolchain: String? {
        guard FileManager.default.isExecutableFile(atPath: clang),
            let result = try? ToolRunner.run(clang, ["--version"], in: NSTemporaryDirectory(), timeout: 30),
            result.status == 0
        else { return nil }
        return result.stdout.split(separator: "\n").first.map(String.init)
    }

    @Test(
        .enabled(
            if: installedToolchain == committedToolchain,
            "needs the toolchain the modules were built with (contracts/build/TOOLCHAIN) at $CLANG or /opt/swift")
    )
    func aFreshBuildGivesTheCommittedBytes() throws {
        let directory = try TemporaryDirectory("contracts")
        defer { directory.remove() }
        for round in 1...2 {
            let out = directory.file("build-\(round)")
            let result = try ToolRunner.run(
                "/usr/bin/env",
                [
                    "MEDLEDGER=\(ToolRunner.medledgerPath)", "/bin/bash",
                    ShippedContracts.repositoryRoot + "/scripts/build-contracts.sh", "--out", out,
                ],
                in: directory.path)
            #expect(result.status == 0, "\(result.stderr)")
            let built = try String(contentsOfFile: out + "/SHA256SUMS", encoding: .utf8)
            let committed = try String(contentsOfFile: ShippedContracts.directory + "/SHA256SUMS", encoding: .utf8)
            #expect(built == committed)
            for line in committed.split(separator: "\n") {
                let name = String(line.split(separator: " ").last ?? "")
                let fresh = FileManager.default.contents(atPath: "\(out)/\(name)")
                #expect(
                    fresh == FileManager.default.contents(atPath: "\(ShippedContracts.directory)/\(name)"), "\(name)")
            }
        }
    }
}
