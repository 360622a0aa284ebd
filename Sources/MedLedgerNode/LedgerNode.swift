import Dispatch
import Foundation
public import Logging
internal import MedLedgerConsensus
public import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerStore
public import Prometheus
public import ServiceLifecycle

#if canImport(Glibc)
    internal import Glibc
#endif

/// One node of a channel: the consensus machine (validator, manager or observer) wired to the
/// broker, the SQLite replica, its journal and real timers.
///
/// Everything a node decides runs on this actor, synchronously: a message in, the machine's
/// effects out (a `.persist` written and synced before the effects after it). Only checking a
/// proposed block runs elsewhere (all cores, off the actor); its result comes back as an event.
/// Catching up from peers runs in its own task and applies what it gets here.
public actor LedgerNode: Service {
    /// The configuration.
    public let configuration: NodeConfiguration
    /// The channel's genesis.
    public let genesis: Genesis
    let topics: ChannelTopics
    let logger: Logger
    let store: LedgerStore
    let journal: NodeJournal
    let client: MQTTClient
    let verifier = ParallelSignatureVerifier()
    var machine: ConsensusMachine
    var startedHeight: UInt64 = 0

    // Manager state.
    let managerIndex: Int?
    /// The manager's key, which signs its final receipts (SignedReceipt.swift).
    let managerKey: PrivateKey?
    var pool: Mempool
    var transactionPool: [SignedTransaction] = []
    var incoming: [IncomingReading] = []
    var wantedProposal: (height: UInt64, round: UInt64)?
    /// Digests of the pending readings whose signatures this manager verified when they arrived.
    var verifiedReadings: Set<Hash256> = []
    /// Serving researchers' fetch requests (Serving.swift).
    var serving = ServingState()

    // Validator state: blocks checked for a height, by proposal digest.
    var checkedBlocks: [Hash256: CheckedBlock] = [:]
    /// Block checks started and not yet answered.
    var checksInFlight = 0
    /// Counters an operator (and the tests) can read.
    public internal(set) var counters = NodeCounters()

    /// Whether the node is connected and subscribed (its consensus has started).
    public private(set) var isReady = false
    var syncing = false
    var syncTarget: UInt64 = 0
    var stopped = false
    /// Why the node stopped by itself (it cannot write its journal or its store: a full disk, a
    /// damaged file); `run` then throws it, and `medledger node` exits non-zero.
    public private(set) var failure: String?

    private let executor: QueueExecutor
    /// Where proposed blocks are checked: a serial queue of the node's own. Dispatch gives such a
    /// queue a thread whenever it has work, unlike its global and concurrent queues, which are
    /// as wide as the machine has cores and which Swift's tasks share: a check queued behind them
    /// could wait for as long as they keep every thread busy, and the node's votes with it.
    let checkQueue: DispatchQueue
    /// The wall clock (`WallClock.nowMs` but in tests).
    let clock: @Sendable () -> UInt64
    /// The node runs on its own queue (see `QueueExecutor`).
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    // Metrics and what the web page shows (Metrics.swift, Observation.swift, WebSource.swift).
    let metrics: NodeMetrics
    let genesisVerifier: GenesisVerifier
    var observed = NodeObservation()

    /// Opens the node's store and journal and makes its client; nothing is sent yet.
    /// - Parameters:
    ///   - configuration: the node's configuration.
    ///   - logger: where it logs (metadata: channel, node).
    ///   - metrics: the registry its metrics go to (labelled with its channel and id) and that its
    ///     `/metrics` serves; nil: a registry of its own.
    ///   - clock: the wall clock, ms since the Unix epoch (tests give a node a clock that is wrong).
    /// - Throws: `NodeError` naming the file or setting that is wrong.
    public init(
        configuration: NodeConfiguration, logger: Logger, metrics registry: PrometheusCollectorRegistry? = nil,
        clock: @escaping @Sendable () -> UInt64 = WallClock.nowMs
    ) throws(NodeError) {
        self.configuration = configuration
        self.clock = clock
        executor = QueueExecutor(label: "medledger.node.\(configuration.id)")
        checkQueue = DispatchQueue(label: "medledger.node.\(configuration.id).check")
        let genesis = try Self.readGenesis(configuration.genesis)
        self.genesis = genesis
        genesisVerifier = GenesisVerifier(genesis: genesis)
        metrics = NodeMetrics(
            registry: registry ?? PrometheusCollectorRegistry(), channel: genesis.channel, node: configuration.id,
            peers: (genesis.council + genesis.managers).map(\.id).filter { $0 != configuration.id })
        topics = ChannelTopics(channel: genesis.channel)
        var logger = logger
        logger[metadataKey: "channel"] = "\(genesis.channel)"
        logger[metadataKey: "node"] = "\(configuration.id)"
        self.logger = logger
        do {
            store = try LedgerStore(path: configuration.database, genesis: genesis)
            journal = try NodeJournal(path: configuration.journal ?? configuration.database + ".journal")
        } catch {
            throw NodeError(.file, "\(error)")
        }
        let key: PrivateKey? = try configuration.key.map { path throws(NodeError) in try Self.readKey(path) }
        let role: ConsensusRole
        switch configuration.role {
        case .validator:
            guard let index = genesis.council.firstIndex(where: { $0.id == configuration.id }), let key else {
                throw NodeError(.configuration, "'\(configuration.id)' is not a council member of the genesis")
            }
            guard genesis.council[index].publicKey == key.publicKey else {
                throw NodeError(.configuration, "the key of '\(configuration.id)' is not its key in the genesis")
            }
            role = .validator(index: index, signer: key)
            managerIndex = nil
            managerKey = nil
        case .manager:
            guard let index = genesis.managers.firstIndex(where: { $0.id == configuration.id }), let key else {
                throw NodeError(.configuration, "'\(configuration.id)' is not a manager of the genesis")
            }
            guard genesis.managers[index].publicKey == key.publicKey else {
                throw NodeError(.configuration, "the key of '\(configuration.id)' is not its key in the genesis")
            }
            role = .manager(index: index, signer: key)
            managerIndex = index
            managerKey = key
        case .observer:
            role = .observer
            managerIndex = nil
            managerKey = nil
        }
        let capacity = configuration.poolCapacity ?? genesis.block.maxReadings * 20
        pool = Mempool(
            capacity: capacity, byteCapacity: max(genesis.block.maxBytes * 20, capacity * 1024),
            deviceShare: configuration.poolDeviceShare)
        do {
            var consensus = try ConsensusConfiguration(genesis: genesis)
            if let timeouts = configuration.timeouts { consensus.timeouts = timeouts.policy }
            let restored: PersistedConsensusState? = try journal.consensusState().map {
                bytes throws(NodeError) in
                do {
                    return try PersistedConsensusState(decoding: bytes)
                } catch {
                    throw NodeError(.file, "the journal's consensus state does not decode: \(error)")
                }
            }
            machine = try ConsensusMachine(
                configuration: consensus, role: role, verifier: GenesisVerifier(genesis: genesis), restoring: restored)
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError(.configuration, "\(error)")
        }
        do {
            var mqtt = configuration.mqtt
            // Votes, proposals and commits are taken before readings already buffered: a flood of
            // readings cannot hold the council up in the node's buffer.
            mqtt.priorityTopicPrefixes = [topics.commits, String(topics.council.dropLast())]
            client = try MQTTClient(configuration: mqtt, logger: logger)
        } catch {
            throw NodeError(.network, "\(error)")
        }
    }

    static func readGenesis(_ path: String) throws(NodeError) -> Genesis {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeError(.file, "cannot read the genesis '\(path)'")
        }
        do {
            let genesis = try JSONDecoder().decode(Genesis.self, from: data)
            try genesis.validate()
            return genesis
        } catch {
            throw NodeError(.file, "\(path) is not a valid genesis: \(error)")
        }
    }

    static func readKey(_ path: String) throws(NodeError) -> PrivateKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeError(.file, "cannot read the key '\(path)'")
        }
        do {
            return try PrivateKey(pem: String(decoding: data, as: UTF8.self))
        } catch {
            throw NodeError(.file, "\(path): \(error)")
        }
    }

    /// The ledger's height.
    public var height: UInt64 { store.height }

    /// The consensus machine's position, for diagnostics: height, round, step, lock, valid
    /// round and the block checks in flight.
    public var consensusSummary: String {
        "height \(machine.height) round \(machine.round) step \(machine.step) locked "
            + "\(machine.lockedRound.map(String.init) ?? "-") valid \(machine.validRound.map(String.init) ?? "-") "
            + "checking \(checksInFlight)"
    }

    // MARK: - Running

    /// Connects, subscribes, starts consensus and handles messages until cancelled or asked to
    /// shut down gracefully; then disconnects.
    /// - Throws: `NodeError` when the broker cannot be reached at start.
    public func run() async throws {
        let web = startWeb()
        do {
            try await client.connect()
            var filters = [topics.commits, topics.council, topics.sync(configuration.id)]
            if configuration.role == .manager {
                filters += [
                    topics.allReadings, topics.allTransactions, topics.fetch(configuration.id),
                    topics.accessStatus(configuration.id),
                ]
            }
            try await client.subscribe(filters.map { MQTTSubscription($0, qos: .atLeastOnce) })
            if let web { try await webListening(web) }
        } catch {
            await web?.stop()
            await client.disconnect()
            throw error as? NodeError ?? NodeError(.network, "\(error)")
        }
        logger.info(
            "node started", metadata: ["role": "\(configuration.role.rawValue)", "height": "\(store.height)"])
        isReady = true
        startHeight(store.height + 1)
        writeStatus()
        let ticker = DispatchSource.makeTimerSource(queue: executor.queue)
        ticker.schedule(deadline: .now() + .milliseconds(5), repeating: .milliseconds(5), leeway: .milliseconds(1))
        ticker.setEventHandler { [weak self] in
            self?.assumeIsolated { node in
                node.tick()
                node.exportMetricsIfDue()
            }
        }
        ticker.resume()
        let messages = client.messages
        await withGracefulShutdownHandler {
            for await message in messages {
                self.receive(message)
                if self.stopped { break }
            }
        } onGracefulShutdown: {
            self.onQueue { $0.stop() }
        }
        ticker.cancel()
        await web?.stop()
        if failure == nil { tick() }
        try? await client.flush(timeout: .seconds(2))
        await client.disconnect()
        if let failure {
            logger.critical(
                "node stopped by a failure", metadata: ["height": "\(store.height)", "error": "\(failure)"])
            throw NodeError(.file, failure)
        }
        logger.info("node stopped", metadata: ["height": "\(store.height)"])
    }

    /// Stops the node: `run` returns after its current message.
    public func stop() {
        stopped = true
        client.shutdown()
    }

    /// Stops the node for a failure it cannot go on after: `run` throws it.
    func fail(_ message: String) {
        if failure == nil { failure = message }
        stop()
    }

    func startHeight(_ height: UInt64) {
        guard height > startedHeight else { return }
        startedHeight = height
        checkedBlocks = [:]
        wantedProposal = nil
        execute(machine.handle(.startHeight(height)))
    }

    /// Runs every few milliseconds: checks the readings that arrived, proposes when it is time.
    func tick() {
        if !incoming.isEmpty { admitIncoming() }
        proposeIfReady()
    }

    // MARK: - Messages in

    func receive(_ message: MQTTMessage) {
        switch topics.kind(of: message.topic) {
        case .reading(let device):
            guard configuration.role == .manager else { return }
            counters.readingsReceived += 1
            incoming.append(IncomingReading(topicDevice: device, bytes: message.payload))
            if incoming.count >= 512 { admitIncoming() }
        case .transaction(let submitter):
            guard configuration.role == .manager else { return }
            admitTransaction(message.payload, submitter: submitter)
        case .proposal:
            do {
                let proposal = try Proposal(
                    decoding: message.payload, maxBytes: Proposal.maxEncodedBytes(parameters: genesis.block))
                observe(proposal)
                execute(machine.handle(.proposal(proposal)))
            } catch {
                logger.debug("a proposal that does not decode", metadata: ["error": "\(error)"])
            }
        case .vote:
            do {
                let vote = try Vote(decoding: message.payload)
                observe(vote)
                execute(machine.handle(.vote(vote)))
            } catch {
                logger.debug("a vote that does not decode", metadata: ["error": "\(error)"])
            }
        case .evidence:
            receiveEvidence(message.payload)
        case .commit:
            receiveCommit(message.payload)
        case .sync(let node) where node == configuration.id:
            answerSync(message)
        case .fetch(let manager) where manager == configuration.id && configuration.role == .manager:
            answerFetch(message)
        case .accessStatus(let manager) where manager == configuration.id && configuration.role == .manager:
            answerAccessStatus(message)
        case .sync, .fetch, .accessStatus, .other:
            break
        }
    }

    func receiveEvidence(_ bytes: [UInt8]) {
        guard let evidence = try? Evidence(decoding: bytes),
            evidence.verify(channel: genesis.channel, verifier: GenesisVerifier(genesis: genesis))
        else { return }
        record(evidence)
    }

    /// How far from the node's height evidence is still kept: older or further ahead, it is
    /// dropped (a byzantine member could otherwise sign conflicting messages for every height and
    /// round it likes, and have every node store and relay them).
    static let evidenceWindow: UInt64 = 64

    func record(_ evidence: Evidence) {
        let height = evidence.height
        let current = store.height + 1
        guard height + Self.evidenceWindow >= current, height <= current + Self.evidenceWindow else {
            counters.evidenceIgnored += 1
            return
        }
        if (try? journal.recordEvidence(evidence.encoded(), height: height, key: evidence.slot.bytes)) == true {
            counters.evidence += 1
            logger.warning("equivocation recorded", metadata: ["height": "\(height)", "evidence": "\(evidence)"])
            publish(CouncilTopics.evidence(channel: genesis.channel, reporter: configuration.id), evidence.encoded())
        }
    }

    func receiveCommit(_ bytes: [UInt8]) {
        let committed: CommittedBlock
        do {
            committed = try CommittedBlock(decoding: bytes, parameters: genesis.block)
        } catch {
            logger.debug("a commit that does not decode", metadata: ["error": "\(error)"])
            return
        }
        let height = committed.header.height
        if height <= store.height { return }
        // Its certificate first, whatever its height: a commit that does not verify starts nothing
        // (a retained commit for a far height could otherwise send the node after blocks that do not
        // exist).
        do {
            try committed.certificate.verify(genesis: genesis, header: committed.header)
        } catch {
            counters.invalidCommits += 1
            logger.warning("a commit with an invalid certificate", metadata: ["error": "\(error)"])
            return
        }
        if height == store.height + 1 {
            let value = ProposalValue(header: committed.header.encoded(), body: committed.compressedBody)
            if startedHeight < height { startHeight(height) }
            execute(machine.handle(.commit(committed.certificate, value: value)))
        } else {
            catchUp(to: height)
        }
    }

    // MARK: - The machine's effects

    func execute(_ effects: [ConsensusEffect]) {
        observeRound()
        for effect in effects {
            switch effect {
            case .persist(let state):
                do {
                    try journal.saveConsensusState(state.encoded())
                } catch {
                    // Nothing after this may be sent: a vote must never go out unpersisted.
                    logger.critical("cannot persist the consensus state; stopping", metadata: ["error": "\(error)"])
                    fail("cannot persist the consensus state: \(error)")
                    return
                }
            case .broadcastProposal(let proposal):
                counters.proposalsSent += 1
                observeSent(proposal)
                publish(CouncilTopics.proposal(channel: genesis.channel, manager: configuration.id), proposal.encoded())
            case .broadcastVote(let vote):
                observeSent(vote)
                publish(CouncilTopics.vote(channel: genesis.channel, validator: configuration.id), vote.encoded())
            case .scheduleTimeout(let timeout, let afterMs):
                onQueue(afterMs: afterMs) { $0.timeoutFired(timeout) }
            case .validate(let value, let height):
                validate(value, height: height)
            case .needProposal(let height, let round):
                wantedProposal = (height, round)
                proposeIfReady()
            case .decide(let decision):
                apply(decision)
            case .evidence(let evidence):
                record(evidence)
            case .behind(let height):
                catchUp(to: height)
            case .diagnostic(let error):
                counters.diagnostics += 1
                logger.debug("consensus", metadata: ["diagnostic": "\(error)"])
            }
            if stopped { return }
        }
    }

    func timeoutFired(_ timeout: ConsensusTimeout) {
        guard !stopped else { return }
        if timeout.kind == .retransmit {
            counters.retransmissions += 1
        } else if timeout.height == machine.height, timeout.round == machine.round {
            counters.timeouts += 1
            observeTimeout(timeout)
        }
        execute(machine.handle(.timeout(timeout)))
    }

    /// Checks a proposed block in full on every core, off the actor, against the state below it.
    func validate(_ value: ProposalValue, height: UInt64) {
        guard height == store.height + 1 else {
            execute(machine.handle(.validated(value.digest, valid: false)))
            return
        }
        let state = store.state
        let parameters = genesis.block
        let verifier = self.verifier
        let contracts = store.contractRunner
        let started = ContinuousClock.now
        let now = self.now()
        checksInFlight += 1
        // Off the actor and off the cooperative pool: the check blocks a thread for as long as the
        // block's signatures take.
        checkQueue.async { [weak self] in
            var checked: CheckedBlock?
            var problem = ""
            var rule = "decoding"
            do {
                let block = try value.block(parameters: parameters)
                try state.checkTimely(block.header, now: now)
                checked = try state.check(block, verifier: verifier, contracts: contracts)
            } catch let violation as BlockRuleViolation {
                problem = "\(violation)"
                rule = violation.rule
            } catch {
                problem = "\(error)"
            }
            let result = checked
            self?.onQueue { [problem, rule] in
                $0.validated(value, height: height, checked: result, problem: problem, rule: rule, started: started)
            }
        }
    }

    /// Runs `body` on the node, from its own queue, now or after `afterMs`: the node's timers and
    /// check results never wait for a thread of Swift's cooperative pool, which CPU-bound work
    /// elsewhere in the process (a fleet, a test) can hold for seconds.
    nonisolated func onQueue(afterMs: UInt64? = nil, _ body: @escaping @Sendable (isolated LedgerNode) -> Void) {
        let work: @Sendable () -> Void = { [weak self] in
            self?.assumeIsolated { body($0) }
        }
        if let afterMs {
            executor.queue.asyncAfter(deadline: .now() + .milliseconds(Int(min(afterMs, 86_400_000))), execute: work)
        } else {
            executor.queue.async(execute: work)
        }
    }

    func validated(
        _ value: ProposalValue, height: UInt64, checked: CheckedBlock?, problem: String, rule: String,
        started: ContinuousClock.Instant
    ) {
        checksInFlight -= 1
        counters.blocksValidated += 1
        counters.validationTime += ContinuousClock.now - started
        metrics.blockVerification.record(ContinuousClock.now - started)
        if let checked, height == store.height + 1 {
            checkedBlocks[value.digest] = checked
        } else if checked == nil {
            counters.invalidProposals += 1
            counters.invalidProposalsByRule[rule, default: 0] += 1
            logger.warning(
                "an invalid proposal",
                metadata: ["height": "\(height)", "round": "\(machine.round)", "problem": "\(problem)"])
        }
        execute(machine.handle(.validated(value.digest, valid: checked != nil && height == store.height + 1)))
    }

    /// Applies a decided block, publishes it (validators), answers devices (managers), and starts
    /// the next height.
    func apply(_ decision: Decision) {
        guard decision.height == store.height + 1 else { return }
        let checked: CheckedBlock
        do {
            if let cached = checkedBlocks[decision.value.digest] {
                checked = cached
            } else {
                let block = try decision.value.block(parameters: genesis.block)
                checked = try store.state.check(block, verifier: knownReadingsVerifier, contracts: store.contractRunner)
            }
            try store.append(checked, certificate: decision.certificate)
        } catch {
            // f+1 correct validators checked this block; a replica that cannot apply it has a
            // damaged store. It must not go on.
            logger.critical(
                "cannot apply the decided block; stopping",
                metadata: ["height": "\(decision.height)", "error": "\(error)"])
            fail("cannot apply the decided block at height \(decision.height): \(error)")
            return
        }
        counters.blocksCommitted += 1
        counters.readingsCommitted += checked.readings.count
        observeCommit(decision, checked)
        logger.debug(
            "committed",
            metadata: [
                "height": "\(decision.height)", "round": "\(decision.round)", "readings": "\(checked.readings.count)",
            ])
        if configuration.role == .validator {
            let committed = CommittedBlock(
                header: checked.block.header, compressedBody: decision.value.body, certificate: decision.certificate)
            publish(topics.commits, committed.encoded(), retain: true)
        }
        if configuration.role == .manager { answerCommitted(checked) }
        writeStatus()
        startHeight(decision.height + 1)
    }

    /// The verifier for a block this node did not check as a validator: the readings a manager
    /// verified when they arrived are not verified again.
    var knownReadingsVerifier: KnownReadingsVerifier {
        KnownReadingsVerifier(base: verifier, known: verifiedReadings)
    }

    // MARK: - Publishing

    func publish(_ topic: String, _ payload: [UInt8], retain: Bool = false) {
        do {
            try client.enqueue(topic: topic, payload: payload, qos: .atLeastOnce, retain: retain)
        } catch {
            logger.error("cannot publish", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }

    /// The node's status file: height, head hash, counters (for the devnet and operators).
    func writeStatus() {
        guard let path = configuration.statusFile else { return }
        guard let data = try? JSONEncoder().encode(status) else { return }
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The node's wall clock, ms since the Unix epoch.
    nonisolated func now() -> UInt64 { clock() }
}

/// What a node counts.
public struct NodeCounters: Codable, Hashable, Sendable {
    /// Readings received on the readings topics.
    public var readingsReceived = 0
    /// Readings accepted into the pool.
    public var readingsAccepted = 0
    /// Readings refused, by reason.
    public var readingsRejected: [String: Int] = [:]
    /// Readings answered `busy` (the pool was full).
    public var readingsBusy = 0
    /// Retransmissions of committed readings answered `committed`.
    public var readingsRecommitted = 0
    /// Transactions accepted into the pool.
    public var transactionsAccepted = 0
    /// Transactions refused.
    public var transactionsRejected = 0
    /// Readings in committed blocks.
    public var readingsCommitted = 0
    /// Blocks committed.
    public var blocksCommitted = 0
    /// Proposals sent.
    public var proposalsSent = 0
    /// Proposed blocks checked.
    public var blocksValidated = 0
    /// Proposals found invalid.
    public var invalidProposals = 0
    /// Transactions answered `busy` (the transaction pool was full).
    public var transactionsBusy = 0
    /// Proposed blocks refused, by the rule they broke (`header.time-ahead`: the proposer's clock
    /// runs ahead; `decoding`: the value does not decode to a block).
    public var invalidProposalsByRule: [String: Int] = [:]
    /// Time spent checking proposed blocks.
    public var validationTime: Duration = .zero
    /// Step timeouts that fired in the node's current round (round changes and nil votes).
    public var timeouts = 0
    /// Times the node sent its votes and proposals of the height again.
    public var retransmissions = 0
    /// Equivocations recorded.
    public var evidence = 0
    /// Evidence dropped for being about a height far from the node's (`evidenceWindow`).
    public var evidenceIgnored = 0
    /// Commits received whose certificate does not verify (ignored).
    public var invalidCommits = 0
    /// Messages the machine refused.
    public var diagnostics = 0
    /// Blocks applied from peers.
    public var blocksSynced = 0
}

/// The status a node writes to its status file.
public struct NodeStatus: Codable, Hashable, Sendable {
    /// The node id.
    public var node: String
    /// Its role.
    public var role: String
    /// Its process id.
    public var pid: Int32
    /// Its ledger height.
    public var height: UInt64
    /// The newest header hash.
    public var headHash: String
    /// Its counters.
    public var counters: NodeCounters
    /// When it was written, ms.
    public var time: UInt64
    /// The URL of its web page, `/metrics` and `/status.json` (when it serves HTTP).
    public var http: String? = nil
}

/// Spreads a block check over every core and skips the signatures of readings verified before.
struct KnownReadingsVerifier: SignatureVerifier {
    let base: ParallelSignatureVerifier
    let known: Set<Hash256>

    func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T] { base.map(count: count, transform) }

    func isKnownValid(_ bytes: [UInt8]) -> Bool { !known.isEmpty && known.contains(Hash256.sha256(bytes)) }
}
