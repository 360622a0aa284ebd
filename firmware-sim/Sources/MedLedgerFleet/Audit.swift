internal import MedLedgerCore
public import MedLedgerStore

/// The fleet's end-of-run accounting: what was sent, committed, rejected by reason and still
/// pending, and every mismatch between what the devices expected and what the managers answered
/// or the ledger holds.
public struct FleetReport: Sendable, Codable {
    /// Devices in the fleet.
    public var devices = 0
    /// Messages made (honest and faulty).
    public var made = 0
    /// First publications.
    public var sent = 0
    /// Publications again (after reconnects, busy receipts, the resend interval).
    public var resent = 0
    /// Honest readings made (each must be committed exactly once), not counting those in doubt.
    public var honest = 0
    /// Honest readings committed (per their receipts), not counting those in doubt.
    public var committed = 0
    /// Honest readings not answered yet (still kept by their devices).
    public var pending = 0
    /// Of the pending ones, those never published (made while the device was offline or just
    /// before the run stopped): the device keeps them to send later, so they are not lost and
    /// not a mismatch, unless their device never connected (`neverConnected`).
    public var unsent = 0
    /// Devices that made messages but never connected to a broker (refused, unreachable): their
    /// messages were never sent, which is a mismatch at the end of a run.
    public var neverConnected = 0
    /// Of the pending ones, those the audit found in the ledger with the bytes sent (committed,
    /// their receipt not yet arrived).
    public var committedWithoutReceipt = 0
    /// Faulty messages made, by fault.
    public var faulty: [String: Int] = [:]
    /// Readings made after their device's revocation was committed.
    public var afterRevocation = 0
    /// Messages made or unanswered while their device's revocation was under way (either
    /// answer is right): how many, committed, refused, still pending.
    public var inDoubt = 0
    /// Messages in doubt committed.
    public var inDoubtCommitted = 0
    /// Messages in doubt refused.
    public var inDoubtRejected = 0
    /// Messages in doubt still unanswered.
    public var inDoubtPending = 0
    /// Messages refused with the expected reason, by reason.
    public var rejected: [String: Int] = [:]
    /// Faulty messages whose rejection did not arrive, by expected reason.
    public var awaitingRejection: [String: Int] = [:]
    /// `accepted` receipts.
    public var accepted = 0
    /// `busy` receipts (the manager's pool was full).
    public var busy = 0
    /// Repeated receipts (retransmissions, several managers).
    public var repeatedReceipts = 0
    /// Receipts the devices ignored because they could not be trusted, by `ReceiptError` code
    /// (forgeries: not a mismatch, since the devices kept their readings).
    public var untrustedReceipts: [String: Int] = [:]
    /// Times a device's store was full when a reading was due.
    public var storeFull = 0
    /// Times a device had no reserved seq when a reading was due.
    public var seqStarved = 0
    /// Replays drawn but never made: the device had no committed reading to replay by the end
    /// of the run (commits slower than the run).
    public var replaysOwed = 0
    /// Publish-to-committed latencies of honest readings.
    public var latency: LatencySummary?
    /// Whether the ledger was checked.
    public var audited = false
    /// The height from which the ledger was checked.
    public var auditedFromHeight: UInt64?
    /// The ledger's height when it was checked.
    public var auditedHeight: UInt64?
    /// Readings of the fleet's devices found in the checked part of the ledger.
    public var auditedReadings = 0
    /// How many mismatches there are (`mismatches` lists the first `mismatchListLimit`).
    public var mismatchCount = 0
    /// The mismatches found; empty when the run is correct.
    public var mismatches: [String] = []

    /// The most mismatches listed by name.
    public static let mismatchListLimit = 200

    private var pendingIsMismatch = true
    private var pendingNames: [String] = []

    private enum CodingKeys: String, CodingKey {
        case devices, made, sent, resent, honest, committed, pending, unsent, neverConnected, committedWithoutReceipt
        case faulty
        case afterRevocation, inDoubt, inDoubtCommitted, inDoubtRejected, inDoubtPending, rejected
        case awaitingRejection, accepted, busy, repeatedReceipts, untrustedReceipts, storeFull, seqStarved, replaysOwed,
            latency, audited
        case auditedFromHeight, auditedHeight, auditedReadings, mismatchCount, mismatches
    }

    /// Whether everything matched.
    public var isCorrect: Bool { mismatchCount == 0 }

