public import MedLedgerCore

/// The council's consensus: Tendermint (Buchman, Kwon, Milosevic, "The latest gossip on BFT
/// consensus", 2018) as a deterministic state machine with no I/O, no clock and no threads.
///
/// Events go in through ``handle(_:)``; effects come out, to be executed by the shell in order
/// (docs/CONSENSUS.md). The same machine runs in three roles: a validator checks and votes; a
/// manager proposes in its turn and follows the votes to know its valid value; an observer only
/// learns commits. Line numbers in comments are those of the paper's Algorithm 1.
///
/// Departures from the paper, all safe with at most f faulty validators:
/// - Proposers are managers, not validators: `proposer(h, r) = managers[(h + r) mod m]`.
/// - A decision (line 49) needs 2f+1 precommits for a block hash and any proposal seen with that
///   hash; it does not wait for a local validity check, since f+1 correct validators checked the
///   block before precommitting it (the shell checks it again when it applies it). Managers and
///   observers never validate: they learn valid values from polkas, which hold f+1 correct prevotes.
/// - Nodes send their own votes and proposals of the height again every `retransmitMs`, which
///   stands in for the paper's gossip: a message lost before the network healed is made good.
public struct ConsensusMachine: Sendable {
    /// The channel's configuration.
    public let configuration: ConsensusConfiguration
    /// What this node is in the council.
    public let role: ConsensusRole
    private let verifier: any ConsensusVerifier

    /// The height being decided (0 before the first ``ConsensusEvent/startHeight(_:)``).
    public private(set) var height: UInt64 = 0
    /// The current round.
    public private(set) var round: UInt64 = 0
    /// The step in the current round.
    public private(set) var step: ConsensusStep = .propose
    /// The decision at the current height, once there is one (until the next height starts).
    public private(set) var decision: Decision?
    /// The round of the lock (Tendermint's `lockedRound`), or nil for -1.
    public private(set) var lockedRound: UInt64?
    /// The block hash locked on (`lockedValue`), or nil.
    public private(set) var lockedBlockHash: Hash256?
    /// The round of the newest polka seen (`validRound`), or nil for -1.
    public private(set) var validRound: UInt64?
    /// The value of that polka (`validValue`), or nil.
    public private(set) var validValue: ProposalValue?

    private var votes: [UInt64: RoundVotes] = [:]
    /// Per round, the proposals of its proposer: the first, and (from an equivocating proposer) a
    /// few others, since any of them may be the one with a polka.
    private var proposals: [UInt64: [Proposal]] = [:]
    private var values: [Hash256: ProposalValue] = [:]
    private var digestsByID: [Hash256: [Hash256]] = [:]
    private var validity: [Hash256: Bool] = [:]
    private var pendingValidation: Set<Hash256> = []
    private var ownVotes: [Vote] = []
    private var ownProposals: [Proposal] = []
    private var prevoteTimeoutRounds: Set<UInt64> = []
    private var precommitTimeoutRounds: Set<UInt64> = []
    private var polkaRounds: Set<UInt64> = []
    /// Rounds whose prevotes or proposals changed since a non-voting node last looked for a polka.
    private var polkaCandidates: Set<UInt64> = []
    private var relayedLocks: Set<UInt64> = []
    private var commitQuorums: [(round: UInt64, id: Hash256)] = []
    private var reportedEvidence: Set<EvidenceKey> = []
    private var awaitingValue: UInt64?
    private var retransmitTick: UInt64 = 0

    private var future: [UInt64: FutureHeight] = [:]
    private var highestSeen: [Int: UInt64] = [:]
    private var behindReported: UInt64 = 0

    private var restored: PersistedConsensusState?
    private let votingFloor: UInt64

    private var effects: [ConsensusEffect] = []

    private struct EvidenceKey: Hashable, Sendable {
        var sender: Int
        var round: UInt64
        var step: UInt8
    }

    private enum PrevoteChoice {
        /// For the value's check or the polka of its valid round.
        case wait
        /// For the value, or nil.
        case vote(Hash256?)
        /// Nil, because of the lock.
        case lockedOut
    }

