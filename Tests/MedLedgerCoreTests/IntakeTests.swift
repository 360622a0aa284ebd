import MedLedgerCore
import MedLedgerTestSupport
import Testing

@Suite("A manager's intake and block assembly")
struct IntakeTests {
    let channel = TestChannel(block: BlockParameters(maxReadings: 10, maxBytes: 1 << 20, timeoutMs: 200))
    let keys = (0..<3).map { TestChannel.deviceKey($0) }

    /// Devices bp-0, bp-1, bp-2 registered at height 1.
    func registered() throws -> LedgerState {
        let state = LedgerState(genesis: channel.genesis)
        let block = channel.block(
            on: state,
            transactions: keys.enumerated().map { index, key in
                channel.transaction(
                    seq: UInt64(index + 1), .registerDevice(device: "bp-\(index)", key: key.publicKey, patient: nil))
            })
        return try state.applying(block)
    }

    func incoming(_ signed: SignedReading, topic: String? = nil) -> IncomingReading {
        IncomingReading(topicDevice: topic ?? signed.keyID, bytes: signed.bytes)
    }

    @Test func eachReadingGetsTheOutcomeItsRuleGives() throws {
        let state = try registered()
        var pool = Mempool(capacity: 100, byteCapacity: 1 << 20)
        let now = channel.genesis.createdAt + 10_000
        let good = channel.reading(device: "bp-0", key: keys[0], seq: 1)
        let forged = channel.reading(device: "bp-1", key: keys[0], seq: 1)
        let unknown = channel.reading(device: "bp-9", key: TestChannel.deviceKey(9), seq: 1)
        let otherTopic = channel.reading(device: "bp-2", key: keys[2], seq: 1)
        let sameSeqOtherBytes = channel.reading(device: "bp-0", key: keys[0], seq: 1, systolic: 130)
        let future = channel.reading(device: "bp-2", key: keys[2], seq: 2, time: now + channel.genesis.skewMs + 1)
        let batch = [
            incoming(good), incoming(forged), incoming(unknown), incoming(otherTopic, topic: "bp-0"),
            IncomingReading(topicDevice: "bp-0", bytes: [0xA0]), incoming(good), incoming(sameSeqOtherBytes),
            incoming(future),
        ]
        for verifier in [SequentialSignatureVerifier() as any SignatureVerifier, TestVerifier()] {
            var fresh = pool
            let outcomes = state.intake(batch, now: now, pool: &fresh, verifier: verifier)
            #expect(outcomes[0] == .accepted(good))
            #expect(outcomes[1].withoutMessage == .rejected(seq: 1, ReadingRejection(.badSignature, "")))
            #expect(outcomes[2].reason == .unknownDevice)
            #expect(outcomes[3].reason == .wrongDevice)
            #expect(outcomes[4].reason == .malformed && outcomes[4].seq == 0)
            #expect(outcomes[5] == .pending(good))
            #expect(outcomes[6].reason == .replayed)
            #expect(outcomes[7].reason == .clockSkew)
            #expect(fresh.count == 1)
        }
        _ = state.intake([incoming(good)], now: now, pool: &pool, verifier: SequentialSignatureVerifier())
        #expect(pool.contains(device: "bp-0", seq: 1))
    }

    @Test func aDeviceWhoseRegistrationIsPendingCountsAsRegistered() throws {
        let state = try registered()
        let now = channel.genesis.createdAt + 10_000
        let newKey = TestChannel.deviceKey(9)
        let pending = [
            channel.transaction(seq: 10, .registerDevice(device: "bp-9", key: newKey.publicKey, patient: nil)),
            // A stale copy (its seq was committed): it will not pass, so it registers nothing.
            channel.transaction(seq: 1, .registerDevice(device: "bp-8", key: keys[0].publicKey, patient: nil)),
            // A pending revocation changes nothing before its block.
            channel.transaction(seq: 11, .revokeDevice(device: "bp-0")),
        ]
        let newDevice = channel.reading(device: "bp-9", key: newKey, seq: 1)
        let stale = channel.reading(device: "bp-8", key: keys[0], seq: 1)
        let revoking = channel.reading(device: "bp-0", key: keys[0], seq: 1)
        let batch = [incoming(newDevice), incoming(stale), incoming(revoking)]
        var pool = Mempool(capacity: 100, byteCapacity: 1 << 20)
        let outcomes = state.intake(
            batch, now: now, pool: &pool, pendingTransactions: pending, verifier: SequentialSignatureVerifier())
        #expect(outcomes[0] == .accepted(newDevice))
        #expect(outcomes[1].reason == .unknownDevice)
        #expect(outcomes[2] == .accepted(revoking))
        var without = Mempool(capacity: 100, byteCapacity: 1 << 20)
        let alone = state.intake(batch, now: now, pool: &without, verifier: SequentialSignatureVerifier())
        #expect(alone[0].reason == .unknownDevice)
        // The registration goes into the block before the reading, and the block is valid.
        let assembly = state.assemble(
            transactions: Array(pending.prefix(1)), readings: [newDevice], time: now, proposer: "manager-1")
        #expect(assembly.block.body.readings == [newDevice.bytes])
        let after = try state.applying(assembly.block)
        #expect(after.devices["bp-9"] != nil)
    }

