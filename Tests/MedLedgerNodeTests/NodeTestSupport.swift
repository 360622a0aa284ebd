import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport

let testLogger: Logger = {
    var logger = Logger(label: "medledger.node.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["NODE_TEST_DEBUG"] == nil ? .error : .debug
    return logger
}()

/// Collects the receipts one device client gets until every seq in `seqs` is committed.
func waitForCommitted(
    _ client: MQTTClient, seqs: Set<UInt64>, channel: TestChannel, limit: Duration = .seconds(60)
) async throws -> [UInt64: Receipt] {
    try await within(limit, "\(seqs.count) readings committed") {
        var committed: [UInt64: Receipt] = [:]
        for await message in client.messages {
            guard let receipt = channel.trustedReceipt(message.payload, topic: message.topic) else { continue }
            if case .committed = receipt.status, seqs.contains(receipt.seq) { committed[receipt.seq] = receipt }
            if committed.count == seqs.count { break }
        }
        return committed
    }
}