    /// Makes a machine, fresh or from the state it persisted before a restart.
    ///
    /// A restored machine resumes that height when it gets ``ConsensusEvent/startHeight(_:)``
    /// with it: same round, same lock, its votes and proposals sent again and never signed anew;
    /// at any lower height it never votes.
    /// - Parameters:
    ///   - configuration: the channel's configuration.
    ///   - role: validator, manager or observer.
    ///   - verifier: checks the signatures of others.
    ///   - state: the last state this node persisted, if any.
    /// - Throws: `ConsensusError` (`.invalidConfiguration`, `.invalidState`) naming what is wrong.
    public init(
        configuration: ConsensusConfiguration, role: ConsensusRole, verifier: any ConsensusVerifier,
        restoring state: PersistedConsensusState? = nil
    ) throws(ConsensusError) {
        switch role {
        case .validator(let index, _):
            guard index >= 0, index < configuration.validatorCount else {
                throw ConsensusError(.invalidConfiguration, "validator index \(index) is not in the council")
            }
        case .manager(let index, _):
            guard index >= 0, index < configuration.managerCount else {
                throw ConsensusError(.invalidConfiguration, "manager index \(index) is not among the managers")
            }
        case .observer:
            break
        }
        self.configuration = configuration
        self.role = role
        self.verifier = verifier
        if let state {
            try Self.check(state, configuration: configuration, role: role)
        }
        restored = state
        votingFloor = state?.height ?? 0
    }

    private static func check(
        _ state: PersistedConsensusState, configuration: ConsensusConfiguration, role: ConsensusRole
    )
        throws(ConsensusError)
    {
        guard state.height >= 1, state.height <= ConsensusBounds.maxHeight, state.round <= ConsensusBounds.maxRound
        else { throw ConsensusError(.invalidState, "the persisted height or round is out of range") }
        guard (state.lockedRound == nil) == (state.lockedBlockHash == nil) else {
            throw ConsensusError(
                .invalidState, "the persisted lock has a round without a block or a block without a round")
        }
        var slots = Set<String>()
        for vote in state.votes {
            guard vote.channel == configuration.channel, vote.height == state.height,
                vote.validator == role.validatorIndex, vote.round <= state.round,
                slots.insert("\(vote.round)/\(vote.step.rawValue)").inserted
            else {
                throw ConsensusError(
                    .invalidState, "a persisted vote is not this validator's, not at height \(state.height), or repeats"
                )
            }
        }
        var rounds = Set<UInt64>()
        for proposal in state.proposals {
            guard proposal.channel == configuration.channel, proposal.height == state.height,
                proposal.proposer == role.managerIndex,
                configuration.proposer(height: proposal.height, round: proposal.round) == proposal.proposer,
                rounds.insert(proposal.round).inserted
            else {
                throw ConsensusError(
                    .invalidState,
                    "a persisted proposal is not this manager's, not at height \(state.height), or repeats")
            }
        }
        if let polka = state.polka {
            let proposal = polka.proposal
            guard proposal.channel == configuration.channel, proposal.height == state.height,
                proposal.proposer >= 0, proposal.proposer < configuration.managerCount,
                polka.prevotes.allSatisfy({
                    $0.channel == configuration.channel && $0.height == state.height && $0.round == proposal.round
                        && $0.step == .prevote && $0.blockHash == proposal.value.id && $0.validator >= 0
                        && $0.validator < configuration.validatorCount
                })
            else { throw ConsensusError(.invalidState, "the persisted polka is not one of height \(state.height)") }
        }
    }

    // MARK: - Input

    /// Handles one event and returns the effects, to be executed in order (a `.persist` durably
    /// before anything after it).
    /// - Parameter event: what happened.
    /// - Returns: what to do.
    public mutating func handle(_ event: ConsensusEvent) -> [ConsensusEffect] {
        effects = []
        switch event {
        case .startHeight(let height): startHeight(height)
        case .proposal(let proposal): receive(proposal)
        case .vote(let vote): receive(vote)
        case .timeout(let timeout): fire(timeout)
        case .validated(let digest, let valid): validated(digest, valid: valid)
        case .proposalValue(let height, let round, let value): proposalValue(height: height, round: round, value: value)
        case .commit(let certificate, let value): commit(certificate, value: value)
        }
        let out = effects
        effects = []
        return out
    }

    private var quorum: Int { configuration.quorum }
    private var canVote: Bool { role.validatorIndex != nil && height >= votingFloor }
    private var running: Bool { height > 0 && decision == nil }

    private mutating func diagnose(_ code: ConsensusError.Code, _ message: String) {
        effects.append(.diagnostic(ConsensusError(code, message)))
    }