    @Test func aFullPoolSaysSoAndACommittedReadingIsRecognised() throws {
        var state = try registered()
        var pool = Mempool(capacity: 1, byteCapacity: 1 << 20)
        let now = channel.genesis.createdAt + 10_000
        let first = channel.reading(device: "bp-0", key: keys[0], seq: 1)
        let second = channel.reading(device: "bp-1", key: keys[1], seq: 1)
        let outcomes = state.intake(
            [incoming(first), incoming(second)], now: now, pool: &pool, verifier: SequentialSignatureVerifier())
        #expect(outcomes == [.accepted(first), .poolFull(second)])
        state = try state.applying(channel.block(on: state, readings: [first]))
        var empty = Mempool(capacity: 1, byteCapacity: 1 << 20)
        let again = state.intake([incoming(first)], now: now, pool: &empty, verifier: SequentialSignatureVerifier())
        guard case .committedOrReplayed(let signed, let rejection) = again[0] else {
            Issue.record("expected committedOrReplayed, got \(again[0])")
            return
        }
        #expect(signed == first && rejection.reason == .replayed && empty.count == 0)
    }

    @Test func aQueueOfTransactionsTakesAtMostHalfABlockWhileReadingsWait() throws {
        let small = TestChannel(block: BlockParameters(maxReadings: 100, maxBytes: 4096, timeoutMs: 200))
        let state = LedgerState(genesis: small.genesis)
        let transactions = (1...40).map { seq in
            small.transaction(
                seq: UInt64(seq),
                .registerDevice(device: "new-\(seq)", key: TestChannel.deviceKey(seq + 10).publicKey, patient: nil))
        }
        #expect(transactions.reduce(0) { $0 + $1.bytes.count } > 4096)
        let alone = state.assemble(
            transactions: transactions, readings: [], time: state.time + 1000, proposer: "manager-1")
        let full = alone.block.body.transactions.reduce(0) { $0 + $1.count }
        #expect(full > 2048 && full <= 4096)
        // With readings waiting (of devices the block registers), transactions take half at most.
        let registered = try state.applying(alone.block)
        let readings = (1...10).map { small.reading(device: "new-1", key: TestChannel.deviceKey(11), seq: UInt64($0)) }
        let shared = registered.assemble(
            transactions: Array(transactions.dropFirst(alone.block.body.transactions.count)), readings: readings,
            time: registered.time + 1000, proposer: "manager-1")
        #expect(shared.block.body.transactions.reduce(0) { $0 + $1.count } <= 2048)
        #expect(shared.block.body.readings.count == 10)
    }

    @Test func assemblyKeepsWhatStillPassesWithinTheLimits() throws {
        var state = try registered()
        let revoke = channel.transaction(seq: 4, .revokeDevice(device: "bp-1"))
        let stale = channel.transaction(seq: 1, .revokeDevice(device: "bp-2"))
        let readings = (1...6).flatMap { seq in
            keys.enumerated().map { channel.reading(device: "bp-\($0.offset)", key: $0.element, seq: UInt64(seq)) }
        }
        let assembly = state.assemble(
            transactions: [revoke, stale], readings: readings, time: state.time + 1000, proposer: "manager-1")
        #expect(assembly.refusedTransactions.map(\.1.reason) == [.replayed])
        #expect(assembly.refusedReadings.allSatisfy { $0.0.keyID == "bp-1" && $0.1.reason == .revokedDevice })
        #expect(assembly.block.body.transactions == [revoke.bytes])
        #expect(assembly.block.body.readings.count == 10)
        #expect(!assembly.block.body.readings.contains { try! SignedReading(decoding: $0).keyID == "bp-1" })
        // What it assembled is a valid block on the state.
        state = try state.applying(assembly.block)
        #expect(state.devices["bp-1"]?.revoked == true)
        #expect(state.devices["bp-0"]?.replay.highest == 5)
    }
}

/// Spreads work like the node's verifier does, in reverse order, to show outcomes keep the
/// batch's order whatever order the work runs in.
private struct TestVerifier: SignatureVerifier {
    func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T] {
        var results = [T?](repeating: nil, count: count)
        for index in (0..<count).reversed() { results[index] = transform(index) }
        return results.map { $0! }
    }
}

extension IntakeOutcome {
    /// The rejection reason, when refused or replayed.
    var reason: RejectionReason? {
        switch self {
        case .rejected(_, let rejection), .committedOrReplayed(_, let rejection): rejection.reason
        default: nil
        }
    }

    /// The outcome with any rejection's message blanked, to compare reasons only.
    var withoutMessage: IntakeOutcome {
        switch self {
        case .rejected(let seq, let rejection): .rejected(seq: seq, ReadingRejection(rejection.reason, ""))
        default: self
        }
    }
}

@Suite("Readings verified before")
struct KnownValidTests {
    /// Says every reading in `known` was verified before, and counts the signatures it is asked
    /// to skip.
    struct Remembering: SignatureVerifier {
        let known: Set<[UInt8]>
        func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T] { (0..<count).map(transform) }
        func isKnownValid(_ bytes: [UInt8]) -> Bool { known.contains(bytes) }
    }

    @Test func aBlockCheckSkipsOnlyTheSignaturesItIsToldWereVerified() throws {
        let channel = TestChannel()
        let key = TestChannel.deviceKey(1)
        let state = try LedgerState(genesis: channel.genesis).applying(
            channel.block(
                on: LedgerState(genesis: channel.genesis),
                transactions: [
                    channel.transaction(seq: 1, .registerDevice(device: "d", key: key.publicKey, patient: nil))
                ]))
        let good = channel.reading(device: "d", key: key, seq: 1)
        let forged = channel.reading(device: "d", key: TestChannel.deviceKey(2), seq: 2)
        let block = channel.block(on: state, readings: [good, forged])
        #expect(throws: BlockRuleViolation.self) { try state.check(block, verifier: Remembering(known: [good.bytes])) }
        // Told (wrongly) that the forged one was verified, the check trusts it: which is why only a
        // node's own verified readings are ever named.
        _ = try state.check(block, verifier: Remembering(known: [good.bytes, forged.bytes]))
    }
}
