/// What a manager does with one reading that arrived (PROTOCOL.md, "What a manager does with a
/// reading"), decided against the committed state and the readings already pending.
public enum IntakeOutcome: Hashable, Sendable {
    /// It passed every rule and joined the pool: answer `accepted`.
    case accepted(SignedReading)
    /// The very same bytes are pending already (a retransmission): answer `accepted` again.
    case pending(SignedReading)
    /// The reading's (device, seq) is no longer fresh on the committed state. If the store holds
    /// these very bytes, it is a retransmission of a committed reading (answer `committed` with
    /// its height and block hash); otherwise it is a replay (answer `rejected`, `replayed`).
    case committedOrReplayed(SignedReading, ReadingRejection)
    /// The pool is full: answer `busy`; the device keeps the reading and sends it again later.
    case poolFull(SignedReading)
    /// Refused. `seq` is the reading's seq when it decoded far enough to tell.
    case rejected(seq: UInt64?, ReadingRejection)

    /// The seq the receipt names (0 when the reading did not decode).
    public var seq: UInt64 {
        switch self {
        case .accepted(let signed), .pending(let signed), .committedOrReplayed(let signed, _), .poolFull(let signed):
            signed.reading.seq
        case .rejected(let seq, _): seq ?? 0
        }
    }
}

/// One message from a device's readings topic.
public struct IncomingReading: Sendable {
    /// The device id the topic names (`medledger/v1/{channel}/readings/{device}`).
    public var topicDevice: String
    /// The payload, exactly as received.
    public var bytes: [UInt8]

    /// Makes one.
    public init(topicDevice: String, bytes: [UInt8]) {
        self.topicDevice = topicDevice
        self.bytes = bytes
    }
}

extension LedgerState {
    /// A manager's intake of a batch of readings: decodes each, checks its signature with the
    /// device's committed key (spread over every core by `verifier`), then applies PROTOCOL.md's
    /// rules in order against the committed state and admits what passes to the pool. A reading
    /// whose (device, seq) is pending with other bytes is refused as `replayed`.
    ///
    /// A device whose registration is pending (and passes on this state) counts as registered:
    /// the registration goes into a block before the readings. So a manager that has not yet
    /// applied the block registering a device, while another manager already answered its
    /// registrar `committed`, does not refuse the device's first readings as `unknown-device`.
    /// - Parameters:
    ///   - batch: the readings, in arrival order.
    ///   - now: the manager's clock, ms.
    ///   - pool: the manager's pool; accepted readings are added.
    ///   - pendingTransactions: the manager's pending transactions, in arrival order.
    ///   - verifier: where the decoding and signatures run.
    /// - Returns: one outcome per reading, in order.
    public func intake(
        _ batch: [IncomingReading], now: UInt64, pool: inout Mempool,
        pendingTransactions: [SignedTransaction] = [], verifier: some SignatureVerifier
    ) -> [IntakeOutcome] {
        let registered = devicesWithPendingRegistrations(pendingTransactions)
        let decoded = verifier.map(count: batch.count) { index -> Result<(SignedReading, Bool), ReadingRejection> in
            let signed: SignedReading
            do throws(ReadingRejection) {
                signed = try SignedReading(decoding: batch[index].bytes)
            } catch {
                return .failure(error)
            }
            guard let record = registered[signed.keyID], signed.message.algorithm == record.key.algorithm else {
                return .success((signed, false))
            }
            return .success((signed, record.key.isValidSignature(signed.message.signature, for: signed.toBeSigned)))
        }
        return decoded.enumerated().map { index, result in
            switch result {
            case .failure(let rejection):
                return .rejected(seq: nil, rejection)
            case .success(let (signed, valid)):
                let rejection = check(
                    signed, record: registered[signed.keyID], topicDevice: batch[index].topicDevice, now: now,
                    signatureValid: { _ in valid })
                if let rejection {
                    if rejection.reason == .replayed { return .committedOrReplayed(signed, rejection) }
                    return .rejected(seq: signed.reading.seq, rejection)
                }
                switch pool.admit(signed, now: now) {
                case .added: return .accepted(signed)
                case .duplicate: return .pending(signed)
                case .full, .deviceFull: return .poolFull(signed)
                case .conflict:
                    return .rejected(
                        seq: signed.reading.seq,
                        ReadingRejection(
                            .replayed, "another reading with seq \(signed.reading.seq) of '\(signed.keyID)' is pending")
                    )
                }
            }
        }
    }