    private mutating func schedule(_ kind: ConsensusTimeout.Kind, round: UInt64) {
        effects.append(
            .scheduleTimeout(
                ConsensusTimeout(kind, height: height, round: round),
                afterMs: configuration.timeouts.duration(kind, round: round)))
    }

    // MARK: - Heights and rounds

    private mutating func startHeight(_ newHeight: UInt64) {
        guard newHeight >= 1, newHeight <= ConsensusBounds.maxHeight else {
            diagnose(.outOfRange, "height \(newHeight) is out of range")
            return
        }
        guard newHeight > height else {
            diagnose(.outOfRange, "height \(newHeight) is not above the current height \(height)")
            return
        }
        height = newHeight
        round = 0
        step = .propose
        decision = nil
        lockedRound = nil
        lockedBlockHash = nil
        validRound = nil
        validValue = nil
        votes = [:]
        proposals = [:]
        values = [:]
        digestsByID = [:]
        validity = [:]
        pendingValidation = []
        ownVotes = []
        ownProposals = []
        prevoteTimeoutRounds = []
        precommitTimeoutRounds = []
        polkaRounds = []
        polkaCandidates = []
        relayedLocks = []
        commitQuorums = []
        reportedEvidence = []
        awaitingValue = nil
        let buffered = future[newHeight]?.messages ?? []
        future = future.filter { $0.key > newHeight }

        if let state = restored, state.height <= newHeight {
            restored = nil
            if state.height == newHeight {
                resume(state)
            } else {
                startRound(0)
            }
        } else {
            startRound(0)
        }
        if case .observer = role {
        } else {
            retransmitTick = 0
            schedule(.retransmit, round: retransmitTick)
        }
        for message in buffered where running {
            switch message {
            case .vote(let vote): admit(vote, verified: true)
            case .proposal(let proposal): admit(proposal, verified: true)
            }
        }
        progress()
    }

    /// Resumes a height from the persisted state: lock, valid value, own messages, round.
    private mutating func resume(_ state: PersistedConsensusState) {
        round = state.round
        lockedRound = state.lockedRound
        lockedBlockHash = state.lockedBlockHash
        if let value = state.validValue, let validRound = state.validRound {
            self.validRound = validRound
            validValue = value
            store(value)
        }
        for vote in state.votes {
            record(vote)
            ownVotes.append(vote)
        }
        for proposal in state.proposals {
            proposals[proposal.round, default: []].append(proposal)
            polkaCandidates.insert(proposal.round)
            store(proposal.value)
            ownProposals.append(proposal)
        }
        if let polka = state.polka {
            if !(proposals[polka.proposal.round] ?? []).contains(where: { $0.sameContent(as: polka.proposal) }) {
                proposals[polka.proposal.round, default: []].append(polka.proposal)
                polkaCandidates.insert(polka.proposal.round)
            }
            store(polka.proposal.value)
            for vote in polka.prevotes { admit(vote, verified: true) }
        }
        startRound(state.round)
        if let index = role.validatorIndex, let own = votes[round] {
            if own.precommits.first(index) != nil {
                step = .precommit
            } else if own.prevotes.first(index) != nil {
                step = .prevote
            }
        }
        for vote in ownVotes { effects.append(.broadcastVote(vote)) }
    }

    /// StartRound (line 11).
    private mutating func startRound(_ newRound: UInt64) {
        round = newRound
        step = .propose
        awaitingValue = nil
        // Rounds only go up, so own messages of rounds before the previous one are never signed
        // again nor needed by anyone (a lock's polka is kept apart): persist and resend the rest.
        ownVotes.removeAll { $0.round + 1 < newRound }
        ownProposals.removeAll { $0.round + 1 < newRound }
        if let index = role.managerIndex, configuration.proposer(height: height, round: newRound) == index {
            if let own = ownProposals.first(where: { $0.round == newRound }) {
                effects.append(.broadcastProposal(own))
            } else if let value = validValue, let validRound, validRound < newRound {
                propose(value, validRound: validRound)
            } else {
                awaitingValue = newRound
                effects.append(.needProposal(height: height, round: newRound))
            }
        }
        if canVote {
            schedule(.propose, round: newRound)
        }
    }

    /// Runs the upon-rules until none fires.
    private mutating func progress() {
        while running {
            if decideIfPossible() { return }
            if !canVote { updateValidValue() }
            if let target = roundToSkipTo() {
                startRound(target)
                continue
            }
            if !applyStepRules() { return }
        }
    }

