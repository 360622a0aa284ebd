/// A member of a channel named in its genesis: a validator, a manager or a registrar.
public struct Member: Hashable, Sendable, Codable {
    /// The node id, `[A-Za-z0-9._-]{1,64}`.
    public var id: String
    /// The member's signing key.
    public var publicKey: PublicKey

    /// Makes a member.
    public init(id: String, publicKey: PublicKey) {
        self.id = id
        self.publicKey = publicKey
    }

    private enum CodingKeys: String, CodingKey {
        case id, publicKey
    }

    /// Reads `{"id": ..., "publicKey": "<PEM>"}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        let pem = try container.decode(String.self, forKey: .publicKey)
        do {
            publicKey = try PublicKey(pem: pem)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .publicKey, in: container, debugDescription: "member \(id): \(error)")
        }
    }

    /// Writes `{"id": ..., "publicKey": "<PEM>"}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(publicKey.pemRepresentation, forKey: .publicKey)
    }

    var cbor: CBOR {
        .map([
            CBORMapEntry(.unsigned(1), .text(id)),
            CBORMapEntry(.unsigned(2), .int(publicKey.algorithm.coseIdentifier)),
            CBORMapEntry(.unsigned(3), .bytes(publicKey.rawBytes)),
        ])
    }

    init(cbor: CBOR) throws(LedgerFormatError) {
        guard let id = cbor[intKey: 1]?.textValue,
            let alg = cbor[intKey: 2]?.int64Value.flatMap(SignatureAlgorithm.init(coseIdentifier:)),
            let raw = cbor[intKey: 3]?.bytesValue
        else { throw LedgerFormatError("a member is not {1: id, 2: alg, 3: key}") }
        do {
            self.init(id: id, publicKey: try PublicKey(algorithm: alg, rawBytes: raw))
        } catch {
            throw LedgerFormatError("member \(id): \(error)")
        }
    }
}

/// When a manager cuts a block: whichever limit is reached first.
public struct BlockParameters: Hashable, Sendable, Codable {
    /// The most readings in one block.
    public var maxReadings: Int
    /// The most bytes of signed readings and transactions in one block (before compression).
    public var maxBytes: Int
    /// How long a manager waits, from the first pending reading, before it cuts a block anyway.
    public var timeoutMs: UInt64

    /// Makes block parameters.
    public init(maxReadings: Int = 1000, maxBytes: Int = 1 << 20, timeoutMs: UInt64 = 200) {
        self.maxReadings = maxReadings
        self.maxBytes = maxBytes
        self.timeoutMs = timeoutMs
    }
}

/// The genesis of a channel: who is in it and by which rules it runs. Its hash is the
/// previous-header hash of block 1, so every block commits to it.
public struct Genesis: Hashable, Sendable, Codable {
    /// The format version, 1.
    public var version: Int = 1
    /// The channel id, `[a-z0-9-]{1,32}`.
    public var channel: String
    /// When the channel was made, ms since the Unix epoch.
    public var createdAt: UInt64
    /// The council: n = 3f+1 validators, in the order that gives them their index.
    public var council: [Member]
    /// The managers, in the order of the proposer rotation.
    public var managers: [Member]
    /// The registrars, who sign transactions.
    public var registrars: [Member]
    /// When blocks are cut.
    public var block: BlockParameters
    /// How far ahead of the checker's clock a reading's time may be, in ms (default 5 minutes).
    public var skewMs: UInt64
    /// Kinds this channel adds to the standard ones.
    public var kinds: [MeasurementKind]

    /// Makes a genesis.
    public init(
        channel: String, createdAt: UInt64, council: [Member], managers: [Member], registrars: [Member],
        block: BlockParameters = BlockParameters(), skewMs: UInt64 = 300_000, kinds: [MeasurementKind] = []
    ) {
        self.channel = channel
        self.createdAt = createdAt
        self.council = council
        self.managers = managers
        self.registrars = registrars
        self.block = block
        self.skewMs = skewMs
        self.kinds = kinds
    }

    /// The most faulty validators the council tolerates: f = (n - 1) / 3.
    public var faultTolerance: Int { (council.count - 1) / 3 }
    /// The votes a decision needs: 2f + 1.
    public var quorum: Int { 2 * faultTolerance + 1 }
    /// The table of kinds: standard plus this channel's.
    public var kindTable: KindTable { KindTable(extra: kinds) }

    /// Checks the genesis' own rules: valid ids, no id used twice in a role, n = 3f+1 validators,
    /// at least one manager and one registrar, sane block parameters.
    /// - Throws: `LedgerFormatError` naming the first problem.
    public func validate() throws(LedgerFormatError) {
        guard version == 1 else { throw LedgerFormatError("genesis version \(version) is not supported") }
        guard Identifiers.isValidChannelID(channel) else {
            throw LedgerFormatError("channel id '\(channel)' is not [a-z0-9-]{1,32}")
        }
        for (role, members) in [("council", council), ("managers", managers), ("registrars", registrars)] {
            guard !members.isEmpty else { throw LedgerFormatError("genesis names no \(role)") }
            var seen = Set<String>()
            for member in members {
                guard Identifiers.isValidNodeID(member.id) else {
                    throw LedgerFormatError("\(role): id '\(member.id)' is not [A-Za-z0-9._-]{1,64}")
                }
                guard seen.insert(member.id).inserted else {
                    throw LedgerFormatError("\(role): id '\(member.id)' appears twice")
                }
            }
        }
        guard council.count % 3 == 1 else {
            throw LedgerFormatError("the council has \(council.count) validators; it needs 3f+1 (1, 4, 7, 10, ...)")
        }
        guard block.maxReadings >= 1, block.maxReadings <= 65_535 else {
            throw LedgerFormatError("block.maxReadings must be 1...65535")
        }
        guard block.maxBytes >= Reading.maxEncodedBytes, block.maxBytes <= 64 << 20 else {
            throw LedgerFormatError("block.maxBytes must be 1024 bytes to 64 MiB")
        }
        guard block.timeoutMs >= 1 else { throw LedgerFormatError("block.timeoutMs must be at least 1") }
        for kind in kinds where !(kind.minimum <= kind.maximum) {
            throw LedgerFormatError("kind \(kind.code): minimum is above maximum")
        }
    }

