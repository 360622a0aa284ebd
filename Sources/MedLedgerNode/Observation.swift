internal import CoreMetrics
internal import Logging
internal import MedLedgerConsensus
internal import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerStore
internal import MedLedgerWeb

/// What a node keeps for its metrics and its web page, beside what it needs to run: the last
/// signed message seen from each member, the last committed reading of each device, when the
/// first proposal of each height arrived.
struct NodeObservation {
    /// What the metrics exported last.
    var exported = NodeMetrics.Exported()
    /// When the metrics were exported last.
    var lastExport = ContinuousClock.now - .seconds(60)
    /// The last vote seen from each council member (by index), verified.
    var votes: [Int: (key: VoteKey, seen: MessageSeen)] = [:]
    /// The last proposal seen from each manager (by index), verified.
    var proposals: [Int: (key: VoteKey, seen: MessageSeen)] = [:]
    /// The highest height seen from each peer.
    var peerHeights: [String: UInt64] = [:]
    /// The last committed reading of each device this node saw committed or looked up.
    var lastReadings: [String: ReadingSummary] = [:]
    /// When the first (verified) proposal of a height arrived or was sent.
    var firstProposal: [UInt64: ContinuousClock.Instant] = [:]
    /// The node's own votes whose latency was recorded.
    var recordedVotes: Set<VoteKey> = []
    /// The (height, round) the node was in when its effects were last executed.
    var height: UInt64 = 0
    var round: UInt64 = 0
    /// The URL of the node's HTTP endpoint, once it listens.
    var httpURL: String?

    /// A height, round and step (0: proposal, else the vote step), ordered.
    struct VoteKey: Hashable, Comparable {
        var height: UInt64
        var round: UInt64
        var step: UInt64

        static func < (lhs: VoteKey, rhs: VoteKey) -> Bool {
            (lhs.height, lhs.round, lhs.step) < (rhs.height, rhs.round, rhs.step)
        }
    }
}

extension LedgerNode {
    // MARK: - Consensus as it happens

    /// Counts a move to a higher round of the same height (called before each batch of effects).
    func observeRound() {
        if machine.height == observed.height, machine.round > observed.round {
            metrics.roundChanges.increment(by: Int(machine.round - observed.round))
            metrics.round.record(Double(machine.round))
            logger.info(
                "round change", metadata: ["height": "\(machine.height)", "round": "\(machine.round)"])
        }
        observed.height = machine.height
        observed.round = machine.round
    }

    /// Notes a proposal that arrived: the manager's last proposal and height, and when the first
    /// proposal of its height came (its signature checked once per height and round).
    func observe(_ proposal: Proposal) {
        let key = NodeObservation.VoteKey(height: proposal.height, round: proposal.round, step: 0)
        if let last = observed.proposals[proposal.proposer], last.key >= key { return }
        guard proposal.channel == genesis.channel, genesis.managers.indices.contains(proposal.proposer),
            genesisVerifier.isValidProposalSignature(
                proposal.signature, message: proposal.signingBytes, manager: proposal.proposer)
        else { return }
        let seen = MessageSeen(
            height: proposal.height, round: proposal.round, kind: "proposal", block: proposal.value.id.hex,
            seen: now())
        observed.proposals[proposal.proposer] = (key, seen)
        notePeer(genesis.managers[proposal.proposer].id, height: proposal.height)
        noteFirstProposal(height: proposal.height)
    }

    /// Notes a vote that arrived: the member's last vote and height (its signature checked
    /// once per height, round and step).
    func observe(_ vote: Vote) {
        let key = NodeObservation.VoteKey(height: vote.height, round: vote.round, step: vote.step.rawValue)
        if let last = observed.votes[vote.validator], last.key >= key { return }
        guard vote.channel == genesis.channel, genesis.council.indices.contains(vote.validator),
            genesisVerifier.isValidVoteSignature(vote.signature, message: vote.signingBytes, validator: vote.validator)
        else { return }
        let seen = MessageSeen(
            height: vote.height, round: vote.round, kind: vote.step == .prevote ? "prevote" : "precommit",
            block: vote.blockHash?.hex, seen: now())
        observed.votes[vote.validator] = (key, seen)
        notePeer(genesis.council[vote.validator].id, height: vote.height)
    }