    /// Line 55: f+1 validators sent messages of a higher round of this height.
    private func roundToSkipTo() -> UInt64? {
        var target: UInt64?
        for (voteRound, roundVotes) in votes
        where voteRound > round && roundVotes.senders.count > configuration.faultTolerance {
            target = max(target ?? voteRound, voteRound)
        }
        return target
    }

    /// Lines 22–48 for the current round; returns whether the step or lock changed.
    private mutating func applyStepRules() -> Bool {
        let current = votes[round] ?? RoundVotes()

        // Lines 22 and 28: prevote on the round's (first) proposal.
        if step == .propose, canVote, let proposal = proposals[round]?.first {
            switch prevoteChoice(for: proposal) {
            case .wait:
                break
            case .vote(let choice):
                castVote(.prevote, choice)
                step = .prevote
                return true
            case .lockedOut:
                relayLock()
                castVote(.prevote, nil)
                step = .prevote
                return true
            }
        }
        // Line 34: 2f+1 prevotes of any kind start the prevote timeout.
        if step == .prevote, current.prevotes.total >= quorum, !prevoteTimeoutRounds.contains(round) {
            prevoteTimeoutRounds.insert(round)
            if canVote { schedule(.prevote, round: round) }
        }
        // Line 36: a polka for a proposal of the round locks a validator that prevoted (non-voting
        // nodes take their valid value in `updateValidValue`).
        if canVote, !polkaRounds.contains(round),
            let proposal = proposals[round]?.first(where: { current.prevotes.count($0.value.id) >= quorum })
        {
            if step == .precommit {
                // Too late to lock; a validator never proposes, so its valid value does not matter.
                polkaRounds.insert(round)
            } else if step == .prevote, let valid = validity(of: proposal.value), valid {
                polkaRounds.insert(round)
                lockedRound = round
                lockedBlockHash = proposal.value.id
                castVote(.precommit, proposal.value.id)
                step = .precommit
                setValid(proposal.value, round: round)
                return true
            }
        }
        // Line 44: a polka for nil precommits nil.
        if step == .prevote, canVote, current.prevotes.count(nil) >= quorum {
            castVote(.precommit, nil)
            step = .precommit
            return true
        }
        // Line 47: 2f+1 precommits of any kind start the precommit timeout.
        if current.precommits.total >= quorum, !precommitTimeoutRounds.contains(round) {
            precommitTimeoutRounds.insert(round)
            schedule(.precommit, round: round)
        }
        return false
    }

    /// What to prevote for the round's proposal (lines 22–33), or wait (for its validity or its polka).
    private mutating func prevoteChoice(for proposal: Proposal) -> PrevoteChoice {
        let id = proposal.value.id
        let lockAllows: Bool
        if let validRound = proposal.validRound {
            guard validRound < round, (votes[validRound]?.prevotes.count(id) ?? 0) >= quorum else { return .wait }
            lockAllows = (lockedRound.map { $0 <= validRound } ?? true) || lockedBlockHash == id
        } else {
            lockAllows = lockedRound == nil || lockedBlockHash == id
        }
        guard lockAllows else { return .lockedOut }
        guard let valid = validity(of: proposal.value) else { return .wait }
        return .vote(valid ? id : nil)
    }

    /// A proposal ignores this validator's lock (another value, no valid round at or above the
    /// lock's): the proposer has not seen the lock's polka, maybe because an equivocator showed it
    /// another vote. Send the lock's proposal and prevotes, once per round, so that the managers
    /// learn the valid value and re-propose it.
    private mutating func relayLock() {
        guard let lockedRound, let lockedBlockHash, relayedLocks.insert(round).inserted,
            let polka = polka(round: lockedRound, id: lockedBlockHash)
        else { return }
        effects.append(.broadcastProposal(polka.proposal))
        for vote in polka.prevotes { effects.append(.broadcastVote(vote)) }
    }

    /// The validity of a value, asking the shell to check it the first time.
    private mutating func validity(of value: ProposalValue) -> Bool? {
        if let known = validity[value.digest] { return known }
        if !pendingValidation.contains(value.digest) {
            pendingValidation.insert(value.digest)
            effects.append(.validate(value, height: height))
        }
        return nil
    }

