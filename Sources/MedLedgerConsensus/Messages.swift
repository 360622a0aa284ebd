public import MedLedgerCore

/// What a proposal proposes: a block as header bytes and compressed body bytes.
///
/// The consensus machine never looks inside: it names the value by ``id``, SHA-256 of the header
/// bytes (for a block, its header hash, which votes and commit certificates sign), and tells the
/// exact bytes apart by ``digest``, which also covers the body. Two values are equal when their
/// digests are.
public struct ProposalValue: Hashable, Sendable {
    /// The header bytes (a block's deterministic header CBOR).
    public let header: [UInt8]
    /// The body bytes (a block's zstd-compressed body).
    public let body: [UInt8]
    /// SHA-256 of ``header``: the block hash that votes and certificates name.
    public let id: Hash256
    /// SHA-256 of ``body``.
    public let bodyHash: Hash256
    /// SHA-256 of `id ‖ bodyHash`: names these exact bytes.
    public let digest: Hash256

    /// Makes a value from its bytes.
    /// - Parameters:
    ///   - header: the header bytes.
    ///   - body: the body bytes.
    public init(header: [UInt8], body: [UInt8]) {
        self.header = header
        self.body = body
        id = Hash256.sha256(header)
        bodyHash = Hash256.sha256(body)
        digest = Hash256.sha256(id.bytes + bodyHash.bytes)
    }

    /// Makes the value of a block: its header CBOR and its compressed body.
    /// - Parameters:
    ///   - block: the block.
    ///   - compressionLevel: the zstd level for the body.
    public init(block: Block, compressionLevel: Int32 = 3) {
        self.init(header: block.header.encoded(), body: block.body.compressed(level: compressionLevel))
    }

    /// Decodes the block this value holds.
    /// - Parameter parameters: the channel's block parameters (they bound the body).
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public func block(parameters: BlockParameters) throws(LedgerFormatError) -> Block {
        Block(
            header: try BlockHeader(decoding: header), body: try BlockBody(compressed: body, parameters: parameters))
    }

    /// Equality by digest.
    public static func == (lhs: ProposalValue, rhs: ProposalValue) -> Bool { lhs.digest == rhs.digest }

    /// Hashes the digest.
    public func hash(into hasher: inout Hasher) { hasher.combine(digest) }
}

