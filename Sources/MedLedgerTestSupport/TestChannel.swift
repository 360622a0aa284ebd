public import MedLedgerCore

/// A channel for tests: a genesis with deterministic keys for its registrar, council and
/// managers, and helpers that make signed devices, readings, transactions and certified blocks.
public struct TestChannel: Sendable {
    /// The genesis.
    public let genesis: Genesis
    /// The registrar's key (id `registrar-1`).
    public let registrarKey: PrivateKey
    /// The validators' keys, in council order.
    public let validatorKeys: [PrivateKey]
    /// The managers' keys, in genesis order.
    public let managerKeys: [PrivateKey]

    /// Makes a channel.
    /// - Parameters:
    ///   - channel: the channel id.
    ///   - validators: the council size (3f+1).
    ///   - managers: the number of managers.
    ///   - block: the block parameters.
    public init(
        channel: String = "test-channel", validators: Int = 4, managers: Int = 1,
        block: BlockParameters = BlockParameters()
    ) {
        registrarKey = Self.key(seed: 1)
        validatorKeys = (0..<validators).map { Self.key(seed: 100 + UInt8($0)) }
        managerKeys = (0..<managers).map { Self.key(seed: 200 + UInt8($0)) }
        genesis = Genesis(
            channel: channel, createdAt: 1_700_000_000_000,
            council: validatorKeys.enumerated().map {
                Member(id: "validator-\($0.offset + 1)", publicKey: $0.element.publicKey)
            },
            managers: managerKeys.enumerated().map {
                Member(id: "manager-\($0.offset + 1)", publicKey: $0.element.publicKey)
            },
            registrars: [Member(id: "registrar-1", publicKey: registrarKey.publicKey)], block: block)
    }

    /// A deterministic Ed25519 key.
    /// - Parameter seed: any byte; equal seeds give equal keys.
    public static func key(seed: UInt8, algorithm: SignatureAlgorithm = .ed25519) -> PrivateKey {
        var bytes = [UInt8](repeating: seed, count: 32)
        bytes[0] = 1
        return try! PrivateKey(algorithm: algorithm, rawBytes: bytes)
    }

    /// A deterministic device key for a device number.
    public static func deviceKey(_ number: Int, algorithm: SignatureAlgorithm = .ed25519) -> PrivateKey {
        var bytes = [UInt8](repeating: 7, count: 32)
        bytes[0] = UInt8(truncatingIfNeeded: number)
        bytes[1] = UInt8(truncatingIfNeeded: number >> 8)
        bytes[2] = algorithm == .ed25519 ? 1 : 2
        return try! PrivateKey(algorithm: algorithm, rawBytes: bytes)
    }

    /// A registrar transaction, signed.
    /// - Parameters:
    ///   - seq: the registrar's sequence number.
    ///   - body: what it does.
    public func transaction(seq: UInt64, _ body: TransactionBody) -> SignedTransaction {
        try! SignedTransaction(
            signing: Transaction(
                channel: genesis.channel, submitter: "registrar-1", seq: seq, time: genesis.createdAt, body: body),
            with: registrarKey)
    }

    /// A receipt as a device of this channel takes it: final ones must be signed by one of its
    /// managers for this topic (nil when it is not a receipt or cannot be trusted).
    public func trustedReceipt(_ payload: [UInt8], topic: String) -> Receipt? {
        try? Receipt.open(payload, topic: topic, managers: genesis.managers).receipt
    }

    /// A blood-pressure reading, signed.
    public func reading(
        device: String, key: PrivateKey, seq: UInt64, time: UInt64? = nil, systolic: Int64 = 120,
        diastolic: Int64 = 80
    ) -> SignedReading {
        let reading = Reading(
            channel: genesis.channel, device: device, seq: seq, time: time ?? genesis.createdAt + seq * 1000,
            records: [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(systolic)),
                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(diastolic)),
            ])
        return try! SignedReading(signing: reading, with: key)
    }

    /// A certificate for a header signed by the first 2f+1 validators.
    public func certificate(for header: BlockHeader, round: UInt64 = 0) -> CommitCertificate {
        try! CommitCertificate.signing(
            header: header, round: round, keys: Array(validatorKeys.enumerated().prefix(genesis.quorum)))
    }

    /// The next block on a state.
    public func block(
        on state: LedgerState, readings: [SignedReading] = [], transactions: [SignedTransaction] = [],
        time: UInt64? = nil
    ) -> Block {
        Block(
            extending: state, time: time ?? state.time + 1000, proposer: genesis.managers[0].id,
            body: BlockBody(readings: readings.map(\.bytes), transactions: transactions.map(\.bytes)))
    }
}
