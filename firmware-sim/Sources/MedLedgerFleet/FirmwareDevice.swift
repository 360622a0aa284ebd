public import MedLedgerCore

/// What a manager should answer a message a simulated device sent.
public enum Expectation: Hashable, Sendable, CustomStringConvertible {
    /// An honest reading: committed exactly once.
    case committed
    /// A faulty one: rejected with this reason.
    case rejected(RejectionReason)

    /// `committed` or `rejected (reason)`.
    public var description: String {
        switch self {
        case .committed: "committed"
        case .rejected(let reason): "rejected (\(reason.rawValue))"
        }
    }
}

/// A message a simulated device publishes on its readings topic.
public struct OutgoingReading: Hashable, Sendable {
    /// The seq the manager's receipt will name (0 when the bytes don't decode far enough).
    public var receiptSeq: UInt64
    /// The payload.
    public var bytes: [UInt8]
    /// What the manager should answer.
    public var expectation: Expectation
    /// The fault drawn for it, if any: a fault of what is sent (its expectation says how it is
    /// refused) or of behaviour (`burst`, `disconnect`: the reading itself is honest).
    public var fault: Fault?
    /// Whether it was made while the device's revocation was under way (then either answer is right).
    public var inDoubt: Bool
}

/// A message a device keeps until a final receipt (committed or rejected) names it.
public struct KeptMessage: Hashable, Sendable {
    /// The seq its receipt names (0 for a message that does not decode far enough).
    public var seq: UInt64
    /// The exact bytes, sent again unchanged.
    public var bytes: [UInt8]
    /// The answer it should get.
    public var expectation: Expectation
    /// Its fault of content, or nil for an honest reading.
    public var fault: Fault?
    /// Whether it was made or still unanswered while the device's revocation was under way: a
    /// `committed` receipt (for an honest reading) and a `revoked-device` rejection are both right.
    public var inDoubt: Bool
    /// The device clock when it was sampled, ms.
    public var sampledAt: UInt64
    /// When it was first published, ms (nil: not yet).
    public var firstSent: UInt64?
    /// When it is due to be sent again, ms (nil: never sent).
    public var retryAt: UInt64?
}

/// Where a device's revocation stands, as the device's accounting sees it.
public enum RevocationState: String, Hashable, Sendable, Codable {
    /// Not revoked.
    case none
    /// The revocation was submitted and is not known to be committed.
    case pending
    /// The revocation is committed: every later reading is refused as `revoked-device`.
    case committed
}

/// What one receipt did to a device.
public enum ReceiptEffect: Hashable, Sendable {
    /// Nothing final: `accepted`, a repeated answer, a receipt for a message no longer kept.
    case none
    /// The first `committed` receipt of a reading; the time from its first publication, ms.
    case committed(latencyMs: UInt64?)
    /// A message was refused as expected.
    case rejected(RejectionReason)
    /// The manager's pool was full: the message is kept and sent again soon.
    case busy
    /// The answer contradicts what was expected (a mismatch the report names).
    case unexpected
}