    /// The genesis in deterministic CBOR: what its hash covers.
    public func encoded() -> [UInt8] {
        let kinds = kinds.map { kind in
            CBOR.map([
                CBORMapEntry(.unsigned(0), .text(kind.code)),
                CBORMapEntry(.unsigned(1), .text(kind.unit)),
                CBORMapEntry(.unsigned(2), .text(kind.name)),
                CBORMapEntry(.unsigned(3), .float(kind.minimum)),
                CBORMapEntry(.unsigned(4), .float(kind.maximum)),
            ])
        }
        return CBOR.map([
            CBORMapEntry(.unsigned(1), .int(Int64(version))),
            CBORMapEntry(.unsigned(2), .text(channel)),
            CBORMapEntry(.unsigned(3), .unsigned(createdAt)),
            CBORMapEntry(.unsigned(4), .array(council.map(\.cbor))),
            CBORMapEntry(.unsigned(5), .array(managers.map(\.cbor))),
            CBORMapEntry(.unsigned(6), .array(registrars.map(\.cbor))),
            CBORMapEntry(
                .unsigned(7),
                .map([
                    CBORMapEntry(.unsigned(1), .int(Int64(block.maxReadings))),
                    CBORMapEntry(.unsigned(2), .int(Int64(block.maxBytes))),
                    CBORMapEntry(.unsigned(3), .unsigned(block.timeoutMs)),
                ])),
            CBORMapEntry(.unsigned(8), .unsigned(skewMs)),
            CBORMapEntry(.unsigned(9), .array(kinds)),
        ]).encoded()
    }

    /// Decodes a genesis from its deterministic CBOR and validates it.
    /// - Parameter bytes: the encoded genesis.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        let map = try LedgerFormatError.decodeDeterministic(bytes, what: "genesis")
        func members(_ key: Int64) throws(LedgerFormatError) -> [Member] {
            guard let items = map[intKey: key]?.arrayValue else {
                throw LedgerFormatError("genesis key \(key) is not an array of members")
            }
            var out: [Member] = []
            for item in items { out.append(try Member(cbor: item)) }
            return out
        }
        guard let version = map[intKey: 1]?.int64Value, let channel = map[intKey: 2]?.textValue,
            let createdAt = map[intKey: 3]?.wireUInt, let params = map[intKey: 7],
            let maxReadings = params[intKey: 1]?.int64Value, let maxBytes = params[intKey: 2]?.int64Value,
            let timeoutMs = params[intKey: 3]?.wireUInt, let skewMs = map[intKey: 8]?.wireUInt,
            let kindItems = map[intKey: 9]?.arrayValue,
            let maxReadingsInt = Int(exactly: maxReadings), let maxBytesInt = Int(exactly: maxBytes)
        else { throw LedgerFormatError("genesis lacks a field or has one of the wrong type") }
        var kinds: [MeasurementKind] = []
        for item in kindItems {
            guard let code = item[intKey: 0]?.textValue, let unit = item[intKey: 1]?.textValue,
                let name = item[intKey: 2]?.textValue, let minimum = item[intKey: 3]?.doubleValue,
                let maximum = item[intKey: 4]?.doubleValue
            else { throw LedgerFormatError("genesis: a kind is not {0: code, 1: unit, 2: name, 3: min, 4: max}") }
            kinds.append(MeasurementKind(code: code, unit: unit, name: name, minimum: minimum, maximum: maximum))
        }
        self.init(
            channel: channel, createdAt: createdAt, council: try members(4), managers: try members(5),
            registrars: try members(6),
            block: BlockParameters(maxReadings: maxReadingsInt, maxBytes: maxBytesInt, timeoutMs: timeoutMs),
            skewMs: skewMs, kinds: kinds)
        self.version = Int(version)
        try validate()
    }

    /// SHA-256 of the encoded genesis: the previous-header hash of block 1.
    public var hash: Hash256 { Hash256.sha256(encoded()) }

    /// SHA-256 of the council's deterministic CBOR (ids, algorithms, keys in order): every
    /// header names it, so a block says which council certifies it.
    public var councilHash: Hash256 { Hash256.sha256(CBOR.array(council.map(\.cbor)).encoded()) }

    /// The registrar with an id, if there is one.
    /// - Parameter id: the registrar's id.
    public func registrar(_ id: String) -> Member? { registrars.first { $0.id == id } }
}

/// An error in one of the ledger's own formats (genesis, transaction, block, certificate).
public struct LedgerFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, for a person.
    public var message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }

    /// Decodes a map that the ledger itself wrote, which must be in deterministic encoding so that
    /// its hash is unique.
    static func decodeDeterministic(_ bytes: [UInt8], what: String, limits: CBORLimits = .default) throws(Self)
        -> CBOR
    {
        var limits = limits
        limits.requireDeterministic = true
        let item: CBOR
        do {
            item = try CBOR.decode(bytes, limits: limits)
        } catch {
            throw LedgerFormatError("\(what): \(error)")
        }
        guard item.mapValue != nil else { throw LedgerFormatError("\(what) is not a CBOR map") }
        return item
    }
}
