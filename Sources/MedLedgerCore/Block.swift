/// A block header: what the council certifies. Its hash is SHA-256 of its deterministic CBOR.
public struct BlockHeader: Hashable, Sendable {
    /// The format version, 1.
    public var version: Int = 1
    /// The channel id.
    public var channel: String
    /// The height, from 1.
    public var height: UInt64
    /// The hash of the previous header; for block 1, the genesis hash.
    public var previousHash: Hash256
    /// The proposer's clock when it cut the block, ms since the Unix epoch. Never below the
    /// previous block's time.
    public var time: UInt64
    /// The id of the manager that proposed the block.
    public var proposer: String
    /// The RFC 9162 Merkle root over the exact bytes of the block's signed readings.
    public var readingsRoot: Hash256
    /// The RFC 9162 Merkle root over the exact bytes of the block's signed transactions.
    public var transactionsRoot: Hash256
    /// The genesis' council hash: which council certifies this block.
    public var councilHash: Hash256
    /// The number of readings in the body.
    public var readingCount: Int
    /// The number of transactions in the body.
    public var transactionCount: Int

    /// Makes a header.
    public init(
        channel: String, height: UInt64, previousHash: Hash256, time: UInt64, proposer: String,
        readingsRoot: Hash256, transactionsRoot: Hash256, councilHash: Hash256, readingCount: Int,
        transactionCount: Int
    ) {
        self.channel = channel
        self.height = height
        self.previousHash = previousHash
        self.time = time
        self.proposer = proposer
        self.readingsRoot = readingsRoot
        self.transactionsRoot = transactionsRoot
        self.councilHash = councilHash
        self.readingCount = readingCount
        self.transactionCount = transactionCount
    }

    /// The header in deterministic CBOR.
    public func encoded() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .int(Int64(version))),
            CBORMapEntry(.unsigned(2), .text(channel)),
            CBORMapEntry(.unsigned(3), .unsigned(height)),
            CBORMapEntry(.unsigned(4), .bytes(previousHash.bytes)),
            CBORMapEntry(.unsigned(5), .unsigned(time)),
            CBORMapEntry(.unsigned(6), .text(proposer)),
            CBORMapEntry(.unsigned(7), .bytes(readingsRoot.bytes)),
            CBORMapEntry(.unsigned(8), .bytes(transactionsRoot.bytes)),
            CBORMapEntry(.unsigned(9), .bytes(councilHash.bytes)),
            CBORMapEntry(.unsigned(10), .int(Int64(readingCount))),
            CBORMapEntry(.unsigned(11), .int(Int64(transactionCount))),
        ]).encoded()
    }

    /// Decodes a header; it must be in deterministic encoding.
    /// - Parameter bytes: the encoded header.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map = try LedgerFormatError.decodeDeterministic(bytes, what: "block header")
        func hash(_ key: Int64) throws(LedgerFormatError) -> Hash256 {
            guard let raw = map[intKey: key]?.bytesValue, let hash = Hash256(bytes: raw) else {
                throw LedgerFormatError("block header key \(key) is not a 32-byte hash")
            }
            return hash
        }
        guard map[intKey: 1]?.int64Value == 1 else { throw LedgerFormatError("block header version is not 1") }
        guard let channel = map[intKey: 2]?.textValue, let height = map[intKey: 3]?.wireUInt,
            let time = map[intKey: 5]?.wireUInt, let proposer = map[intKey: 6]?.textValue,
            let readingCount = map[intKey: 10]?.int64Value.flatMap({ Int(exactly: $0) }),
            let transactionCount = map[intKey: 11]?.int64Value.flatMap({ Int(exactly: $0) }),
            readingCount >= 0, transactionCount >= 0, map.mapValue?.count == 11
        else { throw LedgerFormatError("block header lacks a field, has one of the wrong type, or has extra keys") }
        self.init(
            channel: channel, height: height, previousHash: try hash(4), time: time, proposer: proposer,
            readingsRoot: try hash(7), transactionsRoot: try hash(8), councilHash: try hash(9),
            readingCount: readingCount, transactionCount: transactionCount)
    }

    /// SHA-256 of the encoded header.
    public var hash: Hash256 { Hash256.sha256(encoded()) }
}

