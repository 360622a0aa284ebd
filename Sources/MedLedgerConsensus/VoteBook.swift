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

/// The votes of one step in one round. As in the paper, every signed message counts: a
/// validator that equivocates counts once toward each value it voted for (quorum intersection
/// keeps that safe with at most f of them), so no correct node misses a polka that another
/// correct node saw. Its first vote stays first (it is the one certificates and evidence use);
/// the conflicting ones are bounded by the machine.
struct StepVotes: Sendable {
    /// Per validator, its votes with distinct block hashes, in arrival order.
    private(set) var slots: [Int: [Vote]] = [:]
    private var tally = Tally()

    /// The validators with any vote of this step.
    var total: Int { slots.count }

    func count(_ hash: Hash256?) -> Int { tally.count(hash) }

    func first(_ validator: Int) -> Vote? { slots[validator]?.first }

    func votes(of validator: Int) -> [Vote] { slots[validator] ?? [] }

    func contains(_ validator: Int, _ hash: Hash256?) -> Bool {
        slots[validator]?.contains { $0.blockHash == hash } ?? false
    }

    /// Adds a vote for a hash the validator has not voted for yet; returns the new count for it.
    mutating func add(_ vote: Vote) -> Int {
        slots[vote.validator, default: []].append(vote)
        return tally.add(vote.blockHash)
    }

    mutating func remove(_ validator: Int, _ hash: Hash256?) {
        guard var list = slots[validator], let index = list.firstIndex(where: { $0.blockHash == hash }) else { return }
        list.remove(at: index)
        tally.remove(hash)
        slots[validator] = list.isEmpty ? nil : list
    }

    mutating func removeAll(_ validator: Int) {
        for vote in slots.removeValue(forKey: validator) ?? [] { tally.remove(vote.blockHash) }
    }

    /// Every validator's vote for a hash, in validator order.
    func votes(for hash: Hash256?) -> [Vote] {
        slots.values.compactMap { list in list.first { $0.blockHash == hash } }.sorted { $0.validator < $1.validator }
    }
}

/// The votes of one round at the current height.
struct RoundVotes: Sendable {
    var prevotes = StepVotes()
    var precommits = StepVotes()
    /// The validators with any vote in this round.
    private(set) var senders: Set<Int> = []

    subscript(step: VoteStep) -> StepVotes {
        get { step == .prevote ? prevotes : precommits }
        set {
            if step == .prevote { prevotes = newValue } else { precommits = newValue }
        }
    }

    /// Adds a vote whose (validator, hash) is new in its step; returns the new count for its hash.
    mutating func add(_ vote: Vote) -> Int {
        senders.insert(vote.validator)
        return self[vote.step].add(vote)
    }

    /// Drops a validator's votes of this round.
    mutating func removeAll(from validator: Int) {
        prevotes.removeAll(validator)
        precommits.removeAll(validator)
        senders.remove(validator)
    }

    /// The precommits for a block, in validator order, as certificate entries.
    func precommitSignatures(for hash: Hash256) -> [ValidatorSignature] {
        precommits.votes(for: hash).map { ValidatorSignature(validator: $0.validator, signature: $0.signature) }
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
