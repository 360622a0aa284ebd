public import MedLedgerCore

/// What a manager should answer a message a simulated device sent.
public enum Expectation: Hashable, Sendable {
    /// An honest reading: committed exactly once.
    case committed
    /// A faulty one: rejected with this reason.
    case rejected(RejectionReason)
}

/// A message a simulated device publishes on its readings topic.
public struct OutgoingReading: Hashable, Sendable {
    /// The seq the manager's receipt will name (0 when the bytes don't decode far enough).
    public var receiptSeq: UInt64
    /// The payload.
    public var bytes: [UInt8]
    /// What the manager should answer.
    public var expectation: Expectation
    /// The fault injected, if any.
    public var fault: Fault?
}

/// One simulated device's firmware: its identity, its persisted sequence counter, and the
/// bounded store of readings it keeps until a `committed` receipt names them.
///
/// A pure state machine: the fleet's transport asks it for readings to send and feeds it the
/// receipts that arrive. It never reuses a seq (the counter is reserved ahead in durable storage
/// by the fleet, `reservedThrough`), never drops an unacknowledged honest reading (when its store
/// is full it stops sampling and says so), and keeps what it sent offline until it is committed.
public struct FirmwareDevice: Sendable {
    /// The device id (also its MQTT username).
    public let id: String
    /// Its key.
    public let key: PrivateKey
    /// What it measures.
    public let kind: DeviceKind
    /// Whose values it reports.
    public let patient: PatientProfile
    /// Whether it was registered (an unregistered device's readings must all be refused).
    public let registered: Bool
    /// The channel it reports on.
    public let channel: String
    /// The next seq to use.
    public private(set) var nextSeq: UInt64
    /// The highest seq reserved in durable storage; `sample` uses none above it.
    public var reservedThrough: UInt64
    /// How many unacknowledged readings the store holds at most.
    public let capacity: Int
    /// The readings sent and not yet committed, by seq, with when each was last sent (ms).
    public private(set) var unacked: [UInt64: (reading: SignedReading, lastSent: UInt64?)] = [:]
    /// The tally of what happened to this device's messages.
    public private(set) var account = DeviceAccount()
    /// Faulty messages whose rejection is awaited, by receipt seq (0: undecodable ones).
    private var awaitedRejections: [UInt64: [RejectionReason]] = [:]
    /// Seqs committed recently (targets for replays).
    private var recentlyCommitted: [UInt64] = []
    private var random: SeededRandom

    /// Makes a device.
    /// - Parameters:
    ///   - id: the device id.
    ///   - key: its private key.
    ///   - kind: what it measures.
    ///   - patient: whose values it reports.
    ///   - registered: whether it is registered on the channel.
    ///   - channel: the channel.
    ///   - nextSeq: the first seq to use (from the persisted counter; 1 for a new device).
    ///   - capacity: the store's capacity.
    ///   - seed: the device's own random seed.
    public init(
        id: String, key: PrivateKey, kind: DeviceKind, patient: PatientProfile, registered: Bool, channel: String,
        nextSeq: UInt64 = 1, capacity: Int = 256, seed: UInt64
    ) {
        self.id = id
        self.key = key
        self.kind = kind
        self.patient = patient
        self.registered = registered
        self.channel = channel
        self.nextSeq = max(1, nextSeq)
        self.reservedThrough = self.nextSeq - 1
        self.capacity = capacity
        self.random = SeededRandom(seed: seed)
    }

    /// Whether the store is full (the device stops sampling until receipts free it).
    public var isFull: Bool { unacked.count >= capacity }