/// A manager's signed proposal of a value for one height and round.
///
/// Wire form, deterministic CBOR: `{1: channel, 2: height, 3: round, 4: valid round or null,
/// 5: proposer (manager index), 6: header bytes, 7: body bytes, 8: signature}`. The signature is
/// the manager's over ``signingBytes``.
public struct Proposal: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The height, from 1.
    public var height: UInt64
    /// The round, from 0.
    public var round: UInt64
    /// The round of the polka that makes the proposer re-propose this value (Tendermint's
    /// `validRound`), or nil (the paper's -1) for a fresh value. Always below ``round``.
    public var validRound: UInt64?
    /// The proposer's index in the genesis managers.
    public var proposer: Int
    /// The proposed value.
    public var value: ProposalValue
    /// The proposer's signature over ``signingBytes``.
    public var signature: [UInt8]

    /// Makes a proposal.
    public init(
        channel: String, height: UInt64, round: UInt64, validRound: UInt64?, proposer: Int, value: ProposalValue,
        signature: [UInt8]
    ) {
        self.channel = channel
        self.height = height
        self.round = round
        self.validRound = validRound
        self.proposer = proposer
        self.value = value
        self.signature = signature
    }

    /// The bytes a proposer signs: deterministic CBOR `["medledger/v1/proposal", channel, height,
    /// round, valid round or null, proposer index, header hash, body hash]`.
    public var signingBytes: [UInt8] {
        Self.signingBytes(
            channel: channel, height: height, round: round, validRound: validRound, proposer: proposer, value: value)
    }

    /// The bytes a proposer signs for a proposal with these fields.
    /// - Parameters:
    ///   - channel: the channel id.
    ///   - height: the height.
    ///   - round: the round.
    ///   - validRound: the valid round, or nil.
    ///   - proposer: the proposer's manager index.
    ///   - value: the value.
    public static func signingBytes(
        channel: String, height: UInt64, round: UInt64, validRound: UInt64?, proposer: Int, value: ProposalValue
    ) -> [UInt8] {
        CBOR.array([
            .text("medledger/v1/proposal"), .text(channel), .unsigned(height), .unsigned(round),
            validRound.map(CBOR.unsigned) ?? .null, .unsigned(UInt64(truncatingIfNeeded: proposer)),
            .bytes(value.id.bytes),
            .bytes(value.bodyHash.bytes),
        ]).encoded()
    }

    /// Whether two proposals say the same thing (the signature bytes may differ for ES256).
    func sameContent(as other: Proposal) -> Bool {
        channel == other.channel && height == other.height && round == other.round && validRound == other.validRound
            && proposer == other.proposer && value == other.value
    }

    var cbor: CBOR {
        .map([
            CBORMapEntry(1, .text(channel)),
            CBORMapEntry(2, .unsigned(height)),
            CBORMapEntry(3, .unsigned(round)),
            CBORMapEntry(4, validRound.map(CBOR.unsigned) ?? .null),
            CBORMapEntry(5, .unsigned(UInt64(truncatingIfNeeded: proposer))),
            CBORMapEntry(6, .bytes(value.header)),
            CBORMapEntry(7, .bytes(value.body)),
            CBORMapEntry(8, .bytes(signature)),
        ])
    }

    /// The proposal in its wire form.
    public func encoded() -> [UInt8] { cbor.encoded() }

    /// The most bytes a proposal of a block within these parameters can need on the wire: the
    /// body's largest CBOR size, zstd's worst-case growth and room for the header and fields.
    /// - Parameter parameters: the channel's block parameters.
    public static func maxEncodedBytes(parameters: BlockParameters) -> Int {
        let items = parameters.maxReadings + parameters.maxBytes / 64 + 16
        let rawBody = parameters.maxBytes + 5 * items + 64
        return rawBody + rawBody / 64 + 8192
    }

    /// Decodes a proposal strictly: deterministic CBOR, exactly the keys above, heights and rounds
    /// within ``ConsensusBounds``, a valid round below the round. The signature is not checked here.
    /// - Parameters:
    ///   - bytes: the wire form.
    ///   - maxBytes: the most bytes accepted (see ``maxEncodedBytes(parameters:)``).
    /// - Throws: `ConsensusError` (`.malformed` or `.outOfRange`) naming what is wrong.
    public init(decoding bytes: [UInt8], maxBytes: Int) throws(ConsensusError) {
        guard bytes.count <= maxBytes else {
            throw ConsensusError(.outOfRange, "a proposal of \(bytes.count) bytes is above the limit of \(maxBytes)")
        }
        let limits = CBORLimits(
            maxDepth: 2, maxInputBytes: maxBytes, maxItems: 32, maxStringBytes: maxBytes, maxCollectionCount: 16)
        let map = try WireMap.decode(bytes, what: "proposal", limits: limits, required: Self.keys)
        try self.init(map: map)
    }

    private static let keys = Set<UInt64>(1...8)

    init(cbor: CBOR) throws(ConsensusError) {
        try self.init(map: try WireMap(cbor, what: "proposal", required: Self.keys))
    }

    private init(map: WireMap) throws(ConsensusError) {
        let height = try map.unsigned(2, max: ConsensusBounds.maxHeight)
        let round = try map.unsigned(3, max: ConsensusBounds.maxRound)
        let validRound = try map.optionalUnsigned(4, max: ConsensusBounds.maxRound)
        guard height >= 1 else { throw ConsensusError(.malformed, "proposal: height 0 does not exist") }
        if let validRound, validRound >= round {
            throw ConsensusError(.malformed, "proposal: valid round \(validRound) is not below round \(round)")
        }
        self.init(
            channel: try map.channel(1), height: height, round: round, validRound: validRound,
            proposer: Int(try map.unsigned(5, max: ConsensusBounds.maxIndex)),
            value: ProposalValue(header: try map.bytes(6), body: try map.bytes(7)), signature: try map.signature(8))
    }
}

