internal import CoreMetrics
internal import MedLedgerConsensus
internal import MedLedgerCore
internal import Prometheus

/// A metric a node exports: what docs/OPERATIONS.md lists, and the `# HELP` line of `/metrics`.
public struct MetricDescription: Hashable, Sendable {
    /// The metric's name, `medledger_*` with its unit.
    public var name: String
    /// Its Prometheus type: counter, gauge or histogram.
    public var type: String
    /// Its labels besides `channel` and `node`, which every metric carries.
    public var labels: [String]
    /// What it measures.
    public var help: String
}

/// Every metric a node exports (all of them exist from the node's start, at zero).
public enum NodeMetricsCatalog {
    /// The metrics, in the order docs/OPERATIONS.md lists them.
    public static let all: [MetricDescription] = [
        .init(
            name: "medledger_readings_received_total", type: "counter", labels: [],
            help: "Readings that arrived on the readings topics (managers)."),
        .init(
            name: "medledger_readings_accepted_total", type: "counter", labels: [],
            help: "Readings that passed intake (rules 1-7) and entered the pool."),
        .init(
            name: "medledger_readings_rejected_total", type: "counter", labels: ["reason"],
            help: "Readings refused, by PROTOCOL.md reason, at intake or when a block was assembled."),
        .init(
            name: "medledger_readings_busy_total", type: "counter", labels: [],
            help: "Readings answered busy because the pool was full."),
        .init(
            name: "medledger_readings_committed_total", type: "counter", labels: [],
            help: "Readings in blocks this node committed through consensus."),
        .init(
            name: "medledger_transactions_accepted_total", type: "counter", labels: [],
            help: "Registry transactions accepted into the pool (managers)."),
        .init(
            name: "medledger_transactions_rejected_total", type: "counter", labels: [],
            help: "Registry transactions refused (managers)."),
        .init(
            name: "medledger_mempool_readings", type: "gauge", labels: [],
            help: "Readings waiting in the manager's pool for a block."),
        .init(
            name: "medledger_mempool_bytes", type: "gauge", labels: [],
            help: "The signed bytes of the readings in the pool."),
        .init(
            name: "medledger_mempool_transactions", type: "gauge", labels: [],
            help: "Registry transactions waiting for a block."),
        .init(
            name: "medledger_blocks_proposed_total", type: "counter", labels: [],
            help: "Proposals this manager sent (new blocks and re-proposed valid values)."),
        .init(
            name: "medledger_blocks_committed_total", type: "counter", labels: [],
            help: "Blocks this node committed through consensus."),
        .init(
            name: "medledger_blocks_synced_total", type: "counter", labels: [],
            help: "Blocks this node applied from peers while catching up."),
        .init(
            name: "medledger_blocks_validated_total", type: "counter", labels: [],
            help: "Proposed blocks this validator checked in full."),
        .init(
            name: "medledger_invalid_proposals_total", type: "counter", labels: [],
            help: "Proposed blocks that failed the full check."),
        .init(
            name: "medledger_round_changes_total", type: "counter", labels: [],
            help: "Times this node moved to a higher round of a height (a round without a commit)."),
        .init(
            name: "medledger_timeouts_total", type: "counter", labels: ["step"],
            help: "Step timeouts that fired in the node's current round, by step (propose, prevote, precommit)."),
        .init(
            name: "medledger_retransmissions_total", type: "counter", labels: [],
            help: "Times the node sent its votes and proposals of the height again."),
        .init(
            name: "medledger_evidence_total", type: "counter", labels: [],
            help: "Equivocations (conflicting votes or proposals) recorded."),
        .init(
            name: "medledger_height", type: "gauge", labels: [],
            help: "The node's ledger height (its newest committed block)."),
        .init(
            name: "medledger_round", type: "gauge", labels: [],
            help: "The consensus round the node is in for the next height."),
        .init(
            name: "medledger_peer_height", type: "gauge", labels: ["peer"],
            help: "The highest height a council member voted at or a manager proposed at, as this node saw it."),
        .init(
            name: "medledger_vote_latency_seconds", type: "histogram", labels: ["step"],
            help: "From the first proposal seen for a height to this validator's own vote for a block, by step."),
        .init(
            name: "medledger_commit_latency_seconds", type: "histogram", labels: [],
            help: "From the first proposal seen (or sent) for a height to the block's commit at this node."),
        .init(
            name: "medledger_block_verification_seconds", type: "histogram", labels: [],
            help: "Time to check a proposed block in full: every signature (on every core) and every rule."),
        .init(
            name: "medledger_intake_verification_seconds", type: "histogram", labels: [],
            help: "Time a manager takes to check one batch of arriving readings (signatures on every core)."),
        .init(
            name: "medledger_store_size_bytes", type: "gauge", labels: [],
            help: "The size of the node's SQLite store: the database file and its write-ahead log."),
        .init(
            name: "medledger_mqtt_received_messages_total", type: "counter", labels: [],
            help: "MQTT messages the node's client received from the broker."),
        .init(
            name: "medledger_mqtt_reconnects_total", type: "counter", labels: [],
            help: "Times the node's MQTT client connected again after losing its connection."),
        .init(
            name: "medledger_mqtt_dropped_messages_total", type: "counter", labels: [],
            help: "MQTT messages dropped because the client's receive buffer was full."),
    ]

