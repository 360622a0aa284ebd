public import MedLedgerCore

/// What a node is in the council.
public enum ConsensusRole: Sendable {
    /// A council member: checks proposals and signs votes with its key.
    case validator(index: Int, signer: any ConsensusSigner)
    /// A manager: proposes in its turn and follows the votes (to know its valid value), without voting.
    case manager(index: Int, signer: any ConsensusSigner)
    /// A replica that only learns commits (an archive, an auditor).
    case observer

    /// The validator index, when a validator.
    public var validatorIndex: Int? {
        if case .validator(let index, _) = self { return index }
        return nil
    }

    /// The manager index, when a manager.
    public var managerIndex: Int? {
        if case .manager(let index, _) = self { return index }
        return nil
    }
}

/// A step of a Tendermint round.
public enum ConsensusStep: UInt8, Hashable, Sendable, Comparable {
    /// Waiting for the round's proposal.
    case propose
    /// Prevoted; waiting for a polka.
    case prevote
    /// Precommitted; waiting for a commit or the next round.
    case precommit

    /// Orders the steps as they follow in a round.
    public static func < (lhs: ConsensusStep, rhs: ConsensusStep) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A timer the shell runs for the machine, and hands back as ``ConsensusEvent/timeout(_:)`` when it fires.
public struct ConsensusTimeout: Hashable, Sendable {
    /// Which timer.
    public enum Kind: UInt8, Hashable, Sendable {
        /// The proposal of the round did not come in time: prevote nil.
        case propose
        /// No polka after 2f+1 prevotes: precommit nil.
        case prevote
        /// No commit after 2f+1 precommits: go to the next round.
        case precommit
        /// Time to send the node's own votes and proposals of the height again.
        case retransmit
    }

    /// Which timer.
    public var kind: Kind
    /// The height it was set in.
    public var height: UInt64
    /// The round it was set in.
    public var round: UInt64

    /// Makes a timeout.
    public init(_ kind: Kind, height: UInt64, round: UInt64) {
        self.kind = kind
        self.height = height
        self.round = round
    }
}

/// The inputs of the consensus machine.
public enum ConsensusEvent: Sendable {
    /// Begin (or resume) consensus on a height: at start-up with the store's height + 1, after the
    /// shell applied the block decided at the previous height, or after it caught up from peers.
    case startHeight(UInt64)
    /// A proposal received from the network (decoded; the machine checks its signature).
    case proposal(Proposal)
    /// A vote received from the network (decoded; the machine checks its signature).
    case vote(Vote)
    /// A timer the machine asked for fired.
    case timeout(ConsensusTimeout)
    /// The result of a ``ConsensusEffect/validate(_:height:)``: the value's digest and whether it
    /// is a valid block on the ledger state below that height.
    case validated(Hash256, valid: Bool)
    /// A manager's answer to ``ConsensusEffect/needProposal(height:round:)``: the block it proposes.
    case proposalValue(height: UInt64, round: UInt64, value: ProposalValue)
    /// A commit certificate learned from others (e.g. the commits topic) for the current height,
    /// with the block if the shell has it (else the machine uses a proposal it saw with that hash).
    case commit(CommitCertificate, value: ProposalValue?)
}

/// The outputs of the consensus machine, to be executed by the shell in the order given.
///
/// A ``persist(_:)`` must be durable (written and synced) before the shell executes any later
/// effect of the same list: it always comes before the broadcast of the vote or proposal it covers.
public enum ConsensusEffect: Hashable, Sendable {
    /// Store this state durably, replacing the previous one; give it to `init(restoring:)` after a restart.
    case persist(PersistedConsensusState)
    /// Publish a proposal (`CouncilTopics.proposal`).
    case broadcastProposal(Proposal)
    /// Publish a vote (`CouncilTopics.vote`).
    case broadcastVote(Vote)
    /// Start a timer; when it fires, hand back ``ConsensusEvent/timeout(_:)``. Timers are never
    /// cancelled: a stale one is ignored by the machine.
    case scheduleTimeout(ConsensusTimeout, afterMs: UInt64)
    /// Check a value in full as the block at `height` (every signature, every rule, on the state
    /// after height - 1), then hand back ``ConsensusEvent/validated(_:valid:)`` with its digest.
    case validate(ProposalValue, height: UInt64)
    /// This manager proposes at (height, round) and has no valid value: hand back
    /// ``ConsensusEvent/proposalValue(height:round:value:)`` with a block built on the state.
    case needProposal(height: UInt64, round: UInt64)
    /// The height is decided: apply the block with its certificate, publish the commit, then
    /// send ``ConsensusEvent/startHeight(_:)`` with the next height.
    case decide(Decision)
    /// A member equivocated: keep (and may publish) the two signed messages.
    case evidence(Evidence)
    /// f+1 validators are at `height` or above: the blocks below it are committed. Fetch and apply
    /// the ones this node lacks, then send ``ConsensusEvent/startHeight(_:)``.
    case behind(height: UInt64)
    /// An input was refused (bad signature, unknown sender, wrong channel, ...) or the node's
    /// signer failed; for the log.
    case diagnostic(ConsensusError)
}

/// A decided height: the value and the certificate made of 2f+1 precommits.
public struct Decision: Hashable, Sendable {
    /// The height.
    public var height: UInt64
    /// The round in which it was decided.
    public var round: UInt64
    /// The decided value.
    public var value: ProposalValue
    /// The precommits for the value in that round, in validator order: `CommitCertificate.verify` accepts it.
    public var certificate: CommitCertificate

