import ArgumentParser
import CoreMetrics
import Logging
import MedLedgerCore
import MedLedgerNode
import Prometheus
import ServiceLifecycle
import UnixSignals

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Run one node of a channel (validator, manager or observer) against a broker.",
        discussion: """
            The configuration is a JSON file (docs/OPERATIONS.md): {"id", "role", "genesis", "key", "database", \
            "broker": {"host", "port", ...}, ...}. The node keeps its ledger in "database" and its consensus \
            state in "journal" (default: the database path + .journal), so it restarts where it stopped. \
            With "http": {"host", "port"} it serves a read-only web page at /, /blocks/HEIGHT, Prometheus \
            metrics at /metrics and its status at /status.json (port 0: a free port, written into the status \
            file's "http"). SIGINT or SIGTERM stops it cleanly.
            """)

    @Option(help: "The node's configuration file (JSON).")
    var config: String
    @Option(help: "The log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = LogLevel(.info)
    @Option(help: "The log format: text or json.")
    var logFormat: LogFormat = .text

    func run() async throws {
        LogSetup.bootstrap(format: logFormat, level: logLevel)
        let configuration: NodeConfiguration
        do {
            configuration = try NodeConfiguration.load(config)
        } catch {
            throw ToolError("\(error)")
        }
        let logger = Logger(label: "medledger.node")
        // One registry for the process: the node's metrics and anything recorded through the
        // global MetricsSystem; the node serves it at /metrics.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let node: LedgerNode
        do {
            node = try LedgerNode(configuration: configuration, logger: logger, metrics: registry)
        } catch {
            throw ToolError("\(error)")
        }
        // The group's own lines (start, signals, stop) carry the node's channel and id too.
        var groupLogger = logger
        groupLogger[metadataKey: "channel"] = "\(await node.genesis.channel)"
        groupLogger[metadataKey: "node"] = "\(configuration.id)"
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: node)], gracefulShutdownSignals: [.sigterm, .sigint], logger: groupLogger))
        do {
            try await group.run()
        } catch let error as NodeError {
            throw ToolError("\(error)")
        }
    }
}
