/// A committed block as nodes pass it on: the header, the compressed body and the commit
/// certificate. It is what `medledger/v1/{channel}/commits` carries (retained) and what a sync
/// response holds, so any replica can check and apply it from the genesis alone.
///
/// Encoded `{1: header (CBOR bytes), 2: certificate (CBOR bytes), 3: compressed body}`: the commit
/// announcement of docs/CONSENSUS.md with the body added.
public struct CommittedBlock: Hashable, Sendable {
    /// The header.
    public var header: BlockHeader
    /// The body as zstd-compressed CBOR (`BlockBody.compressed`).
    public var compressedBody: [UInt8]
    /// The council's certificate of the header.
    public var certificate: CommitCertificate

    /// Makes one.
    public init(header: BlockHeader, compressedBody: [UInt8], certificate: CommitCertificate) {
        self.header = header
        self.compressedBody = compressedBody
        self.certificate = certificate
    }

    /// The deterministic CBOR form.
    public func encoded() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .bytes(header.encoded())),
            CBORMapEntry(.unsigned(2), .bytes(certificate.encoded())),
            CBORMapEntry(.unsigned(3), .bytes(compressedBody)),
        ]).encoded()
    }

    /// The largest encoded form a channel's blocks can have.
    public static func maxEncodedBytes(_ parameters: BlockParameters) -> Int { parameters.maxBytes * 2 + (64 << 10) }

    /// Decodes one, within a channel's limits.
    /// - Parameters:
    ///   - bytes: the encoded form.
    ///   - parameters: the channel's block parameters.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8], parameters: BlockParameters) throws(LedgerFormatError) {
        let size = Self.maxEncodedBytes(parameters)
        let map = try LedgerFormatError.decodeDeterministic(
            bytes, what: "committed block",
            limits: CBORLimits(maxDepth: 2, maxInputBytes: size, maxItems: 8, maxStringBytes: size))
        guard let header = map[intKey: 1]?.bytesValue, let certificate = map[intKey: 2]?.bytesValue,
            let body = map[intKey: 3]?.bytesValue, map.mapValue?.count == 3
        else { throw LedgerFormatError("a committed block is {1: header, 2: certificate, 3: body}") }
        self.init(
            header: try BlockHeader(decoding: header), compressedBody: body,
            certificate: try CommitCertificate(decoding: certificate))
    }

    /// The block, once the certificate is checked against the genesis and the body against the
    /// header's roots. (The ledger's rules are checked when the block is applied.)
    /// - Parameter genesis: the channel's genesis.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public func verifiedBlock(genesis: Genesis) throws(LedgerFormatError) -> Block {
        try certificate.verify(genesis: genesis, header: header)
        guard certificate.height == header.height, certificate.channel == header.channel else {
            throw LedgerFormatError("the certificate is for another height or channel")
        }
        let body = try BlockBody(compressed: compressedBody, parameters: genesis.block)
        guard body.readingsRoot == header.readingsRoot, body.transactionsRoot == header.transactionsRoot else {
            throw LedgerFormatError("the body does not match the header's Merkle roots")
        }
        return Block(header: header, body: body)
    }
}

/// A replica's request for committed blocks it lacks, sent to a peer on
/// `medledger/v1/{channel}/sync/{peer}` (MQTT 5 request/response). `{1: channel, 2: from, 3: count}`.
public struct SyncRequest: Hashable, Sendable {
    /// The most blocks one request asks for.
    public static let maxCount = 64
    /// The channel.
    public var channel: String
    /// The first height wanted.
    public var from: UInt64
    /// How many blocks at most (1...maxCount).
    public var count: Int

    /// Makes one.
    public init(channel: String, from: UInt64, count: Int) {
        self.channel = channel
        self.from = from
        self.count = min(max(1, count), Self.maxCount)
    }

    /// The deterministic CBOR form.
    public func encoded() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .text(channel)), CBORMapEntry(.unsigned(2), .unsigned(from)),
            CBORMapEntry(.unsigned(3), .unsigned(UInt64(count))),
        ]).encoded()
    }

    /// Decodes one.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map = try LedgerFormatError.decodeDeterministic(
            bytes, what: "sync request", limits: CBORLimits(maxDepth: 2, maxInputBytes: 256, maxItems: 8))
        guard let channel = map[intKey: 1]?.textValue, let from = map[intKey: 2]?.wireUInt, from >= 1,
            let count = map[intKey: 3]?.wireUInt, (1...UInt64(Self.maxCount)).contains(count)
        else { throw LedgerFormatError("a sync request is {1: channel, 2: from (>= 1), 3: count (1...64)}") }
        self.init(channel: channel, from: from, count: Int(count))
    }
}

/// A peer's answer to a sync request: the blocks it has from the height asked for, in order, and
/// its own height. `{1: [committed block bytes], 2: height}`.
public struct SyncResponse: Hashable, Sendable {
    /// The blocks (encoded `CommittedBlock`s), in height order.
    public var blocks: [[UInt8]]
    /// The responder's height.
    public var height: UInt64

    /// Makes one.
    public init(blocks: [[UInt8]], height: UInt64) {
        self.blocks = blocks
        self.height = height
    }

    /// The deterministic CBOR form.
    public func encoded() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .array(blocks.map(CBOR.bytes))), CBORMapEntry(.unsigned(2), .unsigned(height)),
        ]).encoded()
    }

    /// The largest encoded sync response a channel's peers take: the largest message any node
    /// of the channel sends, and so what a broker's packet limit must allow (`BrokerLimits`).
    public static func maxEncodedBytes(_ parameters: BlockParameters) -> Int {
        CommittedBlock.maxEncodedBytes(parameters) * 4
    }

    /// Decodes one, within a channel's limits.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8], parameters: BlockParameters) throws(LedgerFormatError) {
        let one = CommittedBlock.maxEncodedBytes(parameters)
        let map = try LedgerFormatError.decodeDeterministic(
            bytes, what: "sync response",
            limits: CBORLimits(
                maxDepth: 3, maxInputBytes: Self.maxEncodedBytes(parameters), maxItems: SyncRequest.maxCount + 8,
                maxStringBytes: one,
                maxCollectionCount: SyncRequest.maxCount))
        guard let items = map[intKey: 1]?.arrayValue, let height = map[intKey: 2]?.wireUInt else {
            throw LedgerFormatError("a sync response is {1: [blocks], 2: height}")
        }
        var blocks: [[UInt8]] = []
        for item in items {
            guard let block = item.bytesValue else { throw LedgerFormatError("a synced block is not a byte string") }
            blocks.append(block)
        }
        self.init(blocks: blocks, height: height)
    }
}