    /// The histograms' buckets.
    static let buckets: [String: [Duration]] = [
        "medledger_vote_latency_seconds": latencyBuckets,
        "medledger_commit_latency_seconds": latencyBuckets,
        "medledger_block_verification_seconds": checkBuckets,
        "medledger_intake_verification_seconds": checkBuckets,
    ]
    static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    static let checkBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
    ]
}

/// A swift-metrics factory over a Prometheus registry that gives each metric of the catalog its
/// help text and buckets. (The node makes its metrics through it; anything else in the process
/// can use the global `MetricsSystem`, which `medledger node` bootstraps on the same registry.)
struct CatalogMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    static let help: [String: String] = Dictionary(
        uniqueKeysWithValues: NodeMetricsCatalog.all.map { ($0.name, $0.help) })
    static let defaultBuckets = NodeMetricsCatalog.latencyBuckets

    /// The name with its help text (none for a metric outside the catalog).
    static func describe(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: Self.describe(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: Self.describe(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate {
            return registry.makeValueHistogram(
                descriptor: Self.describe(label), labels: dimensions,
                buckets: [0.001, 0.01, 0.1, 1, 10, 100, 1000, 10_000])
        }
        return registry.makeGauge(descriptor: Self.describe(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: Self.describe(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(
            descriptor: Self.describe(label), labels: dimensions,
            buckets: NodeMetricsCatalog.buckets[label] ?? Self.defaultBuckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

/// The node's metrics (swift-metrics handles over its Prometheus registry), labelled with its
/// channel and id. Counters the node already keeps in `NodeCounters` are exported by difference
/// (`export(_:)`), at least every second and before every scrape; the rest are recorded as
/// they happen.
final class NodeMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let readingsReceived: CoreMetrics.Counter
    let readingsAccepted: CoreMetrics.Counter
    let readingsRejected: [String: CoreMetrics.Counter]
    let readingsBusy: CoreMetrics.Counter
    let readingsCommitted: CoreMetrics.Counter
    let transactionsAccepted: CoreMetrics.Counter
    let transactionsRejected: CoreMetrics.Counter
    let mempoolReadings: CoreMetrics.Gauge
    let mempoolBytes: CoreMetrics.Gauge
    let mempoolTransactions: CoreMetrics.Gauge
    let blocksProposed: CoreMetrics.Counter
    let blocksCommitted: CoreMetrics.Counter
    let blocksSynced: CoreMetrics.Counter
    let blocksValidated: CoreMetrics.Counter
    let invalidProposals: CoreMetrics.Counter
    let roundChanges: CoreMetrics.Counter
    let timeouts: [ConsensusTimeout.Kind: CoreMetrics.Counter]
    let retransmissions: CoreMetrics.Counter
    let evidence: CoreMetrics.Counter
    let height: CoreMetrics.Gauge
    let round: CoreMetrics.Gauge
    let peerHeights: [String: CoreMetrics.Gauge]
    let voteLatency: [VoteStep: CoreMetrics.Timer]
    let commitLatency: CoreMetrics.Timer
    let blockVerification: CoreMetrics.Timer
    let intakeVerification: CoreMetrics.Timer
    let storeSize: CoreMetrics.Gauge
    let mqttReceived: CoreMetrics.Counter
    let mqttReconnects: CoreMetrics.Counter
    let mqttDropped: CoreMetrics.Counter

    /// Makes every metric of the catalog in `registry`.
    /// - Parameters:
    ///   - registry: where they live (the node's own, or the process's).
    ///   - channel: the channel id (a label of every metric).
    ///   - node: the node id (a label of every metric).
    ///   - peers: the other members of the genesis, for `medledger_peer_height`.
    init(registry: PrometheusCollectorRegistry, channel: String, node: String, peers: [String]) {
        self.registry = registry
        let factory = CatalogMetricsFactory(registry: registry)
        let base = [("channel", channel), ("node", node)]
        func counter(_ name: String, _ extra: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: name, dimensions: base + extra, factory: factory)
        }
        func gauge(_ name: String, _ extra: [(String, String)] = []) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: name, dimensions: base + extra, factory: factory)
        }
        func timer(_ name: String, _ extra: [(String, String)] = []) -> CoreMetrics.Timer {
            CoreMetrics.Timer(label: name, dimensions: base + extra, factory: factory)
        }
        readingsReceived = counter("medledger_readings_received_total")
        readingsAccepted = counter("medledger_readings_accepted_total")
        readingsRejected = Dictionary(
            uniqueKeysWithValues: RejectionReason.allCases.map {
                ($0.rawValue, counter("medledger_readings_rejected_total", [("reason", $0.rawValue)]))
            })
        readingsBusy = counter("medledger_readings_busy_total")
        readingsCommitted = counter("medledger_readings_committed_total")
        transactionsAccepted = counter("medledger_transactions_accepted_total")
        transactionsRejected = counter("medledger_transactions_rejected_total")
        mempoolReadings = gauge("medledger_mempool_readings")
        mempoolBytes = gauge("medledger_mempool_bytes")
        mempoolTransactions = gauge("medledger_mempool_transactions")
        blocksProposed = counter("medledger_blocks_proposed_total")
        blocksCommitted = counter("medledger_blocks_committed_total")
        blocksSynced = counter("medledger_blocks_synced_total")
        blocksValidated = counter("medledger_blocks_validated_total")
        invalidProposals = counter("medledger_invalid_proposals_total")
        roundChanges = counter("medledger_round_changes_total")
        let steps: [(ConsensusTimeout.Kind, String)] = [
            (.propose, "propose"), (.prevote, "prevote"), (.precommit, "precommit"),
        ]
        timeouts = Dictionary(
            uniqueKeysWithValues: steps.map { ($0.0, counter("medledger_timeouts_total", [("step", $0.1)])) })
        retransmissions = counter("medledger_retransmissions_total")
        evidence = counter("medledger_evidence_total")
        height = gauge("medledger_height")
        round = gauge("medledger_round")
        peerHeights = Dictionary(
            uniqueKeysWithValues: peers.map { ($0, gauge("medledger_peer_height", [("peer", $0)])) })
        voteLatency = [
            .prevote: timer("medledger_vote_latency_seconds", [("step", "prevote")]),
            .precommit: timer("medledger_vote_latency_seconds", [("step", "precommit")]),
        ]
        commitLatency = timer("medledger_commit_latency_seconds")
        blockVerification = timer("medledger_block_verification_seconds")
        intakeVerification = timer("medledger_intake_verification_seconds")
        storeSize = gauge("medledger_store_size_bytes")
        mqttReceived = counter("medledger_mqtt_received_messages_total")
        mqttReconnects = counter("medledger_mqtt_reconnects_total")
        mqttDropped = counter("medledger_mqtt_dropped_messages_total")
    }

    /// What was exported last, to export the difference.
    struct Exported {
        var counters = NodeCounters()
        var mqttReceived = 0
        var mqttReconnects = 0
        var mqttDropped = 0
    }

    /// Exports the growth of the node's counters since `exported`, and updates it.
    func export(_ counters: NodeCounters, since exported: inout NodeCounters) {
        func add(_ counter: CoreMetrics.Counter, _ now: Int, _ before: Int) {
            if now > before { counter.increment(by: now - before) }
        }
        add(readingsReceived, counters.readingsReceived, exported.readingsReceived)
        add(readingsAccepted, counters.readingsAccepted, exported.readingsAccepted)
        for (reason, count) in counters.readingsRejected {
            guard let counter = readingsRejected[reason] else { continue }
            add(counter, count, exported.readingsRejected[reason] ?? 0)
        }
        add(readingsBusy, counters.readingsBusy, exported.readingsBusy)
        add(readingsCommitted, counters.readingsCommitted, exported.readingsCommitted)
        add(transactionsAccepted, counters.transactionsAccepted, exported.transactionsAccepted)
        add(transactionsRejected, counters.transactionsRejected, exported.transactionsRejected)
        add(blocksProposed, counters.proposalsSent, exported.proposalsSent)
        add(blocksCommitted, counters.blocksCommitted, exported.blocksCommitted)
        add(blocksSynced, counters.blocksSynced, exported.blocksSynced)
        add(blocksValidated, counters.blocksValidated, exported.blocksValidated)
        add(invalidProposals, counters.invalidProposals, exported.invalidProposals)
        add(retransmissions, counters.retransmissions, exported.retransmissions)
        add(evidence, counters.evidence, exported.evidence)
        exported = counters
    }

    /// Exports the growth of the MQTT client's counters.
    func exportMQTT(received: Int, reconnects: Int, dropped: Int, since exported: inout Exported) {
        if received > exported.mqttReceived { mqttReceived.increment(by: received - exported.mqttReceived) }
        if reconnects > exported.mqttReconnects { mqttReconnects.increment(by: reconnects - exported.mqttReconnects) }
        if dropped > exported.mqttDropped { mqttDropped.increment(by: dropped - exported.mqttDropped) }
        exported.mqttReceived = received
        exported.mqttReconnects = reconnects
        exported.mqttDropped = dropped
    }

    /// The registry's metrics in the Prometheus text format.
    func text() -> [UInt8] { registry.emitToBuffer() }
}

extension CoreMetrics.Timer {
    /// Records a Duration.
    func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