/// The body of a block: the exact signed bytes of its readings and transactions, in order.
public struct BlockBody: Hashable, Sendable {
    /// The signed readings, each exactly as its device sent it.
    public var readings: [[UInt8]]
    /// The signed transactions, each exactly as its submitter sent it.
    public var transactions: [[UInt8]]

    /// Makes a body.
    public init(readings: [[UInt8]], transactions: [[UInt8]]) {
        self.readings = readings
        self.transactions = transactions
    }

    /// The body as CBOR `[[* bstr], [* bstr]]`, deterministic.
    public func encoded() -> [UInt8] {
        CBOR.array([.array(readings.map(CBOR.bytes)), .array(transactions.map(CBOR.bytes))]).encoded()
    }

    /// The body as stored and sent: its CBOR compressed with zstd.
    /// - Parameter level: the zstd level.
    public func compressed(level: Int32 = 3) -> [UInt8] { Zstd.compress(encoded(), level: level) }

    /// Decodes a compressed body, within a channel's block limits.
    /// - Parameters:
    ///   - compressed: the zstd frame.
    ///   - parameters: the channel's block parameters (they bound the decompressed size).
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(compressed: [UInt8], parameters: BlockParameters) throws(LedgerFormatError) {
        let maxItems = parameters.maxReadings + parameters.maxBytes / 64 + 16
        let maxSize = parameters.maxBytes + 5 * maxItems + 64
        let raw = try Zstd.decompress(compressed, maxSize: maxSize)
        let limits = CBORLimits(
            maxDepth: 3, maxInputBytes: maxSize, maxItems: maxItems + 3,
            maxStringBytes: SignedTransaction.maxEncodedBytes, maxCollectionCount: maxItems, requireDeterministic: true)
        let item: CBOR
        do {
            item = try CBOR.decode(raw, limits: limits)
        } catch {
            throw LedgerFormatError("block body: \(error)")
        }
        guard let parts = item.arrayValue, parts.count == 2, let readingItems = parts[0].arrayValue,
            let transactionItems = parts[1].arrayValue
        else { throw LedgerFormatError("a block body is [[* reading bytes], [* transaction bytes]]") }
        var readings: [[UInt8]] = []
        readings.reserveCapacity(readingItems.count)
        for item in readingItems {
            guard let bytes = item.bytesValue else { throw LedgerFormatError("a body reading is not a byte string") }
            readings.append(bytes)
        }
        var transactions: [[UInt8]] = []
        for item in transactionItems {
            guard let bytes = item.bytesValue else {
                throw LedgerFormatError("a body transaction is not a byte string")
            }
            transactions.append(bytes)
        }
        self.init(readings: readings, transactions: transactions)
    }

    /// The Merkle root over the readings.
    public var readingsRoot: Hash256 { MerkleTree.root(leafHashes: readings.map(MerkleTree.leafHash)) }
    /// The Merkle root over the transactions.
    public var transactionsRoot: Hash256 { MerkleTree.root(leafHashes: transactions.map(MerkleTree.leafHash)) }
    /// The bytes of signed readings and transactions, as `BlockParameters.maxBytes` counts them.
    public var payloadByteCount: Int {
        readings.reduce(0) { $0 + $1.count } + transactions.reduce(0) { $0 + $1.count }
    }
}

/// A block: a header and its body.
public struct Block: Hashable, Sendable {
    /// The header.
    public var header: BlockHeader
    /// The body.
    public var body: BlockBody

    /// Makes a block from its parts.
    public init(header: BlockHeader, body: BlockBody) {
        self.header = header
        self.body = body
    }

    /// Builds the next block on a ledger state: the header's height, previous hash, roots, counts
    /// and council hash are computed here.
    /// - Parameters:
    ///   - state: the ledger state the block extends.
    ///   - time: the proposer's clock, ms (raised to the previous block's time if below it).
    ///   - proposer: the proposing manager's id.
    ///   - body: the readings and transactions, in order.
    public init(extending state: LedgerState, time: UInt64, proposer: String, body: BlockBody) {
        header = BlockHeader(
            channel: state.genesis.channel, height: state.height + 1, previousHash: state.headerHash,
            time: max(time, state.time), proposer: proposer, readingsRoot: body.readingsRoot,
            transactionsRoot: body.transactionsRoot, councilHash: state.councilHash,
            readingCount: body.readings.count, transactionCount: body.transactions.count)
        self.body = body
    }
}