    /// A non-voting node's valid value (line 36, for any round up to the current one): the
    /// proposal of the highest round with a polka, when that round is above its valid round.
    /// Messages arrive in any order and rounds can be skipped, so every round whose prevotes or
    /// proposals changed is looked at again.
    private mutating func updateValidValue() {
        guard !polkaCandidates.isEmpty else { return }
        let ready = polkaCandidates.filter { $0 <= round }
        polkaCandidates.subtract(ready)
        for polkaRound in ready.sorted(by: >) where validRound.map({ polkaRound > $0 }) ?? true {
            guard let roundVotes = votes[polkaRound],
                let proposal = proposals[polkaRound]?.first(where: { roundVotes.prevotes.count($0.value.id) >= quorum })
            else { continue }
            setValid(proposal.value, round: polkaRound)
            return
        }
    }

    private mutating func setValid(_ value: ProposalValue, round polkaRound: UInt64) {
        validValue = value
        validRound = polkaRound
        if role.managerIndex != nil { persist() }
    }

    /// Line 49: 2f+1 precommits of one round for a block whose value is known.
    private mutating func decideIfPossible() -> Bool {
        for quorumRound in commitQuorums {
            guard let roundVotes = votes[quorumRound.round],
                roundVotes.precommits.count(quorumRound.id) >= quorum
            else { continue }
            guard let value = knownValue(quorumRound.id) else {
                reportBehind(height + 1)
                continue
            }
            decide(
                round: quorumRound.round, value: value,
                signatures: roundVotes.precommitSignatures(for: quorumRound.id))
            return true
        }
        return false
    }

    private mutating func decide(round decidedRound: UInt64, value: ProposalValue, signatures: [ValidatorSignature]) {
        let certificate = CommitCertificate(
            channel: configuration.channel, height: height, round: decidedRound, blockHash: value.id,
            signatures: signatures)
        let decided = Decision(height: height, round: decidedRound, value: value, certificate: certificate)
        decision = decided
        effects.append(.decide(decided))
    }

    /// A value with this block hash: one found valid if there is one, else the first seen.
    private func knownValue(_ id: Hash256) -> ProposalValue? {
        guard let digests = digestsByID[id] else { return nil }
        let digest = digests.first { validity[$0] == true } ?? digests[0]
        return values[digest]
    }

    private mutating func store(_ value: ProposalValue) {
        guard values[value.digest] == nil else { return }
        values[value.digest] = value
        digestsByID[value.id, default: []].append(value.digest)
    }

    // MARK: - Own messages

    private mutating func persist() {
        let isManager = role.managerIndex != nil
        let polka: Polka?
        if isManager {
            polka = validRound.flatMap { self.polka(round: $0, id: validValue?.id) }
        } else {
            polka = lockedRound.flatMap { self.polka(round: $0, id: lockedBlockHash) }
        }
        effects.append(
            .persist(
                PersistedConsensusState(
                    height: height, round: round, lockedRound: lockedRound, lockedBlockHash: lockedBlockHash,
                    validRound: isManager ? validRound : nil, validValue: isManager ? validValue : nil,
                    votes: ownVotes, proposals: ownProposals, polka: polka)))
    }

    /// The proposal of a round and its prevotes for a block, if the machine holds them.
    private func polka(round polkaRound: UInt64, id: Hash256?) -> Polka? {
        guard let id, let proposal = proposals[polkaRound]?.first(where: { $0.value.id == id }) else { return nil }
        return Polka(proposal: proposal, prevotes: votes[polkaRound]?.prevotes.votes(for: id) ?? [])
    }

    /// Sends the prevotes of a polka (after a re-proposal, or to a proposer that ignores a lock).
    private mutating func sendPrevotes(round polkaRound: UInt64, id: Hash256) {
        for vote in votes[polkaRound]?.prevotes.votes(for: id) ?? [] { effects.append(.broadcastVote(vote)) }
    }

    /// Signs and sends a vote, unless this node already voted in this round and step (then it
    /// sends that vote again: a node never signs two votes for one height, round and step).
    private mutating func castVote(_ voteStep: VoteStep, _ blockHash: Hash256?) {
        guard canVote, case .validator(let index, let signer) = role else { return }
        if let existing = votes[round]?[voteStep].first(index) {
            effects.append(.broadcastVote(existing))
            return
        }
        var vote = Vote(
            channel: configuration.channel, height: height, round: round, step: voteStep, blockHash: blockHash,
            validator: index, signature: [])
        do {
            vote.signature = try signer.sign(vote.signingBytes)
        } catch {
            diagnose(.signingFailed, "signing the \(voteStep) of height \(height) round \(round) failed: \(error)")
            return
        }
        record(vote)
        ownVotes.append(vote)
        persist()
        effects.append(.broadcastVote(vote))
    }