/// One simulated device's firmware: its identity, its persisted sequence counter, and the
/// bounded store of messages it keeps until a final receipt names them.
///
/// A pure state machine: the fleet's transport asks it for messages to send and feeds it the
/// receipts that arrive. It never reuses a seq (the counter is reserved ahead in durable storage
/// by the fleet, `reservedThrough`), never drops an unanswered message (when its store is full it
/// stops sampling and counts it), and keeps what it made offline until it is answered. Faulty
/// messages are kept and resent like honest ones, as real firmware, which cannot know they are
/// faulty, would.
public struct FirmwareDevice: Sendable {
    /// The device id (also its MQTT username).
    public let id: String
    /// Its key.
    public let key: PrivateKey
    /// What it measures.
    public let kind: DeviceKind
    /// Whose values it reports.
    public let patient: PatientProfile
    /// Whether it is registered on the channel (an unregistered device's readings must all be refused).
    public let registered: Bool
    /// The channel it reports on.
    public let channel: String
    /// The first seq of this run (the audit looks at the ledger from here on).
    public let firstSeq: UInt64
    /// The next seq to use.
    public private(set) var nextSeq: UInt64
    /// The highest seq reserved in durable storage; `sample` uses none above it.
    public var reservedThrough: UInt64
    /// How many messages the store holds at most.
    public let capacity: Int
    /// The messages kept until a final receipt, by receipt seq.
    public private(set) var kept: [UInt64: [KeptMessage]] = [:]
    /// How many messages are kept.
    public private(set) var keptCount = 0
    /// Where the device's revocation stands.
    public private(set) var revocation: RevocationState
    /// The tally of what happened to this device's messages.
    public private(set) var account = DeviceAccount()
    /// Until when the device sends nothing (ms): a manager said it was too busy, so the device
    /// backs off, each `busy` in a row doubling the pause, as a server's Retry-After asks.
    public private(set) var holdUntil: UInt64 = 0
    /// `busy` receipts since the last `accepted` or `committed`.
    private var busyStreak = 0
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
    ///   - revocation: whether it was revoked already.
    ///   - seed: the device's own random seed.
    public init(
        id: String, key: PrivateKey, kind: DeviceKind, patient: PatientProfile, registered: Bool, channel: String,
        nextSeq: UInt64 = 1, capacity: Int = 256, revocation: RevocationState = .none, seed: UInt64
    ) {
        self.id = id
        self.key = key
        self.kind = kind
        self.patient = patient
        self.registered = registered
        self.channel = channel
        self.nextSeq = max(1, nextSeq)
        self.firstSeq = self.nextSeq
        self.reservedThrough = self.nextSeq - 1
        self.capacity = max(1, capacity)
        self.revocation = revocation
        self.random = SeededRandom(seed: seed)
    }

    /// Whether the store is full (the device stops sampling until receipts free it).
    public var isFull: Bool { keptCount >= capacity }

    /// How many seqs are reserved and not yet used.
    public var reservedAhead: UInt64 { reservedThrough >= nextSeq ? reservedThrough - nextSeq + 1 : 0 }

    /// The answer a new message with this fault should get, given the device's registration and
    /// revocation.
    func expectation(for fault: Fault?) -> Expectation {
        if let fault, fault.isRefusedBeforeTheDevice { return .rejected(fault.expectedRejection!) }
        if !registered { return .rejected(.unknownDevice) }
        if revocation == .committed { return .rejected(.revokedDevice) }
        if let reason = fault?.expectedRejection { return .rejected(reason) }
        return .committed
    }