    func notePeer(_ id: String, height: UInt64) {
        guard id != configuration.id, height > observed.peerHeights[id] ?? 0 else { return }
        observed.peerHeights[id] = height
        metrics.peerHeights[id]?.record(Double(height))
    }

    func noteFirstProposal(height: UInt64) {
        // Only the next few heights: a member's signed messages for far heights take no memory.
        guard height > store.height, height <= store.height + 8, observed.firstProposal[height] == nil else { return }
        observed.firstProposal[height] = .now
    }

    /// Notes a proposal this manager sends.
    func observeSent(_ proposal: Proposal) {
        noteFirstProposal(height: proposal.height)
    }

    /// Records the latency of this validator's own vote for a block, once per height, round and step.
    func observeSent(_ vote: Vote) {
        guard vote.validator == machine.role.validatorIndex, vote.blockHash != nil,
            let first = observed.firstProposal[vote.height]
        else { return }
        let key = NodeObservation.VoteKey(height: vote.height, round: vote.round, step: vote.step.rawValue)
        guard observed.recordedVotes.insert(key).inserted else { return }
        metrics.voteLatency[vote.step]?.record(ContinuousClock.now - first)
    }

    /// Counts a step timeout of the current round and logs it.
    func observeTimeout(_ timeout: ConsensusTimeout) {
        metrics.timeouts[timeout.kind]?.increment()
        logger.debug(
            "step timeout",
            metadata: ["step": "\(timeout.kind)", "height": "\(timeout.height)", "round": "\(timeout.round)"])
    }

    /// Records a committed block: its latency, its readings as the devices' last ones.
    func observeCommit(_ decision: Decision, _ checked: CheckedBlock) {
        if let first = observed.firstProposal[decision.height] {
            metrics.commitLatency.record(ContinuousClock.now - first)
        }
        observed.firstProposal = observed.firstProposal.filter { $0.key > decision.height }
        observed.recordedVotes = observed.recordedVotes.filter { $0.height > decision.height }
        observeReadings(checked)
        metrics.height.record(Double(store.height))
    }

    /// Keeps the last reading of each device of a block just applied.
    func observeReadings(_ checked: CheckedBlock) {
        let height = checked.block.header.height
        for signed in checked.readings {
            let reading = signed.reading
            if let last = observed.lastReadings[reading.device], last.seq >= reading.seq { continue }
            observed.lastReadings[reading.device] = ReadingSummary(
                seq: reading.seq, time: reading.time, values: Self.describe(reading.records), height: height)
        }
    }

    /// A reading's records as text: `8480-6 = 120 mm[Hg]; 8462-4 = 80 mm[Hg]`.
    static func describe(_ records: [ReadingRecord]) -> String {
        records.map { record in
            let value =
                switch record.value {
                case .integer(let value): "\(value)"
                case .float(let value): "\(value)"
                }
            return "\(record.code) = \(value) \(record.unit)"
        }.joined(separator: "; ")
    }

    // MARK: - Exporting

    /// Brings every metric up to date: the counters' growth, the pools, the height and round,
    /// the store's size, the MQTT client's counters.
    func exportMetrics() {
        observed.lastExport = .now
        metrics.export(counters, since: &observed.exported.counters)
        metrics.exportMQTT(
            received: client.receivedMessages, reconnects: client.reconnectCount, dropped: client.droppedMessages,
            since: &observed.exported)
        metrics.height.record(Double(store.height))
        metrics.round.record(Double(machine.round))
        metrics.mempoolReadings.record(Double(pool.count))
        metrics.mempoolBytes.record(Double(pool.byteCount))
        metrics.mempoolTransactions.record(Double(transactionPool.count))
        metrics.storeSize.record(
            Double(Self.fileSize(configuration.database) + Self.fileSize(configuration.database + "-wal")))
    }

    /// Exports the metrics when the last export is a second old (called from the node's ticker).
    func exportMetricsIfDue() {
        if ContinuousClock.now - observed.lastExport >= .seconds(1) { exportMetrics() }
    }

    /// The node's metrics, up to date, in the Prometheus text format.
    public func metricsText() -> [UInt8] {
        exportMetrics()
        return metrics.text()
    }

    /// The URL of the node's web page and metrics (`configuration.http`), once it listens.
    public var httpURL: String? { observed.httpURL }
}