    private mutating func propose(_ value: ProposalValue, validRound: UInt64?) {
        guard case .manager(let index, let signer) = role else { return }
        var proposal = Proposal(
            channel: configuration.channel, height: height, round: round, validRound: validRound, proposer: index,
            value: value, signature: [])
        do {
            proposal.signature = try signer.sign(proposal.signingBytes)
        } catch {
            diagnose(.signingFailed, "signing the proposal of height \(height) round \(round) failed: \(error)")
            return
        }
        proposals[round, default: []].append(proposal)
        polkaCandidates.insert(round)
        store(value)
        ownProposals.append(proposal)
        persist()
        effects.append(.broadcastProposal(proposal))
        // A re-proposal carries its polka, so that every validator can check line 28 at once.
        if let validRound { sendPrevotes(round: validRound, id: value.id) }
    }

    private mutating func record(_ vote: Vote) {
        let count = votes[vote.round, default: RoundVotes()].add(vote)
        if vote.step == .prevote { polkaCandidates.insert(vote.round) }
        if vote.step == .precommit, let id = vote.blockHash, count == quorum {
            commitQuorums.append((vote.round, id))
        }
    }

    // MARK: - Events

    private mutating func fire(_ timeout: ConsensusTimeout) {
        guard running, timeout.height == height else { return }
        switch timeout.kind {
        case .propose:
            // Line 57.
            guard timeout.round == round, step == .propose else { return }
            castVote(.prevote, nil)
            step = .prevote
        case .prevote:
            // Line 61.
            guard timeout.round == round, step == .prevote else { return }
            castVote(.precommit, nil)
            step = .precommit
        case .precommit:
            // Line 65.
            guard timeout.round == round, round < ConsensusBounds.maxRound else { return }
            startRound(round + 1)
        case .retransmit:
            guard timeout.round == retransmitTick else { return }
            for vote in ownVotes { effects.append(.broadcastVote(vote)) }
            for proposal in ownProposals {
                effects.append(.broadcastProposal(proposal))
                if let validRound = proposal.validRound { sendPrevotes(round: validRound, id: proposal.value.id) }
            }
            retransmitTick += 1
            schedule(.retransmit, round: retransmitTick)
            return
        }
        progress()
    }

    private mutating func validated(_ digest: Hash256, valid: Bool) {
        guard pendingValidation.remove(digest) != nil else { return }
        validity[digest] = valid
        progress()
    }

    private mutating func proposalValue(height valueHeight: UInt64, round valueRound: UInt64, value: ProposalValue) {
        guard running, valueHeight == height, valueRound == round, awaitingValue == valueRound else { return }
        awaitingValue = nil
        if let validValue, let validRound, validRound < round {
            propose(validValue, validRound: validRound)
        } else {
            propose(value, validRound: nil)
        }
        progress()
    }

    private mutating func commit(_ certificate: CommitCertificate, value: ProposalValue?) {
        guard height > 0 else { return }
        guard certificate.channel == configuration.channel else {
            diagnose(.wrongChannel, "a certificate for channel '\(certificate.channel)'")
            return
        }
        guard certificate.height > height || (certificate.height == height && decision == nil) else { return }
        guard let signatures = verifiedPrecommits(certificate) else {
            diagnose(
                .invalidCertificate,
                "the certificate for height \(certificate.height) has fewer than \(quorum) valid distinct precommits")
            return
        }
        guard certificate.height == height else {
            if certificate.height < ConsensusBounds.maxHeight { reportBehind(certificate.height + 1) }
            return
        }
        if let value {
            guard value.id == certificate.blockHash else {
                diagnose(.invalidCertificate, "the block given with the certificate has another hash")
                return
            }
            store(value)
        }
        guard let known = knownValue(certificate.blockHash) else {
            reportBehind(height + 1)
            return
        }
        decide(round: certificate.round, value: known, signatures: signatures)
    }

    /// The certificate's valid precommits, one per council member in index order, if they are 2f+1.
    /// Only the first entry of each member is tried, so a hostile certificate costs at most n checks.
    private func verifiedPrecommits(_ certificate: CommitCertificate) -> [ValidatorSignature]? {
        let message = certificate.signingBytes
        var tried = Set<Int>()
        var valid: [ValidatorSignature] = []
        for entry in certificate.signatures
        where entry.validator >= 0 && entry.validator < configuration.validatorCount
            && tried.insert(entry.validator).inserted
        {
            if verifier.isValidVoteSignature(entry.signature, message: message, validator: entry.validator) {
                valid.append(entry)
            }
        }
        guard valid.count >= quorum else { return nil }
        return valid.sorted { $0.validator < $1.validator }
    }

