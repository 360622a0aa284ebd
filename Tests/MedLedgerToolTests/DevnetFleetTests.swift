import Foundation
import MedLedgerTestSupport
import Testing

/// `medledger devnet` with its fleet, as a user runs it: real processes, a real broker, the
/// simulated devices in the devnet's process, and the audit at the end.
@Suite("The devnet's fleet", .serialized, .network)
struct DevnetFleetTests {
    func devnet(_ directory: TemporaryDirectory, seconds: Int, seed: UInt64) throws -> ToolRunner.Result {
        let process = try ToolRunner.start(
            ToolRunner.medledgerPath,
            [
                "devnet", "--dir", directory.file("net"), "--devices", "30", "--rate", "2", "--duration",
                "\(seconds)", "--faults", "malformed=0.05,bad-signature=0.05", "--seed", "\(seed)",
                "--status-interval", "2", "--log-format", "json",
            ], in: directory.path)
        return ToolRunner.finish(process, timeout: Double(seconds + 120))
    }

    @Test func theFleetsReadingsAreAllAccountedForAndAuditedAcrossARestart() throws {
        let directory = try TemporaryDirectory("devnet-fleet")
        defer { directory.remove() }
        let seed = UInt64(ProcessInfo.processInfo.environment["DEVNET_TEST_SEED"] ?? "") ?? 7
        let first = try devnet(directory, seconds: 12, seed: seed)
        let context = "seed \(seed)\n\(first.stdout)\n\(first.stderr)"
        #expect(first.status == 0, "\(context)")
        #expect(first.stdout.contains("30 registered, 0 already"), "\(context)")
        // The status line: the height, the rate, the fleet's latency and the rejections by reason.
        let statusLines = first.stdout.split(separator: "\n").filter { $0.hasPrefix("height ") }
        #expect(
            statusLines.contains {
                $0.contains("readings/s committed") && $0.contains("fleet 30/30 up") && $0.contains(", p50 ")
                    && $0.contains(" ms, p99 ") && $0.contains("rejected bad-signature ")
            }, "\(context)")
        #expect(first.stdout.contains("every replica verifies from genesis"), "\(context)")
        #expect(first.stdout.contains("rejected as expected: bad-signature"), "\(context)")
        #expect(first.stdout.contains("every reading accounted for and matched in the ledger"), "\(context)")

        // Again in the same directory: the chain goes on, the devices are registered already and
        // their seqs go on from where they stopped (a repeated seq would be refused as a replay).
        let second = try devnet(directory, seconds: 8, seed: seed)
        let again = "seed \(seed)\n\(second.stdout)\n\(second.stderr)"
        #expect(second.status == 0, "\(again)")
        #expect(second.stdout.contains("0 registered, 30 already"), "\(again)")
        #expect(!second.stdout.contains("new channel"), "\(again)")
        #expect(second.stdout.contains("every reading accounted for and matched in the ledger"), "\(again)")
        // The nodes logged JSON lines, one object a line.
        let log = try String(contentsOfFile: directory.file("net/logs/manager-1.log"), encoding: .utf8)
        let lines = log.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines.prefix(20) {
            let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            #expect(object?["node"] as? String == "manager-1", "\(line)")
        }
    }
}