    /// Samples a reading at a time and keeps it until it is answered: an honest reading or, per
    /// the fault plan, a faulty message. Nil when the store is full or no seq is reserved (both
    /// counted).
    /// - Parameters:
    ///   - now: the device's clock, ms (an old time for backlog sampled offline is fine).
    ///   - faults: the fault plan.
    ///   - skewMs: the channel's skew window (a clock-skew fault goes beyond it).
    public mutating func sample(now: UInt64, faults: FaultPlan, skewMs: UInt64) -> OutgoingReading? {
        guard !isFull else {
            account.storeFull += 1
            return nil
        }
        var fault = registered ? faults.draw(using: &random) : nil
        if fault == .replayed, recentlyCommitted.isEmpty {
            // Nothing to replay yet: owe it (a few at most), so the plan's share is still made.
            account.replaysOwed = min(account.replaysOwed + 1, 4)
            fault = nil
        } else if fault == nil, account.replaysOwed > 0, !recentlyCommitted.isEmpty {
            account.replaysOwed -= 1
            fault = .replayed
        }
        guard fault == .replayed || nextSeq <= reservedThrough else {
            account.seqStarved += 1
            return nil
        }
        let seq: UInt64
        let bytes: [UInt8]
        switch fault {
        case nil, .burst, .disconnect, .unregistered:
            seq = takeSeq()
            bytes = sign(reading(seq: seq, now: now))
        case .replayed:
            // A new reading under a seq that is committed already: a counter that went back.
            seq = recentlyCommitted.randomElement(using: &random)!
            bytes = sign(reading(seq: seq, now: now))
        case .tampered:
            seq = takeSeq()
            let signed = try! SignedReading(signing: reading(seq: seq, now: now), with: key)
            var tampered = signed.reading
            tampered.records[0].value = .integer(Int64(tampered.records[0].value.doubleValue) + 1)
            bytes = COSESign1(
                protectedHeader: signed.message.protectedHeader, payload: tampered.payloadBytes(),
                signature: signed.message.signature
            ).encoded()
        case .badSignature:
            seq = takeSeq()
            bytes = try! COSESign1.sign(
                payload: reading(seq: seq, now: now).payloadBytes(), keyID: Array(id.utf8),
                key: PrivateKey(generating: key.algorithm)
            ).encoded()
        case .clockSkew, .wrongChannel, .wrongUnit, .implausible:
            seq = takeSeq()
            bytes = sign(reading(seq: seq, now: now).withContentFault(fault!, skewMs: skewMs))
        case .malformed:
            // A COSE_Sign1 cut short: a real encoder bug or a truncated transfer.
            let used = takeSeq()
            account.mustNotCommit.insert(used)
            let whole = sign(reading(seq: used, now: now))
            seq = 0
            bytes = Array(whole.prefix(whole.count / 2))
        case .oversized:
            let used = takeSeq()
            account.mustNotCommit.insert(used)
            var reading = reading(seq: used, now: now)
            while reading.records.count < Reading.maxRecords {
                reading.records.append(
                    ReadingRecord(
                        code: reading.records[0].code, unit: String(repeating: "x", count: 60),
                        value: reading.records[0].value))
            }
            seq = 0
            bytes = sign(reading)
        }
        let contentFault = fault.flatMap { $0.isBehaviour ? nil : $0 } ?? (registered ? nil : .unregistered)
        let expectation = expectation(for: contentFault)
        let inDoubt = revocation == .pending
        account.made += 1
        switch (expectation, contentFault) {
        case (.committed, _):
            account.honest += 1
        case (.rejected, let content?):
            account.faulty[content, default: 0] += 1
            if content != .replayed, seq != 0 { account.mustNotCommit.insert(seq) }
        case (.rejected, nil):
            account.afterRevocation += 1
            account.mustNotCommit.insert(seq)
        }
        if inDoubt {
            account.inDoubt += 1
            if expectation == .committed { account.honestInDoubt += 1 }
        }
        keep(
            KeptMessage(
                seq: seq, bytes: bytes, expectation: expectation, fault: contentFault, inDoubt: inDoubt,
                sampledAt: now, firstSent: nil, retryAt: nil))
        return OutgoingReading(
            receiptSeq: seq, bytes: bytes, expectation: expectation, fault: fault, inDoubt: inDoubt)
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

    private func sign(_ reading: Reading) -> [UInt8] {
        // Signing with a valid key over a reading this code built cannot fail.
        try! SignedReading(signing: reading, with: key).bytes
    }

    private mutating func keep(_ message: KeptMessage) {
        kept[message.seq, default: []].append(message)
        keptCount += 1
    }

    /// The kept messages to publish now, oldest seq first, each marked as sent: those never sent,
    /// and those due again (`everything`: all of them, as after a reconnect).
    /// - Parameters:
    ///   - now: the clock, ms.
    ///   - resendAfter: how long until a message sent now is due again, ms.
    ///   - everything: whether to take every kept message, due or not.
    /// - Returns: the messages' bytes.
    public mutating func takeDue(now: UInt64, resendAfter: UInt64, everything: Bool = false) -> [[UInt8]] {
        guard keptCount > 0 else { return [] }
        if now < holdUntil {
            // Backing off: what was asked for goes out when the pause ends.
            if everything {
                for seq in kept.keys {
                    for index in kept[seq]!.indices where kept[seq]![index].retryAt != nil {
                        kept[seq]![index].retryAt = min(kept[seq]![index].retryAt!, holdUntil)
                    }
                }
            }
            return []
        }
        var due: [(UInt64, Int)] = []
        for (seq, messages) in kept {
            for (index, message) in messages.enumerated()
            where everything || message.retryAt.map({ now >= $0 }) ?? true {
                due.append((seq, index))
            }
        }
        guard !due.isEmpty else { return [] }
        due.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var out: [[UInt8]] = []
        out.reserveCapacity(due.count)
        for (seq, index) in due {
            if kept[seq]![index].firstSent == nil {
                kept[seq]![index].firstSent = now
                account.sent += 1
            } else {
                account.resent += 1
            }
            kept[seq]![index].retryAt = now &+ resendAfter
            out.append(kept[seq]![index].bytes)
        }
        return out
    }

    /// The revocation of this device was submitted: every message kept now, and every one made
    /// until the revocation is committed, may be committed or refused as `revoked-device`.
    public mutating func revocationSubmitted() {
        guard revocation == .none else { return }
        revocation = .pending
        for seq in kept.keys {
            for index in kept[seq]!.indices where !kept[seq]![index].inDoubt {
                kept[seq]![index].inDoubt = true
                account.inDoubt += 1
                if kept[seq]![index].expectation == .committed { account.honestInDoubt += 1 }
            }
        }
    }

    /// The revocation is committed: messages made from now on must be refused as `revoked-device`.
    public mutating func revocationCommitted() {
        revocation = .committed
    }

    /// The device's connection to a broker came up (its messages can be sent from now on).
    public mutating func markConnected() { account.connected = true }

    /// Ignores a receipt that cannot be trusted (it keeps the reading it names) and counts it.
    /// - Parameter error: why it cannot be trusted.
    public mutating func ignoreUntrusted(_ error: ReceiptError) {
        account.untrustedReceipts[error.code.rawValue, default: 0] += 1
    }

    /// Takes a receipt from the device's receipts topic.
    /// - Parameters:
    ///   - receipt: the receipt.
    ///   - now: the clock, ms (for the latency, and when a `busy` message is due again).
    ///   - busyRetryMs: the first pause after a `busy` receipt, ms; each further one in a row
    ///     doubles it (with jitter), up to `busyMaxMs`.
    ///   - busyMaxMs: the longest pause, ms.
    /// - Returns: what the receipt did.
    @discardableResult
    public mutating func receive(
        _ receipt: Receipt, now: UInt64 = 0, busyRetryMs: UInt64 = 1000, busyMaxMs: UInt64 = 30_000
    ) -> ReceiptEffect {
        let seq = receipt.seq
        switch receipt.status {
        case .accepted:
            account.acceptedReceipts += 1
            busyStreak = 0
            return .none
        case .busy:
            account.busyReceipts += 1
            let doubling = UInt64(1) << UInt64(min(busyStreak, 16))
            busyStreak += 1
            let pause = min(max(1, busyMaxMs), busyRetryMs &* doubling)
            let jittered = UInt64(Double(pause) * Double.random(in: 0.5...1, using: &random))
            holdUntil = max(holdUntil, now &+ max(1, jittered))
            guard kept[seq] != nil else { return .none }
            for index in kept[seq]!.indices where kept[seq]![index].retryAt != nil {
                kept[seq]![index].retryAt = holdUntil
            }
            return .busy
        case .committed(let height, let blockHash):
            busyStreak = 0
            if let index = kept[seq]?.firstIndex(where: { $0.expectation == .committed }) {
                let message = remove(seq: seq, at: index)
                if message.inDoubt { account.inDoubtCommitted += 1 } else { account.committed += 1 }
                account.commits[seq] = CommittedAt(
                    height: height, blockHash: blockHash, bytesHash: Hash256.sha256(message.bytes))
                recentlyCommitted.append(seq)
                if recentlyCommitted.count > 16 { recentlyCommitted.removeFirst() }
                return .committed(latencyMs: message.firstSent.map { now >= $0 ? now - $0 : 0 })
            }
            if account.commits[seq] == nil, seq != 0, let index = kept[seq]?.firstIndex(where: { !$0.inDoubt }) {
                // A faulty message committed: the ledger took what it must refuse.
                let message = remove(seq: seq, at: index)
                account.unexpected.append(
                    UnexpectedReceipt(
                        seq: seq, expected: message.expectation.description, received: "committed at \(height)"))
                return .unexpected
            }
            account.repeatedCommits += 1
            return .none
        case .rejected(let reason):
            if let index = kept[seq]?.firstIndex(where: {
                $0.expectation == .rejected(reason) || ($0.inDoubt && reason == .revokedDevice)
            }) {
                let message = remove(seq: seq, at: index)
                account.rejected[reason, default: 0] += 1
                if message.inDoubt {
                    account.inDoubtRejected += 1
                    if message.expectation == .committed { account.mustNotCommit.insert(seq) }
                }
                return .rejected(reason)
            }
            if seq == 0 {
                // A message that did not decode far enough for the manager to tell its seq: the
                // answer cannot be matched to one message. When the device made such a message
                // with this reason, it is a second manager's answer to one matched already;
                // otherwise no message of the device should have got it.
                let made =
                    kept[0]?.contains { $0.expectation == .rejected(reason) } == true
                    || account.faulty.contains { $0.key.expectedRejection == reason && !$0.key.seqIsReadable }
                if made {
                    account.repeatedRejections += 1
                    return .none
                }
                account.unexpected.append(
                    UnexpectedReceipt(
                        seq: 0, expected: "no undecodable message refused for it",
                        received: "rejected (\(reason.rawValue))"))
                return .unexpected
            }
            if let index = kept[seq]?.firstIndex(where: { !$0.inDoubt || $0.expectation == .committed }) {
                let message = remove(seq: seq, at: index)
                account.unexpected.append(
                    UnexpectedReceipt(
                        seq: seq, expected: message.expectation.description, received: "rejected (\(reason.rawValue))"))
                return .unexpected
            }
            // A second manager's answer to a message answered already: idempotent.
            account.repeatedRejections += 1
            return .none
        }
    }

    private mutating func remove(seq: UInt64, at index: Int) -> KeptMessage {
        let message = kept[seq]!.remove(at: index)
        if kept[seq]!.isEmpty { kept[seq] = nil }
        keptCount -= 1
        return message
    }

    /// The kept honest reading with a seq, if any.
    public func keptHonest(seq: UInt64) -> KeptMessage? {
        kept[seq]?.first { $0.expectation == .committed }
    }

    /// How many honest readings are kept unanswered (not counting those in doubt).
    public var pendingHonest: Int {
        kept.values.reduce(0) { $0 + $1.count(where: { $0.expectation == .committed && !$0.inDoubt }) }
    }

    /// How many messages in doubt (around a revocation) are kept unanswered.
    public var pendingInDoubt: Int {
        kept.values.reduce(0) { $0 + $1.count(where: { $0.inDoubt }) }
    }

    /// The faulty messages (not in doubt) whose rejection has not arrived, by expected reason.
    public var awaitedRejectionCounts: [RejectionReason: Int] {
        var counts: [RejectionReason: Int] = [:]
        for messages in kept.values {
            for message in messages where !message.inDoubt {
                if case .rejected(let reason) = message.expectation { counts[reason, default: 0] += 1 }
            }
        }
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

/// A receipt that contradicts what the device expected (always a mismatch).
public struct UnexpectedReceipt: Hashable, Sendable, CustomStringConvertible {
    /// The seq.
    public var seq: UInt64
    /// What was expected.
    public var expected: String
    /// What came.
    public var received: String

    /// `seq N: expected E, got R`.
    public var description: String { "seq \(seq): expected \(expected), got \(received)" }
}

/// What happened to one device's messages.
public struct DeviceAccount: Sendable {
    /// Whether the device's connection to a broker came up at least once.
    public var connected = false
    /// Messages made.
    public var made = 0
    /// Honest readings made (each must be committed exactly once), including those in doubt.
    public var honest = 0
    /// Faulty messages made, by fault (`unregistered` for every reading of an unregistered device).
    public var faulty: [Fault: Int] = [:]
    /// Honest readings made after the device's revocation was committed (refused as `revoked-device`).
    public var afterRevocation = 0
    /// Messages made or kept while the device's revocation was under way.
    public var inDoubt = 0
    /// Of the honest readings, those in doubt (not required to be committed).
    public var honestInDoubt = 0
    /// First publications.
    public var sent = 0
    /// Publications of kept messages again (after a reconnect, a busy receipt, the resend interval).
    public var resent = 0
    /// Honest readings committed (first committed receipt of each), not counting those in doubt.
    public var committed = 0
    /// Readings in doubt that were committed.
    public var inDoubtCommitted = 0
    /// Messages in doubt that were refused (as `revoked-device`, or for their fault).
    public var inDoubtRejected = 0
    /// Where each reading a receipt called committed was committed, by seq.
    public var commits: [UInt64: CommittedAt] = [:]
    /// Messages refused as expected (faulty ones, and those after or around a revocation), by reason.
    public var rejected: [RejectionReason: Int] = [:]
    /// Seqs that must never be in the ledger (faulty messages, refused ones).
    public var mustNotCommit: Set<UInt64> = []
    /// Receipts that contradict what was expected (mismatches).
    public var unexpected: [UnexpectedReceipt] = []
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
    /// Replays drawn but not made yet: none of the device's readings was committed then.
    public var replaysOwed = 0
    /// Receipts ignored because they could not be trusted (a final one unsigned, signed by no
    /// manager of the channel, or with a signature that does not verify), by `ReceiptError` code.
    public var untrustedReceipts: [String: Int] = [:]
}