    /// The registry with the devices that pending transactions register (those that pass, in
    /// order, on this state); nothing else they would change.
    func devicesWithPendingRegistrations(_ transactions: [SignedTransaction]) -> [String: DeviceRecord] {
        var registered = devices
        let registers = transactions.contains {
            if case .registerDevice = $0.transaction.body { true } else { false }
        }
        guard registers else { return registered }
        var changes = BlockChanges()
        for signed in transactions { _ = admit(signed, height: height + 1, into: &changes) }
        // Only a registration adds a device to the registry; other changes wait for their block.
        for (id, record) in changes.devices where registered[id] == nil { registered[id] = record }
        return registered
    }

    /// A manager's next block: the pending transactions that still pass (in order), then the
    /// pending readings that still pass on the state after them, within the channel's limits.
    /// While readings wait, transactions take at most half of the block's bytes
    /// (`transactionByteBudget`), so a queue of transactions cannot keep readings out.
    /// Readings were verified when they arrived, and a device's key never changes, so their
    /// signatures are not checked again here; the council checks them in full.
    /// - Parameters:
    ///   - transactions: pending transactions, in arrival order.
    ///   - readings: pending readings, oldest first (e.g. `Mempool.batch`).
    ///   - time: the proposer's clock, ms.
    ///   - proposer: the proposing manager's id.
    /// - Returns: the block and what no longer passes (to refuse and take out of the pools).
    public func assemble(
        transactions: [SignedTransaction], readings: [SignedReading], time: UInt64, proposer: String
    ) -> BlockAssembly {
        let limits = genesis.block
        let height = height + 1
        let clock = Swift.max(time, self.time)
        var changes = BlockChanges()
        var refusedTransactions: [(SignedTransaction, TransactionRejection)] = []
        var refusedReadings: [(SignedReading, ReadingRejection)] = []
        var bytes = 0
        var includedTransactions: [[UInt8]] = []
        let budget = readings.isEmpty ? limits.maxBytes : Self.transactionByteBudget(limits)
        for signed in transactions {
            guard bytes + signed.bytes.count <= budget else { break }
            if let rejection = admit(signed, height: height, into: &changes) {
                refusedTransactions.append((signed, rejection))
                continue
            }
            bytes += signed.bytes.count
            includedTransactions.append(signed.bytes)
        }
        var includedReadings: [[UInt8]] = []
        for signed in readings {
            guard includedReadings.count < limits.maxReadings, bytes + signed.bytes.count <= limits.maxBytes else {
                break
            }
            switch admit(signed, signatureValid: true, now: clock, into: &changes) {
            case .failure(let rejection):
                refusedReadings.append((signed, rejection))
            case .success:
                bytes += signed.bytes.count
                includedReadings.append(signed.bytes)
            }
        }
        let block = Block(
            extending: self, time: clock, proposer: proposer,
            body: BlockBody(readings: includedReadings, transactions: includedTransactions))
        return BlockAssembly(
            block: block, refusedTransactions: refusedTransactions, refusedReadings: refusedReadings)
    }
}

extension LedgerState {
    /// The bytes a block's transactions may take while readings wait: half the block.
    public static func transactionByteBudget(_ limits: BlockParameters) -> Int { limits.maxBytes / 2 }
}

/// A block a manager assembled, and the pending items that no longer pass.
public struct BlockAssembly: Sendable {
    /// The block.
    public var block: Block
    /// Transactions that no longer pass, with the reason.
    public var refusedTransactions: [(SignedTransaction, TransactionRejection)]
    /// Readings that no longer pass (e.g. their device was revoked meanwhile), with the reason.
    public var refusedReadings: [(SignedReading, ReadingRejection)]
}