    /// Tallies the devices' accounts.
    /// - Parameters:
    ///   - devices: the fleet.
    ///   - latency: the publish-to-committed latencies.
    ///   - pendingIsMismatch: whether an honest reading still unanswered is a mismatch (true at the
    ///     end of a run that drained; false for a status taken mid-run).
    public init(devices: [FirmwareDevice], latency: LatencyHistogram? = nil, pendingIsMismatch: Bool = true) {
        self.devices = devices.count
        self.latency = latency?.summary
        self.pendingIsMismatch = pendingIsMismatch
        for device in devices {
            let account = device.account
            made += account.made
            sent += account.sent
            resent += account.resent
            honest += account.honest - account.honestInDoubt
            committed += account.committed
            afterRevocation += account.afterRevocation
            inDoubt += account.inDoubt
            inDoubtCommitted += account.inDoubtCommitted
            inDoubtRejected += account.inDoubtRejected
            inDoubtPending += device.pendingInDoubt
            accepted += account.acceptedReceipts
            busy += account.busyReceipts
            repeatedReceipts += account.repeatedCommits + account.repeatedRejections
            untrustedReceipts.merge(account.untrustedReceipts, uniquingKeysWith: +)
            storeFull += account.storeFull
            seqStarved += account.seqStarved
            replaysOwed += account.replaysOwed
            for (fault, count) in account.faulty { faulty[fault.rawValue, default: 0] += count }
            for (reason, count) in account.rejected { rejected[reason.rawValue, default: 0] += count }
            for (reason, count) in device.awaitedRejectionCounts {
                awaitingRejection[reason.rawValue, default: 0] += count
            }
            for unexpected in account.unexpected { mismatch("\(device.id) \(unexpected)") }
            if account.made > 0, !account.connected { neverConnected += 1 }
            pending += device.pendingHonest
            let kept = device.kept.values.flatMap { $0 }.filter { $0.expectation == .committed && !$0.inDoubt }
            let sentSeqs = kept.filter { $0.firstSent != nil }.map(\.seq).sorted()
            unsent += kept.count - sentSeqs.count
            if !sentSeqs.isEmpty, pendingNames.count < 10 {
                pendingNames.append("\(device.id) \(sentSeqs.prefix(5).map(String.init).joined(separator: ","))")
            }
        }
        if pendingIsMismatch, neverConnected > 0 {
            mismatch("\(neverConnected) device(s) never connected to a broker: their messages were never sent")
        }
        for (reason, count) in awaitingRejection.sorted(by: { $0.key < $1.key }) {
            mismatch("\(count) faulty message(s) expecting '\(reason)' got no such rejection")
        }
        notePending()
    }

    private mutating func mismatch(_ text: String) {
        mismatchCount += 1
        if mismatches.count < Self.mismatchListLimit { mismatches.append(text) }
    }

    /// Honest readings sent and not answered: the ones a drained run should have committed.
    private var pendingSent: Int { pending - unsent }

    private var pendingLine: String {
        "\(pendingSent) honest reading(s) never committed (e.g. \(pendingNames.joined(separator: "; ")))"
    }

    private mutating func notePending() {
        if pendingIsMismatch, pendingSent > 0 { mismatch(pendingLine) }
    }

    private mutating func retractPending() {
        guard pendingIsMismatch, pendingSent > 0 else { return }
        mismatchCount -= 1
        if let index = mismatches.firstIndex(of: pendingLine) { mismatches.remove(at: index) }
    }

