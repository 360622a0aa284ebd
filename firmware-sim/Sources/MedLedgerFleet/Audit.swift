internal import MedLedgerCore
public import MedLedgerStore

/// The fleet's end-of-run accounting: what was sent, committed, rejected by reason and still
/// pending, and every mismatch between what the devices expected and what the ledger holds.
public struct FleetReport: Sendable, Codable {
    /// Devices in the fleet.
    public var devices = 0
    /// Honest readings made.
    public var honest = 0
    /// Honest readings committed (per their receipts).
    public var committed = 0
    /// Honest readings not committed yet (still kept by their devices).
    public var pending = 0
    /// Faulty messages made, by fault.
    public var faulty: [String: Int] = [:]
    /// Faulty messages rejected with the expected reason, by reason.
    public var rejected: [String: Int] = [:]
    /// Faulty messages whose rejection did not arrive, by reason.
    public var awaitingRejection: [String: Int] = [:]
    /// `busy` receipts (the manager's pool was full).
    public var busy = 0
    /// Repeated receipts (retransmissions, several managers).
    public var repeatedReceipts = 0
    /// Honest readings checked against the replica's database.
    public var auditedReadings = 0
    /// Every mismatch found; empty when the run is correct.
    public var mismatches: [String] = []

    /// Whether everything matched.
    public var isCorrect: Bool { mismatches.isEmpty }

    /// Tallies the devices' accounts.
    /// - Parameter devices: the fleet.
    public init(devices: [FirmwareDevice]) {
        self.devices = devices.count
        for device in devices {
            let account = device.account
            honest += account.honest
            committed += account.committed
            pending += device.unacked.count
            busy += account.busyReceipts
            repeatedReceipts += account.repeatedCommits + account.repeatedRejections
            for (fault, count) in account.faulty { faulty[fault.rawValue, default: 0] += count }
            for (reason, count) in account.rejected { rejected[reason.rawValue, default: 0] += count }
            for (reason, count) in device.awaitedRejectionCounts {
                awaitingRejection[reason.rawValue, default: 0] += count
            }
            for rejection in account.honestRejected {
                mismatches.append(
                    "\(device.id) seq \(rejection.seq): an honest reading was rejected (\(rejection.reason.rawValue))")
            }
        }
        for (reason, count) in awaitingRejection.sorted(by: { $0.key < $1.key }) {
            mismatches.append("\(count) faulty message(s) expecting '\(reason)' got no such rejection")
        }
    }

    /// Checks the fleet against a replica's database: every honest reading a receipt called
    /// committed is in the ledger exactly once, with the exact bytes sent, at the height the
    /// receipt named; no seq a faulty message used is committed; an unregistered device has
    /// nothing committed; and nothing else of the fleet's devices is in the ledger.
    /// - Parameters:
    ///   - devices: the fleet.
    ///   - store: a replica's store.
    /// - Throws: `StoreError` when the store cannot be read.
    public mutating func audit(_ devices: [FirmwareDevice], against store: LedgerStore) throws(StoreError) {
        for device in devices {
            let account = device.account
            for (seq, expected) in account.commits.sorted(by: { $0.key < $1.key }) {
                auditedReadings += 1
                guard let found = try store.committedReading(device: device.id, seq: seq) else {
                    mismatches.append("\(device.id) seq \(seq): a receipt said committed, but the ledger lacks it")
                    continue
                }
                if Hash256.sha256(found.bytes) != expected.bytesHash {
                    mismatches.append("\(device.id) seq \(seq): the ledger holds other bytes than the device sent")
                }
                if found.height != expected.height || found.blockHash != expected.blockHash {
                    mismatches.append(
                        "\(device.id) seq \(seq): committed at height \(found.height), the receipt said \(expected.height)"
                    )
                }
            }
            for seq in account.faultySeqs.sorted() where try store.committedReading(device: device.id, seq: seq) != nil
            {
                mismatches.append("\(device.id) seq \(seq): a faulty message was committed")
            }
            let stored = try store.readings(matching: ReadingQuery(device: device.id))
            if !device.registered, !stored.isEmpty {
                mismatches.append("\(device.id): unregistered, yet \(stored.count) reading(s) are committed")
            }
            for reading in stored where account.commits[reading.seq] == nil && device.unacked[reading.seq] == nil {
                mismatches.append("\(device.id) seq \(reading.seq): committed, but the device never sent it as honest")
            }
        }
    }
}