/// A validator's signed prevote or precommit.
///
/// Wire form, deterministic CBOR: `{1: channel, 2: height, 3: round, 4: step (1 prevote,
/// 2 precommit), 5: block hash or null, 6: validator index, 7: signature}`. The signature is over
/// `voteSigningBytes` (docs/FORMATS.md), so a round's precommits for a block form its
/// `CommitCertificate`.
public struct Vote: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The height, from 1.
    public var height: UInt64
    /// The round, from 0.
    public var round: UInt64
    /// Prevote or precommit.
    public var step: VoteStep
    /// The header hash voted for, or nil for a vote for nothing.
    public var blockHash: Hash256?
    /// The validator's index in the genesis council.
    public var validator: Int
    /// The validator's signature over ``signingBytes``.
    public var signature: [UInt8]

    /// Makes a vote.
    public init(
        channel: String, height: UInt64, round: UInt64, step: VoteStep, blockHash: Hash256?, validator: Int,
        signature: [UInt8]
    ) {
        self.channel = channel
        self.height = height
        self.round = round
        self.step = step
        self.blockHash = blockHash
        self.validator = validator
        self.signature = signature
    }

    /// The bytes the validator signs: `voteSigningBytes(channel:height:round:step:blockHash:)`.
    public var signingBytes: [UInt8] {
        voteSigningBytes(channel: channel, height: height, round: round, step: step, blockHash: blockHash)
    }

    /// The largest vote on the wire.
    public static let maxEncodedBytes = 512

    var cbor: CBOR {
        .map([
            CBORMapEntry(1, .text(channel)),
            CBORMapEntry(2, .unsigned(height)),
            CBORMapEntry(3, .unsigned(round)),
            CBORMapEntry(4, .unsigned(step.rawValue)),
            CBORMapEntry(5, blockHash.map { .bytes($0.bytes) } ?? .null),
            CBORMapEntry(6, .unsigned(UInt64(truncatingIfNeeded: validator))),
            CBORMapEntry(7, .bytes(signature)),
        ])
    }

    /// The vote in its wire form.
    public func encoded() -> [UInt8] { cbor.encoded() }

    /// Decodes a vote strictly: deterministic CBOR, exactly the keys above, heights and rounds
    /// within ``ConsensusBounds``. The signature is not checked here.
    /// - Parameter bytes: the wire form.
    /// - Throws: `ConsensusError` (`.malformed` or `.outOfRange`) naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(ConsensusError) {
        guard bytes.count <= Self.maxEncodedBytes else {
            throw ConsensusError(.outOfRange, "a vote of \(bytes.count) bytes is above the limit of 512")
        }
        let limits = CBORLimits(
            maxDepth: 2, maxInputBytes: Self.maxEncodedBytes, maxItems: 32, maxStringBytes: Self.maxEncodedBytes,
            maxCollectionCount: 16)
        try self.init(map: try WireMap.decode(bytes, what: "vote", limits: limits, required: Self.keys))
    }

    private static let keys = Set<UInt64>(1...7)

    init(cbor: CBOR) throws(ConsensusError) {
        try self.init(map: try WireMap(cbor, what: "vote", required: Self.keys))
    }

    private init(map: WireMap) throws(ConsensusError) {
        let height = try map.unsigned(2, max: ConsensusBounds.maxHeight)
        guard height >= 1 else { throw ConsensusError(.malformed, "vote: height 0 does not exist") }
        guard let step = VoteStep(rawValue: try map.unsigned(4)) else {
            throw ConsensusError(.malformed, "vote: step is neither 1 (prevote) nor 2 (precommit)")
        }
        self.init(
            channel: try map.channel(1), height: height, round: try map.unsigned(3, max: ConsensusBounds.maxRound),
            step: step, blockHash: try map.optionalHash(5),
            validator: Int(try map.unsigned(6, max: ConsensusBounds.maxIndex)), signature: try map.signature(7))
    }
}