    private mutating func reportBehind(_ behindHeight: UInt64) {
        guard behindHeight > behindReported, behindHeight > height else { return }
        behindReported = behindHeight
        effects.append(.behind(height: behindHeight))
    }

    // MARK: - Messages from the network

    private mutating func receive(_ proposal: Proposal) {
        guard height > 0 else { return }
        guard proposal.channel == configuration.channel else {
            diagnose(.wrongChannel, "a proposal for channel '\(proposal.channel)'")
            return
        }
        guard proposal.proposer >= 0, proposal.proposer < configuration.managerCount else {
            diagnose(.unknownSender, "a proposal from manager index \(proposal.proposer)")
            return
        }
        guard proposal.height >= 1, proposal.height <= ConsensusBounds.maxHeight,
            proposal.round <= ConsensusBounds.maxRound, proposal.validRound.map({ $0 < proposal.round }) ?? true
        else {
            diagnose(.outOfRange, "a proposal with height \(proposal.height), round \(proposal.round)")
            return
        }
        guard configuration.proposer(height: proposal.height, round: proposal.round) == proposal.proposer else {
            diagnose(
                .wrongProposer,
                "manager \(proposal.proposer) is not the proposer of height \(proposal.height) round \(proposal.round)")
            return
        }
        if proposal.height < height { return }
        if proposal.height > height {
            buffer(proposal)
            return
        }
        guard decision == nil else { return }
        admit(proposal, verified: false)
        progress()
    }

    private mutating func receive(_ vote: Vote) {
        guard height > 0 else { return }
        guard vote.channel == configuration.channel else {
            diagnose(.wrongChannel, "a vote for channel '\(vote.channel)'")
            return
        }
        guard vote.validator >= 0, vote.validator < configuration.validatorCount else {
            diagnose(.unknownSender, "a vote from validator index \(vote.validator)")
            return
        }
        guard vote.height >= 1, vote.height <= ConsensusBounds.maxHeight, vote.round <= ConsensusBounds.maxRound else {
            diagnose(.outOfRange, "a vote with height \(vote.height), round \(vote.round)")
            return
        }
        if vote.height < height { return }
        if vote.height > height {
            buffer(vote)
            return
        }
        guard decision == nil else { return }
        admit(vote, verified: false)
        progress()
    }

    private func isValidSignature(_ vote: Vote) -> Bool {
        verifier.isValidVoteSignature(vote.signature, message: vote.signingBytes, validator: vote.validator)
    }

    private func isValidSignature(_ proposal: Proposal) -> Bool {
        verifier.isValidProposalSignature(
            proposal.signature, message: proposal.signingBytes, manager: proposal.proposer)
    }

    private mutating func reportEvidence(_ evidence: Evidence, key: EvidenceKey) {
        guard reportedEvidence.insert(key).inserted else { return }
        effects.append(.evidence(evidence))
    }

    /// Takes a proposal of the current height (its signature checked unless `verified`).
    private mutating func admit(_ proposal: Proposal, verified: Bool) {
        var list = proposals[proposal.round] ?? []
        guard !list.contains(where: { $0.sameContent(as: proposal) }) else { return }
        guard proposal.round <= round || proposal.round - round <= configuration.limits.futureProposalRounds else {
            return
        }
        guard verified || isValidSignature(proposal) else {
            diagnose(.badSignature, "a proposal for height \(height) round \(proposal.round)")
            return
        }
        if let first = list.first {
            reportEvidence(
                .conflictingProposals(first, proposal),
                key: EvidenceKey(sender: proposal.proposer, round: proposal.round, step: 0))
            // An equivocating proposer's other proposals: keep a few, and make room for one that
            // f+1 validators prevoted (some correct one did) in place of one nobody correct did.
            if list.count > configuration.limits.conflictingVotes {
                let prevotes = votes[proposal.round]?.prevotes ?? StepVotes()
                let f = configuration.faultTolerance
                let supported = { (candidate: Proposal) in prevotes.count(candidate.value.id) > f }
                guard supported(proposal), let victim = list.indices.dropFirst().first(where: { !supported(list[$0]) })
                else { return }
                list.remove(at: victim)
            }
        }
        list.append(proposal)
        proposals[proposal.round] = list
        store(proposal.value)
        polkaCandidates.insert(proposal.round)
    }

