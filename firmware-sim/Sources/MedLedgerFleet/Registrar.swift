public import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerNode
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A registrar's key and id, with which a fleet registers and revokes its devices.
public struct FleetRegistrar: Sendable {
    /// The registrar's id (a registrar of the genesis; also its MQTT username).
    public var id: String
    /// Its private key.
    public var key: PrivateKey

    /// Makes one.
    public init(id: String, key: PrivateKey) {
        self.id = id
        self.key = key
    }
}

/// What became of one registrar transaction.
enum TransactionOutcome: Hashable, Sendable {
    /// Committed at this height.
    case committed(height: UInt64)
    /// Refused, with the reason.
    case rejected(TransactionRejection.Reason)
}

/// A registrar's MQTT session: sends signed transactions on `tx/{registrar}` and waits until each
/// is committed by every manager (its committed receipt from each, or `settle` after the first),
/// so that no manager still refuses a newly registered device's first readings as unknown.
///
/// Seqs come from the clock (ms since the epoch, and one more than the last one used), so that
/// several tools sharing one registrar key never reuse one; a transaction refused as `replayed`
/// is sent again with a new seq.
final class RegistrarSession: Sendable {
    private struct Tally {
        var committed = 0
        var firstCommitted: ContinuousClock.Instant?
        var height: UInt64 = 0
        var rejected: TransactionRejection.Reason?
        var answered = false
    }

    private struct State {
        var tallies: [UInt64: Tally] = [:]
        var lastSeq: UInt64 = 0
    }

    let client: MQTTClient
    let registrar: FleetRegistrar
    let channel: String
    let managers: Int
    let settle: Duration
    private let topics: ChannelTopics
    /// The shared tallies (a class, so the receipt consumer can hold them).
    private final class Box: Sendable {
        let state = Mutex(State())
    }

    private let box = Box()
    private let consumer: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Connects and subscribes to the registrar's transaction receipts.
    init(
        client: MQTTClient, registrar: FleetRegistrar, channel: String, managers: Int, settle: Duration
    ) async throws(FleetError) {
        self.client = client
        self.registrar = registrar
        self.channel = channel
        self.managers = max(1, managers)
        self.settle = settle
        topics = ChannelTopics(channel: channel)
        do {
            try await client.connect()
            try await client.subscribe(topics.transactionReceipts(registrar.id))
        } catch {
            client.shutdown()
            throw FleetError(.network, "the registrar '\(registrar.id)' cannot connect and subscribe: \(error)")
        }
        let topic = topics.transactionReceipts(registrar.id)
        let task = Task { [box, client] in
            for await message in client.messages {
                guard message.topic == topic, let receipt = try? TransactionReceipt(decoding: message.payload) else {
                    continue
                }
                box.state.withLock { state in
                    var tally = state.tallies[receipt.seq] ?? Tally()
                    tally.answered = true
                    switch receipt.status {
                    case .committed(let height, _):
                        tally.committed += 1
                        tally.height = height
                        if tally.firstCommitted == nil { tally.firstCommitted = .now }
                    case .rejected(let reason):
                        if tally.committed == 0 { tally.rejected = reason }
                    case .accepted, .busy:
                        break
                    }
                    state.tallies[receipt.seq] = tally
                }
            }
        }
        consumer.withLock { $0 = task }
    }

    /// Ends the session.
    func close() {
        client.shutdown()
        consumer.withLock { $0?.cancel() }
    }

    private func send(_ body: TransactionBody) throws(FleetError) -> UInt64 {
        let seq = box.state.withLock { state -> UInt64 in
            state.lastSeq = max(Self.nowMs(), state.lastSeq + 1)
            state.tallies[state.lastSeq] = Tally()
            return state.lastSeq
        }
        let transaction = Transaction(
            channel: channel, submitter: registrar.id, seq: seq, time: Self.nowMs(), body: body)
        do {
            let signed = try SignedTransaction(signing: transaction, with: registrar.key)
            try client.enqueue(topic: topics.transactions(registrar.id), payload: signed.bytes)
        } catch {
            throw FleetError(.network, "cannot send a \(body.typeName) transaction: \(error)")
        }
        return seq
    }

    /// Submits transactions and waits for each one's final outcome.
    /// - Parameters:
    ///   - bodies: what the transactions do.
    ///   - timeout: the longest wait for all of them.
    /// - Returns: one outcome per transaction, in order.
    /// - Throws: `FleetError` when the broker fails or the wait times out.
    func submit(_ bodies: [TransactionBody], timeout: Duration) async throws(FleetError) -> [TransactionOutcome] {
        var seqs: [UInt64] = []
        for body in bodies { seqs.append(try send(body)) }
        var outcomes: [TransactionOutcome?] = Array(repeating: nil, count: bodies.count)
        var sentAt = [ContinuousClock.Instant](repeating: .now, count: bodies.count)
        let deadline = ContinuousClock.now + timeout
        while outcomes.contains(where: { $0 == nil }) {
            guard ContinuousClock.now < deadline else {
                let missing = outcomes.indices.filter { outcomes[$0] == nil }.map { bodies[$0].device }
                throw FleetError(
                    .network,
                    "\(missing.count) transaction(s) not committed within \(timeout) "
                        + "(e.g. \(missing.prefix(3).joined(separator: ", "))); are the managers running?")
            }
            try? await Task.sleep(for: .milliseconds(20))
            let snapshot = box.state.withLock { state in seqs.map { state.tallies[$0] ?? Tally() } }
            let now = ContinuousClock.now
            for index in outcomes.indices where outcomes[index] == nil {
                let tally = snapshot[index]
                if tally.committed >= managers
                    || (tally.firstCommitted.map { now - $0 >= settle } ?? false)
                {
                    outcomes[index] = .committed(height: tally.height)
                } else if tally.committed == 0, let reason = tally.rejected {
                    if reason == .replayed {
                        // Two tools in one millisecond: a fresh seq.
                        seqs[index] = try send(bodies[index])
                        sentAt[index] = now
                    } else {
                        outcomes[index] = .rejected(reason)
                    }
                } else if !tally.answered, now - sentAt[index] >= .seconds(5) {
                    // No manager answered (a receipt lost, a manager restarting): a fresh copy.
                    seqs[index] = try send(bodies[index])
                    sentAt[index] = now
                }
            }
        }
        return outcomes.map { $0! }
    }

    static func nowMs() -> UInt64 { WallClock.nowMs() }
}
