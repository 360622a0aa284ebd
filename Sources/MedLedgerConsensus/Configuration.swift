public import MedLedgerCore

/// How long the machine waits in each step, growing linearly with the round so that, once the
/// network behaves, some round is long enough for everyone to hear everyone.
///
/// `duration = min(base + round × delta, maxMs)`.
public struct TimeoutPolicy: Hashable, Sendable {
    /// Propose step: how long a validator waits for the round's proposal, at round 0.
    public var proposeMs: UInt64
    /// Added to the propose timeout per round.
    public var proposeDeltaMs: UInt64
    /// Prevote step: how long a validator waits, after 2f+1 prevotes of any kind, for a polka.
    public var prevoteMs: UInt64
    /// Added to the prevote timeout per round.
    public var prevoteDeltaMs: UInt64
    /// Precommit step: how long a node waits, after 2f+1 precommits of any kind, before the next round.
    public var precommitMs: UInt64
    /// Added to the precommit timeout per round.
    public var precommitDeltaMs: UInt64
    /// The period at which a node sends its own votes and proposals of the height again, so that
    /// messages lost before the network healed are made good.
    public var retransmitMs: UInt64
    /// The ceiling of every step timeout.
    public var maxMs: UInt64

    /// Makes a policy; the defaults suit a devnet over one broker with ~50 ms block checks.
    public init(
        proposeMs: UInt64 = 1000, proposeDeltaMs: UInt64 = 500, prevoteMs: UInt64 = 500, prevoteDeltaMs: UInt64 = 250,
        precommitMs: UInt64 = 500, precommitDeltaMs: UInt64 = 250, retransmitMs: UInt64 = 1000,
        maxMs: UInt64 = 60_000
    ) {
        self.proposeMs = proposeMs
        self.proposeDeltaMs = proposeDeltaMs
        self.prevoteMs = prevoteMs
        self.prevoteDeltaMs = prevoteDeltaMs
        self.precommitMs = precommitMs
        self.precommitDeltaMs = precommitDeltaMs
        self.retransmitMs = retransmitMs
        self.maxMs = maxMs
    }

    /// The duration of a timeout.
    /// - Parameters:
    ///   - kind: which timeout.
    ///   - round: the round it is for.
    public func duration(_ kind: ConsensusTimeout.Kind, round: UInt64) -> UInt64 {
        let (base, delta): (UInt64, UInt64)
        switch kind {
        case .propose: (base, delta) = (proposeMs, proposeDeltaMs)
        case .prevote: (base, delta) = (prevoteMs, prevoteDeltaMs)
        case .precommit: (base, delta) = (precommitMs, precommitDeltaMs)
        case .retransmit: return retransmitMs
        }
        let (growth, overflow) = delta.multipliedReportingOverflow(by: round)
        guard !overflow else { return maxMs }
        let (total, overflow2) = base.addingReportingOverflow(growth)
        return overflow2 ? maxMs : min(total, maxMs)
    }
}

/// How much the machine keeps of what arrives early, so that no sender can make it use
/// unbounded memory.
public struct ConsensusLimits: Hashable, Sendable {
    /// Heights above the current one whose messages are buffered.
    public var futureHeights: UInt64
    /// Messages buffered per validator (votes) or in all (proposals) for each future height.
    public var bufferedPerSender: Int
    /// Distinct rounds above the current one kept per validator at the current height; when a
    /// validator exceeds it, its lowest such round is dropped.
    public var futureRounds: Int
    /// Rounds above the current one for which a proposal is kept.
    public var futureProposalRounds: UInt64
    /// Votes of one validator for other values than its first, kept per round and step (an
    /// equivocator's votes count toward each value, as in the paper).
    public var conflictingVotes: Int

    /// Makes limits.
    public init(
        futureHeights: UInt64 = 2, bufferedPerSender: Int = 16, futureRounds: Int = 4,
        futureProposalRounds: UInt64 = 4, conflictingVotes: Int = 3
    ) {
        self.futureHeights = futureHeights
        self.bufferedPerSender = bufferedPerSender
        self.futureRounds = futureRounds
        self.futureProposalRounds = futureProposalRounds
        self.conflictingVotes = conflictingVotes
    }
}

/// What the machine needs to know about a channel: its id, the council size and the managers'
/// rotation, and its timeouts.
public struct ConsensusConfiguration: Hashable, Sendable {
    /// The channel id.
    public let channel: String
    /// The council size n = 3f+1.
    public let validatorCount: Int
    /// The number of managers that propose in turn.
    public let managerCount: Int
    /// The timeouts.
    public var timeouts: TimeoutPolicy
    /// The buffering limits.
    public var limits: ConsensusLimits

    /// Makes a configuration.
    /// - Parameters:
    ///   - channel: the channel id.
    ///   - validatorCount: n, which must be 3f+1 (1, 4, 7, ...) and at most 65,536.
    ///   - managerCount: at least 1.
    ///   - timeouts: the timeouts.
    ///   - limits: the buffering limits.
    /// - Throws: `ConsensusError.Code.invalidConfiguration` naming what is wrong.
    public init(
        channel: String, validatorCount: Int, managerCount: Int, timeouts: TimeoutPolicy = TimeoutPolicy(),
        limits: ConsensusLimits = ConsensusLimits()
    ) throws(ConsensusError) {
        guard validatorCount >= 1, validatorCount % 3 == 1, validatorCount <= 1 << 16 else {
            throw ConsensusError(
                .invalidConfiguration, "the council has \(validatorCount) validators; it needs 3f+1 (1, 4, 7, ...)")
        }
        guard managerCount >= 1, managerCount <= 1 << 16 else {
            throw ConsensusError(.invalidConfiguration, "a channel needs 1 to 65,536 managers, not \(managerCount)")
        }
        guard limits.futureRounds >= 1, limits.bufferedPerSender >= 1 else {
            throw ConsensusError(.invalidConfiguration, "the buffering limits must be at least 1")
        }
        self.channel = channel
        self.validatorCount = validatorCount
        self.managerCount = managerCount
        self.timeouts = timeouts
        self.limits = limits
    }

    /// The configuration of a genesis: its channel, council and managers.
    /// - Parameters:
    ///   - genesis: the channel's genesis.
    ///   - timeouts: the timeouts.
    ///   - limits: the buffering limits.
    /// - Throws: `ConsensusError.Code.invalidConfiguration` naming what is wrong.
    public init(
        genesis: Genesis, timeouts: TimeoutPolicy = TimeoutPolicy(), limits: ConsensusLimits = ConsensusLimits()
    )
        throws(ConsensusError)
    {
        try self.init(
            channel: genesis.channel, validatorCount: genesis.council.count, managerCount: genesis.managers.count,
            timeouts: timeouts, limits: limits)
    }

    /// f = (n - 1) / 3: the most faulty validators tolerated.
    public var faultTolerance: Int { (validatorCount - 1) / 3 }
    /// 2f + 1: the votes of a polka or a commit (equal to `Genesis.quorum`).
    public var quorum: Int { 2 * faultTolerance + 1 }

    /// The proposer of a height and round: the manager at index `(height + round) mod managers`
    /// in the genesis order. Over consecutive rounds of one height every manager takes a turn, so
    /// one that is down or withholding is skipped after a propose timeout.
    /// - Parameters:
    ///   - height: the height.
    ///   - round: the round.
    /// - Returns: the index of the proposing manager.
    public func proposer(height: UInt64, round: UInt64) -> Int {
        let count = UInt64(managerCount)
        return Int((height % count + round % count) % count)
    }
}
