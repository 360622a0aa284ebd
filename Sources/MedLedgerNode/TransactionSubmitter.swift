public import MedLedgerCore
public import MedLedgerMQTT
internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// Submits a submitter's signed transactions (a registrar's registrations and revocations) on
/// `tx/{submitter}` and waits until the managers answer each with a committed or rejected
/// receipt on `tx-receipts/{submitter}`.
///
/// Sequence numbers are taken from the clock (ms since the epoch, and one more than the last one
/// used), so that several tools using one registrar key never reuse one; a transaction refused as
/// `replayed` (two tools in one millisecond) is sent again with a new seq.
public struct TransactionSubmitter: Sendable {
    /// The submitter's id (a registrar of the genesis).
    public let submitter: String
    /// Its key.
    public let key: PrivateKey
    /// The channel.
    public let channel: String
    private let client: MQTTClient
    private let topics: ChannelTopics

    /// Makes a submitter over a connected client.
    public init(client: MQTTClient, channel: String, submitter: String, key: PrivateKey) {
        self.client = client
        self.channel = channel
        self.submitter = submitter
        self.key = key
        topics = ChannelTopics(channel: channel)
    }

    /// What became of one transaction.
    public enum Outcome: Hashable, Sendable {
        /// Committed at this height.
        case committed(height: UInt64, blockHash: Hash256)
        /// Refused, with the reason.
        case rejected(TransactionRejection.Reason)
    }

    /// Submits transactions and waits for each one's final receipt.
    /// - Parameters:
    ///   - bodies: what the transactions do, in order.
    ///   - timeout: the longest wait for all of them.
    /// - Returns: one outcome per transaction, in order.
    /// - Throws: `NodeError` on a broker failure or when the wait times out.
    public func submit(_ bodies: [TransactionBody], timeout: Duration = .seconds(60)) async throws(NodeError)
        -> [Outcome]
    {
        try await submitSigned(bodies, timeout: timeout).map(\.outcome)
    }

    /// Submits transactions and waits for each one's final receipt, returning the signed
    /// transaction that got it (its id is an access request's grant id).
    /// - Parameters:
    ///   - bodies: what the transactions do, in order.
    ///   - timeout: the longest wait for all of them.
    /// - Returns: one signed transaction and outcome per body, in order.
    /// - Throws: `NodeError` on a broker failure or when the wait times out.
    public func submitSigned(_ bodies: [TransactionBody], timeout: Duration = .seconds(60)) async throws(NodeError)
        -> [(transaction: SignedTransaction, outcome: Outcome)]
    {
        guard !bodies.isEmpty else { return [] }
        do {
            try await client.subscribe(topics.transactionReceipts(submitter))
        } catch {
            throw NodeError(.network, "cannot subscribe to the transaction receipts: \(error)")
        }
        let work = Task { () throws(NodeError) -> [(transaction: SignedTransaction, outcome: Outcome)] in
            try await exchange(bodies)
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            work.cancel()
        }
        defer { timer.cancel() }
        do {
            return try await work.value
        } catch {
            throw work.isCancelled
                ? NodeError(.network, "no final receipt for every transaction within \(timeout)")
                : (error as? NodeError ?? NodeError(.network, "\(error)"))
        }
    }

    /// Sends the transactions and reads receipts until each has a final one (or the task is
    /// cancelled). What gets no final receipt within a while (no manager was subscribed yet, a
    /// receipt was lost) is sent again, the same bytes: a manager answers a committed one
    /// `committed`, and the ledger never holds it twice.
    private func exchange(_ bodies: [TransactionBody]) async throws(NodeError)
        -> [(transaction: SignedTransaction, outcome: Outcome)]
    {
        var outcomes: [Outcome?] = Array(repeating: nil, count: bodies.count)
        var sent: [SignedTransaction?] = Array(repeating: nil, count: bodies.count)
        let pending = PendingTransactions()
        var lastSeq: UInt64 = 0
        let client = self.client
        let topic = topics.transactions(submitter)
        func send(_ index: Int) throws(NodeError) {
            lastSeq = max(Self.now(), lastSeq + 1)
            let transaction = Transaction(
                channel: channel, submitter: submitter, seq: lastSeq, time: Self.now(), body: bodies[index])
            do {
                let signed = try SignedTransaction(signing: transaction, with: key)
                sent[index] = signed
                pending.entries.withLock { $0[transaction.seq] = (index, signed.bytes) }
                try client.enqueue(topic: topic, payload: signed.bytes)
            } catch {
                throw NodeError(.network, "cannot send a transaction: \(error)")
            }
        }
        for index in bodies.indices { try send(index) }
        let resender = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: Self.resendInterval)
                for entry in pending.entries.withLock({ Array($0.values) }) {
                    try? client.enqueue(topic: topic, payload: entry.bytes)
                }
            }
        }
        defer { resender.cancel() }
        var iterator = client.messages.makeAsyncIterator()
        while outcomes.contains(where: { $0 == nil }) {
            guard let message = await iterator.next() else {
                throw NodeError(.network, "the connection ended before every transaction was answered")
            }
            guard message.topic == topics.transactionReceipts(submitter),
                let receipt = try? TransactionReceipt(decoding: message.payload),
                let index = pending.entries.withLock({ $0[receipt.seq]?.index })
            else { continue }
            switch receipt.status {
            case .accepted, .busy:
                continue
            case .committed(let height, let blockHash):
                outcomes[index] = .committed(height: height, blockHash: blockHash)
            case .rejected(.replayed):
                // Another tool used this seq in the same millisecond: a new one.
                pending.entries.withLock { _ = $0.removeValue(forKey: receipt.seq) }
                try send(index)
                continue
            case .rejected(let reason):
                outcomes[index] = .rejected(reason)
            }
            pending.entries.withLock { _ = $0.removeValue(forKey: receipt.seq) }
        }
        return zip(sent, outcomes).map { ($0!, $1!) }
    }

    /// How long a transaction waits for its final receipt before it is sent again.
    static let resendInterval: Duration = .seconds(2)

    static func now() -> UInt64 { WallClock.nowMs() }
}

/// The transactions a submitter waits for, by seq: the index of each and its bytes.
private final class PendingTransactions: Sendable {
    let entries = Mutex<[UInt64: (index: Int, bytes: [UInt8])]>([:])
}
