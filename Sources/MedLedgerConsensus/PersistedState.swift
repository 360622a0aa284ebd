public import MedLedgerCore

/// A proposal and 2f+1 prevotes for its value in its round: what justifies a lock or a valid value,
/// and what a node relays so that others learn of it.
public struct Polka: Hashable, Sendable {
    /// The proposal of the polka's round.
    public var proposal: Proposal
    /// The prevotes of that round for the proposal's value.
    public var prevotes: [Vote]

    /// Makes a polka.
    public init(proposal: Proposal, prevotes: [Vote]) {
        self.proposal = proposal
        self.prevotes = prevotes
    }
}

/// What a node must keep durably so that a restart never makes it sign two conflicting messages:
/// its own votes and proposals of the current height, its lock, and (for a manager) its valid value.
///
/// Wire form (for the shell's store), deterministic CBOR: `{1: height, 2: round, 3: locked round
/// or null, 4: locked block hash or null, 5: valid round or null, 6: valid value [header, body] or
/// null, 7: [vote, ...], 8: [proposal, ...], 9: polka [proposal, [vote, ...]] or null}` with the
/// messages' own maps.
public struct PersistedConsensusState: Hashable, Sendable {
    /// The height the votes and proposals are for.
    public var height: UInt64
    /// The round the node was in.
    public var round: UInt64
    /// The round of the lock, or nil.
    public var lockedRound: UInt64?
    /// The block hash locked on, or nil.
    public var lockedBlockHash: Hash256?
    /// The round of the valid value, or nil.
    public var validRound: UInt64?
    /// The valid value: kept by managers, who may have to propose it again; nil for validators.
    public var validValue: ProposalValue?
    /// The votes this node signed at the height in this round and the one before, in order.
    public var votes: [Vote]
    /// The proposals this node signed at the height in this round and the one before, in order.
    public var proposals: [Proposal]
    /// The polka of the lock (a validator) or of the valid value (a manager), which the node
    /// relays to a proposer that ignores it. It holds a block, so a shell may store its value once.
    public var polka: Polka?

    /// Makes a state.
    public init(
        height: UInt64, round: UInt64, lockedRound: UInt64? = nil, lockedBlockHash: Hash256? = nil,
        validRound: UInt64? = nil, validValue: ProposalValue? = nil, votes: [Vote] = [], proposals: [Proposal] = [],
        polka: Polka? = nil
    ) {
        self.height = height
        self.round = round
        self.lockedRound = lockedRound
        self.lockedBlockHash = lockedBlockHash
        self.validRound = validRound
        self.validValue = validValue
        self.votes = votes
        self.proposals = proposals
        self.polka = polka
    }

    /// The state in its stored form.
    public func encoded() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(1, .unsigned(height)),
            CBORMapEntry(2, .unsigned(round)),
            CBORMapEntry(3, lockedRound.map(CBOR.unsigned) ?? .null),
            CBORMapEntry(4, lockedBlockHash.map { .bytes($0.bytes) } ?? .null),
            CBORMapEntry(5, validRound.map(CBOR.unsigned) ?? .null),
            CBORMapEntry(6, validValue.map { .array([.bytes($0.header), .bytes($0.body)]) } ?? .null),
            CBORMapEntry(7, .array(votes.map(\.cbor))),
            CBORMapEntry(8, .array(proposals.map(\.cbor))),
            CBORMapEntry(9, polka.map { .array([$0.proposal.cbor, .array($0.prevotes.map(\.cbor))]) } ?? .null),
        ]).encoded()
    }

    /// Decodes a stored state strictly.
    /// - Parameters:
    ///   - bytes: the stored form.
    ///   - maxBytes: the most bytes accepted.
    /// - Throws: `ConsensusError.Code.malformed` naming what is wrong.
    public init(decoding bytes: [UInt8], maxBytes: Int = 1 << 28) throws(ConsensusError) {
        let limits = CBORLimits(
            maxDepth: 5, maxInputBytes: maxBytes, maxItems: 1 << 20, maxStringBytes: maxBytes,
            maxCollectionCount: 1 << 16)
        let map = try WireMap.decode(bytes, what: "persisted consensus state", limits: limits, required: Set(1...9))
        let validValue: ProposalValue?
        let raw = try map.value(6)
        if raw == .null {
            validValue = nil
        } else {
            guard let pair = raw.arrayValue, pair.count == 2, let header = pair[0].bytesValue,
                let body = pair[1].bytesValue
            else {
                throw ConsensusError(.malformed, "persisted consensus state: the valid value is not [header, body]")
            }
            validValue = ProposalValue(header: header, body: body)
        }
        var votes: [Vote] = []
        for item in try map.array(7) { votes.append(try Vote(cbor: item)) }
        var proposals: [Proposal] = []
        for item in try map.array(8) { proposals.append(try Proposal(cbor: item)) }
        var polka: Polka?
        let rawPolka = try map.value(9)
        if rawPolka != .null {
            guard let pair = rawPolka.arrayValue, pair.count == 2, let items = pair[1].arrayValue else {
                throw ConsensusError(.malformed, "persisted consensus state: the polka is not [proposal, [vote]]")
            }
            var prevotes: [Vote] = []
            for item in items { prevotes.append(try Vote(cbor: item)) }
            polka = Polka(proposal: try Proposal(cbor: pair[0]), prevotes: prevotes)
        }
        self.init(
            height: try map.unsigned(1, max: ConsensusBounds.maxHeight),
            round: try map.unsigned(2, max: ConsensusBounds.maxRound),
            lockedRound: try map.optionalUnsigned(3, max: ConsensusBounds.maxRound),
            lockedBlockHash: try map.optionalHash(4),
            validRound: try map.optionalUnsigned(5, max: ConsensusBounds.maxRound),
            validValue: validValue, votes: votes, proposals: proposals, polka: polka)
    }
}