    /// Makes a decision.
    public init(height: UInt64, round: UInt64, value: ProposalValue, certificate: CommitCertificate) {
        self.height = height
        self.round = round
        self.value = value
        self.certificate = certificate
    }
}

/// Proof that a member signed two conflicting messages for one height, round and step.
///
/// Wire form, deterministic CBOR: `[1, vote, vote]` or `[2, proposal, proposal]` (the messages'
/// own maps).
public enum Evidence: Hashable, Sendable {
    /// Two votes of one validator for one height, round and step, naming different blocks.
    case conflictingVotes(Vote, Vote)
    /// Two proposals of one manager for one height and round that differ.
    case conflictingProposals(Proposal, Proposal)

    /// The height it is about.
    public var height: UInt64 {
        switch self {
        case .conflictingVotes(let vote, _): vote.height
        case .conflictingProposals(let proposal, _): proposal.height
        }
    }

    /// What it convicts: one offender's one message slot (kind, member, height, round, and a
    /// vote's step). A node keeps one piece of evidence per slot: an offender who signs many
    /// conflicting messages for one slot is convicted once, not once per pair.
    public var slot: Hash256 {
        let fields: [CBOR] =
            switch self {
            case .conflictingVotes(let vote, _):
                [
                    .unsigned(1), .unsigned(UInt64(truncatingIfNeeded: vote.validator)), .unsigned(vote.height),
                    .unsigned(vote.round),
                    .unsigned(vote.step.rawValue),
                ]
            case .conflictingProposals(let proposal, _):
                [
                    .unsigned(2), .unsigned(UInt64(truncatingIfNeeded: proposal.proposer)), .unsigned(proposal.height),
                    .unsigned(proposal.round),
                ]
            }
        return Hash256.sha256(CBOR.array(fields).encoded())
    }

    /// The evidence in its wire form.
    public func encoded() -> [UInt8] {
        switch self {
        case .conflictingVotes(let a, let b): CBOR.array([.unsigned(1), a.cbor, b.cbor]).encoded()
        case .conflictingProposals(let a, let b): CBOR.array([.unsigned(2), a.cbor, b.cbor]).encoded()
        }
    }

    /// Decodes evidence strictly. The signatures are not checked here: see ``verify(channel:verifier:)``.
    /// - Parameters:
    ///   - bytes: the wire form.
    ///   - maxBytes: the most bytes accepted.
    /// - Throws: `ConsensusError.Code.malformed` naming what is wrong.
    public init(decoding bytes: [UInt8], maxBytes: Int = 1 << 22) throws(ConsensusError) {
        let limits = CBORLimits(
            maxDepth: 3, maxInputBytes: maxBytes, maxItems: 64, maxStringBytes: maxBytes, maxCollectionCount: 16,
            requireDeterministic: true)
        let item: CBOR
        do {
            item = try CBOR.decode(bytes, limits: limits)
        } catch {
            throw ConsensusError(.malformed, "evidence: \(error)")
        }
        guard let parts = item.arrayValue, parts.count == 3, let kind = parts[0].wireUInt else {
            throw ConsensusError(.malformed, "evidence is [kind, message, message]")
        }
        switch kind {
        case 1: self = .conflictingVotes(try Vote(cbor: parts[1]), try Vote(cbor: parts[2]))
        case 2: self = .conflictingProposals(try Proposal(cbor: parts[1]), try Proposal(cbor: parts[2]))
        default: throw ConsensusError(.malformed, "evidence kind \(kind) is neither 1 (votes) nor 2 (proposals)")
        }
    }

    /// Checks that the evidence proves equivocation: same channel, signer, height, round (and
    /// step), different content, both signatures valid.
    /// - Parameters:
    ///   - channel: the channel id.
    ///   - verifier: checks the signatures.
    /// - Returns: whether it does.
    public func verify(channel: String, verifier: any ConsensusVerifier) -> Bool {
        switch self {
        case .conflictingVotes(let a, let b):
            return a.channel == channel && b.channel == channel && a.validator == b.validator && a.height == b.height
                && a.round == b.round && a.step == b.step && a.blockHash != b.blockHash
                && verifier.isValidVoteSignature(a.signature, message: a.signingBytes, validator: a.validator)
                && verifier.isValidVoteSignature(b.signature, message: b.signingBytes, validator: b.validator)
        case .conflictingProposals(let a, let b):
            return a.channel == channel && b.channel == channel && a.proposer == b.proposer && a.height == b.height
                && a.round == b.round && !a.sameContent(as: b)
                && verifier.isValidProposalSignature(a.signature, message: a.signingBytes, manager: a.proposer)
                && verifier.isValidProposalSignature(b.signature, message: b.signingBytes, manager: b.proposer)
        }
    }
}