    /// Samples a reading at a time and returns what to publish: an honest reading (kept until
    /// committed) or, per the fault plan, a faulty message. Nil when the store is full or no seq
    /// is reserved (both counted).
    /// - Parameters:
    ///   - now: the device's clock, ms (an old time for backlog sampled offline is fine).
    ///   - faults: the fault plan.
    ///   - skewMs: the channel's skew window (a clock-skew fault goes beyond it).
    public mutating func sample(now: UInt64, faults: FaultPlan, skewMs: UInt64) -> OutgoingReading? {
        guard !isFull else {
            account.storeFull += 1
            return nil
        }
        guard nextSeq <= reservedThrough else {
            account.seqStarved += 1
            return nil
        }
        let fault = registered ? faults.draw(using: &random) : nil
        if fault == .replayed, recentlyCommitted.isEmpty {
            return sampleHonest(now: now)
        }
        switch fault {
        case nil, .burst, .disconnect, .unregistered:
            return sampleHonest(now: now)
        case .replayed:
            let seq = recentlyCommitted.randomElement(using: &random)!
            let reading = Reading(
                channel: channel, device: id, seq: seq, time: now,
                records: kind.records(for: patient, at: now, random: &random))
            return faulty(try! SignedReading(signing: reading, with: key).bytes, seq: seq, fault: .replayed)
        case .tampered:
            let seq = takeSeq()
            let signed = try! SignedReading(signing: reading(seq: seq, now: now), with: key)
            var tampered = signed.reading
            tampered.records[0].value = .integer(Int64(tampered.records[0].value.doubleValue) + 1)
            let message = COSESign1(
                protectedHeader: signed.message.protectedHeader, payload: tampered.payloadBytes(),
                signature: signed.message.signature)
            return faulty(message.encoded(), seq: seq, fault: .tampered)
        case .badSignature:
            let seq = takeSeq()
            let message = try! COSESign1.sign(
                payload: reading(seq: seq, now: now).payloadBytes(), keyID: Array(id.utf8),
                key: PrivateKey(generating: key.algorithm))
            return faulty(message.encoded(), seq: seq, fault: .badSignature)
        case .clockSkew, .wrongChannel, .wrongUnit, .implausible:
            let seq = takeSeq()
            let reading = reading(seq: seq, now: now).withContentFault(fault!, skewMs: skewMs)
            return faulty(try! SignedReading(signing: reading, with: key).bytes, seq: seq, fault: fault!)
        case .malformed:
            // A COSE_Sign1 cut short: a real encoder bug or a truncated transfer.
            let seq = takeSeq()
            let bytes = try! SignedReading(signing: reading(seq: seq, now: now), with: key).bytes
            return faulty(Array(bytes.prefix(bytes.count / 2)), seq: 0, fault: .malformed)
        case .oversized:
            let seq = takeSeq()
            var reading = reading(seq: seq, now: now)
            while reading.records.count < Reading.maxRecords {
                reading.records.append(
                    ReadingRecord(
                        code: reading.records[0].code, unit: String(repeating: "x", count: 60),
                        value: reading.records[0].value))
            }
            return faulty(try! SignedReading(signing: reading, with: key).bytes, seq: 0, fault: .oversized)
        }
    }

    private mutating func takeSeq() -> UInt64 {
        defer { nextSeq += 1 }
        return nextSeq
    }

    private mutating func reading(seq: UInt64, now: UInt64) -> Reading {
        Reading(
            channel: channel, device: id, seq: seq, time: now,
            records: kind.records(for: patient, at: now, random: &random))
    }

    private mutating func sampleHonest(now: UInt64) -> OutgoingReading {
        let seq = takeSeq()
        let signed = try! SignedReading(signing: reading(seq: seq, now: now), with: key)
        if !registered {
            return faulty(signed.bytes, seq: seq, fault: .unregistered)
        }
        unacked[seq] = (signed, nil)
        account.honest += 1
        return OutgoingReading(receiptSeq: seq, bytes: signed.bytes, expectation: .committed, fault: nil)
    }

    private mutating func faulty(_ bytes: [UInt8], seq: UInt64, fault: Fault) -> OutgoingReading {
        let reason = fault.expectedRejection!
        if fault != .replayed { account.faultySeqs.insert(seq == 0 ? nextSeq - 1 : seq) }
        awaitedRejections[seq, default: []].append(reason)
        account.faulty[fault, default: 0] += 1
        return OutgoingReading(receiptSeq: seq, bytes: bytes, expectation: .rejected(reason), fault: fault)
    }

    /// Notes that a kept reading went out now.
    public mutating func markSent(seq: UInt64, now: UInt64) {
        if unacked[seq] != nil { unacked[seq]!.lastSent = now }
    }