    /// Checks the fleet against a replica's database: every reading a receipt called committed
    /// is in the ledger exactly once, with the exact bytes sent, at the height and block the
    /// receipt named; no seq of a faulty or refused message is committed; an unregistered device
    /// has nothing committed; every reading of the fleet's devices in the checked heights with a
    /// seq of this run was sent as honest; a pending reading found in the ledger holds the bytes
    /// sent (and then counts as committed without its receipt).
    ///
    /// Reads each block from `fromHeight` once (readings are decoded, not verified again:
    /// `medledger verify` checks signatures).
    /// - Parameters:
    ///   - devices: the fleet.
    ///   - store: a replica's store, at least as high as every committed receipt.
    ///   - fromHeight: the first height to check (the store's height + 1 when the run began).
    /// - Throws: `StoreError` when the store cannot be read.
    public mutating func audit(
        _ devices: [FirmwareDevice], against store: LedgerStore, fromHeight: UInt64 = 1
    ) throws(StoreError) {
        audited = true
        auditedFromHeight = fromHeight
        auditedHeight = store.height
        var index: [String: Int] = [:]
        for (number, device) in devices.enumerated() { index[device.id] = number }
        // Every reading of the fleet's devices in the checked heights: (height, block hash, bytes hash).
        var found: [Int: [UInt64: [(UInt64, Hash256, Hash256)]]] = [:]
        if fromHeight <= store.height {
            for height in fromHeight...store.height {
                let block = try store.block(at: height)
                let hash = block.header.hash
                for bytes in block.body.readings {
                    guard let signed = try? SignedReading(decoding: bytes), let number = index[signed.keyID] else {
                        continue
                    }
                    found[number, default: [:]][signed.reading.seq, default: []].append(
                        (height, hash, Hash256.sha256(bytes)))
                }
            }
        }
        retractPending()
        var pendingLeft = pendingSent
        for (number, device) in devices.enumerated() {
            let account = device.account
            let ledger = found[number] ?? [:]
            auditedReadings += ledger.values.reduce(0) { $0 + $1.count }
            for (seq, expected) in account.commits.sorted(by: { $0.key < $1.key }) {
                guard let copies = ledger[seq] else {
                    if expected.height >= fromHeight {
                        mismatch("\(device.id) seq \(seq): a receipt said committed, but the ledger lacks it")
                    }
                    continue
                }
                let (height, blockHash, bytesHash) = copies[0]
                if bytesHash != expected.bytesHash {
                    mismatch("\(device.id) seq \(seq): the ledger holds other bytes than the device sent")
                }
                if height != expected.height || blockHash != expected.blockHash {
                    mismatch(
                        "\(device.id) seq \(seq): committed at height \(height), the receipt said \(expected.height)")
                }
            }
            for (seq, copies) in ledger.sorted(by: { $0.key < $1.key }) {
                if copies.count > 1 {
                    mismatch(
                        "\(device.id) seq \(seq): committed \(copies.count) times (heights \(copies.map(\.0)))")
                }
                if !device.registered {
                    mismatch("\(device.id) seq \(seq): the device is unregistered, yet a reading is committed")
                    continue
                }
                if account.mustNotCommit.contains(seq) {
                    mismatch("\(device.id) seq \(seq): a faulty or refused message was committed")
                    continue
                }
                guard seq >= device.firstSeq, account.commits[seq] == nil else { continue }
                if let pendingReading = device.keptHonest(seq: seq) {
                    if Hash256.sha256(pendingReading.bytes) == copies[0].2 {
                        committedWithoutReceipt += 1
                        if !pendingReading.inDoubt, pendingReading.firstSent != nil { pendingLeft -= 1 }
                    } else {
                        mismatch("\(device.id) seq \(seq): the ledger holds other bytes than the device sent")
                    }
                } else {
                    mismatch("\(device.id) seq \(seq): committed, but the device never sent it as an honest reading")
                }
            }
        }
        if pendingIsMismatch, pendingLeft > 0 {
            mismatch("\(pendingLeft) honest reading(s) never committed (e.g. \(pendingNames.joined(separator: "; ")))")
        }
    }
}

extension FleetReport {
    /// The report for a person: what was made, sent, committed and refused, the latency, the
    /// audit, then `extra` lines and the verdict (every reading accounted for, or the mismatches).
    public func summary(extra: [String] = []) -> String {
        let report = self
        func list(_ counts: [String: Int]) -> String {
            counts.isEmpty
                ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        var lines = [
            "fleet: \(report.devices) devices, \(report.made) messages made, \(report.sent) sent, \(report.resent) resent",
            "  honest: \(report.honest) made, \(report.committed) committed, \(report.pending) still pending"
                + (report.unsent > 0 ? " (\(report.unsent) never sent: kept by their devices, not lost)" : "")
                + (report.committedWithoutReceipt > 0
                    ? " (\(report.committedWithoutReceipt) in the ledger without their receipt yet)" : ""),
            "  faulty: \(list(report.faulty))",
            "  rejected as expected: \(list(report.rejected))",
        ]
        if report.inDoubt > 0 || report.afterRevocation > 0 {
            lines.append(
                "  revocations: \(report.afterRevocation) readings after, \(report.inDoubt) in doubt "
                    + "(\(report.inDoubtCommitted) committed, \(report.inDoubtRejected) refused, "
                    + "\(report.inDoubtPending) pending)")
        }
        if let latency = report.latency {
            lines.append(
                "  latency publish→committed: p50 \(latency.p50Ms) ms, p90 \(latency.p90Ms) ms, "
                    + "p99 \(latency.p99Ms) ms, max \(latency.maxMs) ms")
        }
        lines.append(
            "  receipts: \(report.accepted) accepted, \(report.busy) busy, \(report.repeatedReceipts) repeated; "
                + "store full \(report.storeFull)×, seq starved \(report.seqStarved)×"
                + (report.replaysOwed > 0 ? ", \(report.replaysOwed) replay(s) never made (nothing committed yet)" : "")
        )
        if !report.untrustedReceipts.isEmpty {
            lines.append("  receipts ignored as untrusted (readings kept): \(list(report.untrustedReceipts))")
        }
        if report.audited {
            lines.append(
                "  audit: heights \(report.auditedFromHeight ?? 1)...\(report.auditedHeight ?? 0), "
                    + "\(report.auditedReadings) readings of the fleet checked")
        }
        lines += extra
        if report.isCorrect {
            lines.append("fleet: every reading accounted for" + (report.audited ? " and matched in the ledger" : ""))
        } else {
            lines.append("fleet: \(report.mismatchCount) MISMATCH(ES):")
            lines += report.mismatches.map { "  - \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}