    /// Takes a vote of the current height (its signature checked unless `verified`).
    private mutating func admit(_ vote: Vote, verified: Bool) {
        let slot = votes[vote.round]?[vote.step]
        if let first = slot?.first(vote.validator) {
            guard slot?.contains(vote.validator, vote.blockHash) == false else { return }
            guard verified || isValidSignature(vote) else {
                diagnose(.badSignature, "a vote of validator \(vote.validator) for height \(height)")
                return
            }
            reportEvidence(
                .conflictingVotes(first, vote),
                key: EvidenceKey(sender: vote.validator, round: vote.round, step: UInt8(vote.step.rawValue)))
            admitConflicting(vote)
            return
        }
        guard verified || isValidSignature(vote) else {
            diagnose(.badSignature, "a vote of validator \(vote.validator) for height \(height)")
            return
        }
        if vote.round > round {
            // Keep at most `futureRounds` rounds above the current one per validator, the highest.
            var theirs: [UInt64] = []
            for (voteRound, roundVotes) in votes where voteRound > round && roundVotes.senders.contains(vote.validator)
            {
                theirs.append(voteRound)
            }
            if !theirs.contains(vote.round), theirs.count >= configuration.limits.futureRounds {
                guard let lowest = theirs.min(), lowest < vote.round else { return }
                votes[lowest]?.removeAll(from: vote.validator)
            }
        }
        record(vote)
    }

    /// Counts an equivocator's vote for another value too (the paper counts every message), keeping
    /// at most `conflictingVotes` of them per slot: one for a value with a known proposal displaces
    /// one for an unknown value first, so a flood of votes for made-up blocks can't hide a polka.
    private mutating func admitConflicting(_ vote: Vote) {
        guard let slot = votes[vote.round]?[vote.step] else { return }
        let extras = slot.votes(of: vote.validator).dropFirst()
        if extras.count >= configuration.limits.conflictingVotes {
            let digests = digestsByID
            let known = { (hash: Hash256?) in hash.map { digests[$0] != nil } ?? false }
            if let victim = extras.first(where: { !known($0.blockHash) }) {
                votes[vote.round]?[vote.step].remove(vote.validator, victim.blockHash)
            } else if known(vote.blockHash), let oldest = extras.first {
                votes[vote.round]?[vote.step].remove(vote.validator, oldest.blockHash)
            } else {
                return
            }
        }
        record(vote)
    }

    /// Keeps a signed proposal for a coming height, within the limits.
    private mutating func buffer(_ proposal: Proposal) {
        guard proposal.height - height <= configuration.limits.futureHeights else { return }
        var pending = future[proposal.height] ?? FutureHeight()
        guard !pending.contains(proposal),
            pending.hasRoomForProposal(limit: configuration.limits.bufferedPerSender)
        else { return }
        guard isValidSignature(proposal) else {
            diagnose(.badSignature, "a proposal for height \(proposal.height) round \(proposal.round)")
            return
        }
        pending.add(proposal)
        future[proposal.height] = pending
    }

    /// Keeps a signed vote for a coming height, within the limits, and notices when f+1
    /// validators are ahead.
    private mutating func buffer(_ vote: Vote) {
        let buffers = vote.height - height <= configuration.limits.futureHeights
        var pending = future[vote.height] ?? FutureHeight()
        let wanted =
            buffers && !pending.contains(vote)
            && pending.hasRoom(forVoteFrom: vote.validator, limit: configuration.limits.bufferedPerSender)
        let higher = vote.height > (highestSeen[vote.validator] ?? 0)
        guard wanted || higher else { return }
        guard isValidSignature(vote) else {
            diagnose(.badSignature, "a vote of validator \(vote.validator) for height \(vote.height)")
            return
        }
        if wanted {
            pending.add(vote)
            future[vote.height] = pending
        }
        if higher {
            highestSeen[vote.validator] = vote.height
            let heights = highestSeen.values.sorted(by: >)
            let ahead = configuration.faultTolerance
            if heights.count > ahead {
                let reached = heights[ahead]
                // After a decision the next height is expected; anything beyond it means this node is behind.
                if reached > height + 1 || (reached == height + 1 && decision == nil) {
                    reportBehind(reached)
                }
            }
        }
    }
}
