import MedLedgerCore

/// Counts of votes of one step in one round, by what they name.
struct Tally: Sendable {
    private(set) var total = 0
    private(set) var nilCount = 0
    private var byHash: [Hash256: Int] = [:]

    func count(_ hash: Hash256?) -> Int {
        guard let hash else { return nilCount }
        return byHash[hash] ?? 0
    }

    /// Adds a vote and returns the new count for what it names.
    mutating func add(_ hash: Hash256?) -> Int {
        total += 1
        guard let hash else {
            nilCount += 1
            return nilCount
        }
        let count = (byHash[hash] ?? 0) + 1
        byHash[hash] = count
        return count
    }

    mutating func remove(_ hash: Hash256?) {
        total -= 1
        guard let hash else {
            nilCount -= 1
            return
        }
        let count = (byHash[hash] ?? 1) - 1
        byHash[hash] = count == 0 ? nil : count
    }
}

/// The votes of one round at the current height: at most one prevote and one precommit per
/// validator (the first that arrived; a conflicting second one is evidence, not a vote).
struct RoundVotes: Sendable {
    private(set) var prevotes: [Int: Vote] = [:]
    private(set) var precommits: [Int: Vote] = [:]
    private(set) var prevoteTally = Tally()
    private(set) var precommitTally = Tally()
    /// The validators with any vote in this round.
    private(set) var senders: Set<Int> = []

    func vote(_ validator: Int, _ step: VoteStep) -> Vote? {
        step == .prevote ? prevotes[validator] : precommits[validator]
    }

    /// Adds a vote whose slot is empty and returns the new count for what it names.
    mutating func add(_ vote: Vote) -> Int {
        senders.insert(vote.validator)
        switch vote.step {
        case .prevote:
            prevotes[vote.validator] = vote
            return prevoteTally.add(vote.blockHash)
        case .precommit:
            precommits[vote.validator] = vote
            return precommitTally.add(vote.blockHash)
        }
    }

    /// Drops a validator's votes of this round.
    mutating func removeAll(from validator: Int) {
        if let vote = prevotes.removeValue(forKey: validator) { prevoteTally.remove(vote.blockHash) }
        if let vote = precommits.removeValue(forKey: validator) { precommitTally.remove(vote.blockHash) }
        senders.remove(validator)
    }

    /// The precommits for a block, in validator order, as certificate entries.
    func precommitSignatures(for hash: Hash256) -> [ValidatorSignature] {
        precommits.values.filter { $0.blockHash == hash }.sorted { $0.validator < $1.validator }.map {
            ValidatorSignature(validator: $0.validator, signature: $0.signature)
        }
    }
}

/// Messages that arrived for a height above the current one, kept in arrival order.
struct FutureHeight: Sendable {
    enum Message: Sendable {
        case proposal(Proposal)
        case vote(Vote)
    }

    struct VoteKey: Hashable, Sendable {
        var validator: Int
        var round: UInt64
        var step: VoteStep
        var blockHash: Hash256?
    }

    struct ProposalKey: Hashable, Sendable {
        var round: UInt64
        var validRound: UInt64?
        var digest: Hash256
    }

    private(set) var messages: [Message] = []
    private var perValidator: [Int: Int] = [:]
    private var votes: Set<VoteKey> = []
    private var proposals: Set<ProposalKey> = []

    func contains(_ vote: Vote) -> Bool {
        votes.contains(
            VoteKey(validator: vote.validator, round: vote.round, step: vote.step, blockHash: vote.blockHash))
    }

    func contains(_ proposal: Proposal) -> Bool {
        proposals.contains(
            ProposalKey(round: proposal.round, validRound: proposal.validRound, digest: proposal.value.digest))
    }

    func hasRoom(forVoteFrom validator: Int, limit: Int) -> Bool { (perValidator[validator] ?? 0) < limit }

    func hasRoomForProposal(limit: Int) -> Bool { proposals.count < limit }

    mutating func add(_ vote: Vote) {
        votes.insert(VoteKey(validator: vote.validator, round: vote.round, step: vote.step, blockHash: vote.blockHash))
        perValidator[vote.validator, default: 0] += 1
        messages.append(.vote(vote))
    }

    mutating func add(_ proposal: Proposal) {
        proposals.insert(
            ProposalKey(round: proposal.round, validRound: proposal.validRound, digest: proposal.value.digest))
        messages.append(.proposal(proposal))
    }
}