/// What a replica publishes on `medledger/v1/{channel}/commits` (retained) after it applies a
/// block: the header and its commit certificate.
///
/// Wire form, deterministic CBOR: `{1: header bytes, 2: certificate bytes}` (each the core's
/// deterministic encoding, kept as a byte string so its hash is over the exact bytes).
public struct CommitAnnouncement: Hashable, Sendable {
    /// The committed header.
    public var header: BlockHeader
    /// Its certificate.
    public var certificate: CommitCertificate

    /// Makes an announcement.
    public init(header: BlockHeader, certificate: CommitCertificate) {
        self.header = header
        self.certificate = certificate
    }

    /// The announcement in its wire form.
    public func encoded() -> [UInt8] {
        CBOR.map([CBORMapEntry(1, .bytes(header.encoded())), CBORMapEntry(2, .bytes(certificate.encoded()))])
            .encoded()
    }

    /// Decodes an announcement strictly. Neither the certificate's signatures nor the header's
    /// place in the chain are checked here: call ``verify(genesis:)``.
    /// - Parameter bytes: the wire form.
    /// - Throws: `ConsensusError.Code.malformed` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(ConsensusError) {
        let limits = CBORLimits(
            maxDepth: 2, maxInputBytes: 1 << 20, maxItems: 16, maxStringBytes: 1 << 20, maxCollectionCount: 4)
        let map = try WireMap.decode(bytes, what: "commit announcement", limits: limits, required: [1, 2])
        do {
            self.init(
                header: try BlockHeader(decoding: try map.bytes(1)),
                certificate: try CommitCertificate(decoding: try map.bytes(2)))
        } catch let error as ConsensusError {
            throw error
        } catch {
            throw ConsensusError(.malformed, "commit announcement: \(error)")
        }
    }

    /// Checks the certificate against the genesis council and the header.
    /// - Parameter genesis: the channel's genesis.
    /// - Throws: `ConsensusError.Code.invalidCertificate` naming what is wrong.
    public func verify(genesis: Genesis) throws(ConsensusError) {
        do {
            try certificate.verify(genesis: genesis, header: header)
        } catch {
            throw ConsensusError(.invalidCertificate, error.message)
        }
    }
}

/// The MQTT topics of the council (docs/CONSENSUS.md). Each sender publishes on its own topic,
/// so that a broker's ACL can let a member publish only as itself; subscribers use the `+`
/// wildcard and check that the index in the message is the one of the topic's member.
public enum CouncilTopics {
    /// `medledger/v1/{channel}/council/proposal/{manager id}`: a manager's proposals (QoS 1).
    public static func proposal(channel: String, manager: String) -> String {
        "medledger/v1/\(channel)/council/proposal/\(manager)"
    }

    /// `medledger/v1/{channel}/council/vote/{validator id}`: a validator's votes (QoS 1).
    public static func vote(channel: String, validator: String) -> String {
        "medledger/v1/\(channel)/council/vote/\(validator)"
    }

    /// `medledger/v1/{channel}/council/evidence/{reporter id}`: evidence of equivocation (QoS 1).
    public static func evidence(channel: String, reporter: String) -> String {
        "medledger/v1/\(channel)/council/evidence/\(reporter)"
    }

    /// The subscription filter for every council message of a channel: `medledger/v1/{channel}/council/#`.
    public static func all(channel: String) -> String { "medledger/v1/\(channel)/council/#" }

    /// `medledger/v1/{channel}/commits`: the newest commit announcement (QoS 1, retained).
    public static func commits(channel: String) -> String { "medledger/v1/\(channel)/commits" }
}