    /// The kept readings to send again: all of them after a reconnect (`olderThan` nil), else
    /// those not sent within `olderThan` ms of now, in seq order.
    /// - Parameters:
    ///   - now: the clock, ms.
    ///   - olderThan: the resend interval, or nil for every kept reading.
    public func resendable(now: UInt64, olderThan: UInt64?) -> [SignedReading] {
        unacked.filter { _, entry in
            guard let olderThan, let lastSent = entry.lastSent else { return true }
            return now >= lastSent &+ olderThan
        }.sorted { $0.key < $1.key }.map(\.value.reading)
    }

    /// Takes a receipt from the device's receipts topic.
    /// - Parameters:
    ///   - receipt: the receipt.
    ///   - now: the clock, ms (for latency).
    /// - Returns: the reading it committed, when it did so first.
    @discardableResult
    public mutating func receive(_ receipt: Receipt) -> SignedReading? {
        switch receipt.status {
        case .accepted:
            account.acceptedReceipts += 1
            return nil
        case .busy:
            account.busyReceipts += 1
            return nil
        case .committed(let height, let blockHash):
            guard let entry = unacked.removeValue(forKey: receipt.seq) else {
                account.repeatedCommits += 1
                return nil
            }
            account.committed += 1
            account.commits[receipt.seq] = CommittedAt(
                height: height, blockHash: blockHash, bytesHash: Hash256.sha256(entry.reading.bytes))
            recentlyCommitted.append(receipt.seq)
            if recentlyCommitted.count > 16 { recentlyCommitted.removeFirst() }
            return entry.reading
        case .rejected(let reason):
            if var awaited = awaitedRejections[receipt.seq], let index = awaited.firstIndex(of: reason) {
                awaited.remove(at: index)
                awaitedRejections[receipt.seq] = awaited.isEmpty ? nil : awaited
                account.rejected[reason, default: 0] += 1
            } else if unacked[receipt.seq] != nil {
                // An honest reading refused: a mismatch the accounting reports. The device gives up on it.
                unacked[receipt.seq] = nil
                account.honestRejected.append(HonestRejection(seq: receipt.seq, reason: reason))
            } else {
                // A second manager's answer to a fault already answered, or to a reading already
                // committed: idempotent.
                account.repeatedRejections += 1
            }
            return nil
        }
    }

    /// The faulty messages whose rejection has not arrived, by reason.
    public var awaitedRejectionCounts: [RejectionReason: Int] {
        var counts: [RejectionReason: Int] = [:]
        for reasons in awaitedRejections.values { for reason in reasons { counts[reason, default: 0] += 1 } }
        return counts
    }
}

/// Where a reading was committed, per its receipt.
public struct CommittedAt: Hashable, Sendable {
    /// The block height.
    public var height: UInt64
    /// The block's header hash.
    public var blockHash: Hash256
    /// SHA-256 of the bytes the device sent.
    public var bytesHash: Hash256
}

/// An honest reading a manager refused (always a mismatch).
public struct HonestRejection: Hashable, Sendable {
    /// Its seq.
    public var seq: UInt64
    /// The reason given.
    public var reason: RejectionReason
}

/// What happened to one device's messages.
public struct DeviceAccount: Sendable {
    /// Honest readings made.
    public var honest = 0
    /// Faulty messages made, by fault.
    public var faulty: [Fault: Int] = [:]
    /// The seqs faulty messages used up (none of them may ever be committed).
    public var faultySeqs: Set<UInt64> = []
    /// Honest readings committed (first committed receipt of each).
    public var committed = 0
    /// Where each honest reading was committed, by seq.
    public var commits: [UInt64: CommittedAt] = [:]
    /// Faulty messages rejected with the expected reason, by reason.
    public var rejected: [RejectionReason: Int] = [:]
    /// Honest readings refused (mismatches).
    public var honestRejected: [HonestRejection] = []
    /// `accepted` receipts seen.
    public var acceptedReceipts = 0
    /// `busy` receipts seen.
    public var busyReceipts = 0
    /// Further `committed` receipts for readings already committed (retransmissions, several managers).
    public var repeatedCommits = 0
    /// Further rejections of messages already answered.
    public var repeatedRejections = 0
    /// Times the store was full when a reading was due.
    public var storeFull = 0
    /// Times no seq was reserved when a reading was due.
    public var seqStarved = 0
}
