import Foundation
public import Logging
public import MedLedgerBroker
public import MedLedgerCore
public import MedLedgerMQTT
public import MedLedgerNode
public import MedLedgerStore

/// A channel's network in one test: a real Mosquitto broker on a free loopback port, the
/// channel's files, and nodes (real `LedgerNode`s with their own SQLite stores and MQTT
/// connections) started and stopped by id.
public final class TestNetwork: @unchecked Sendable {
    // @unchecked Sendable: `nodes` is only touched by the test's own task, one call at a time.
    /// The test's directory (files of the channel, the broker's, the nodes' stores).
    public let directory: TemporaryDirectory
    /// The broker every node uses.
    public let broker: MosquittoBroker
    /// The channel, with deterministic keys.
    public let channel: TestChannel
    /// The genesis file.
    public let genesisPath: String
    /// Where the nodes log (errors only, unless NODE_TEST_DEBUG is set).
    public let logger: Logger
    /// The running nodes and their tasks.
    public private(set) var nodes: [String: (node: LedgerNode, task: Task<Void, any Error>)] = [:]

    /// Short consensus timeouts, for tests.
    public static let timeouts = NodeConfiguration.Timeouts(
        proposeMs: 400, proposeDeltaMs: 200, prevoteMs: 200, precommitMs: 200, retransmitMs: 300)

    /// Starts a broker and writes the channel's files (the nodes start with `start`/`startAll`).
    /// - Parameters:
    ///   - validators: the council size (3f+1).
    ///   - managers: the number of managers.
    ///   - block: the block parameters.
    ///   - brokerConfig: the broker's configuration (nil: the development broker); the nodes use
    ///     its first listener, which must take them without TLS or a password.
    ///   - brokerPorts: listener ports to use instead of free ones, keyed by the configured port.
    public init(
        validators: Int = 4, managers: Int = 1, block: BlockParameters, brokerConfig: MosquittoConfig? = nil,
        brokerPorts: [Int: Int] = [:]
    ) async throws {
        var logger = Logger(label: "medledger.node.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["NODE_TEST_DEBUG"] == nil ? .error : .debug
        self.logger = logger
        directory = try TemporaryDirectory("node-net")
        channel = TestChannel(channel: "ward-7", validators: validators, managers: managers, block: block)
        broker = try await MosquittoBroker.start(
            config: brokerConfig ?? MosquittoConfig(text: BrokerConfigs.dev()), in: directory.file("broker"),
            ports: brokerPorts, logger: logger)
        genesisPath = directory.file("genesis.json")
        let encoder = JSONEncoder()
        try encoder.encode(channel.genesis).write(to: URL(fileURLWithPath: genesisPath))
        for (index, key) in channel.validatorKeys.enumerated() {
            try key.pemRepresentation.write(
                toFile: keyPath("validator-\(index + 1)"), atomically: true, encoding: .utf8)
        }
        for (index, key) in channel.managerKeys.enumerated() {
            try key.pemRepresentation.write(toFile: keyPath("manager-\(index + 1)"), atomically: true, encoding: .utf8)
        }
    }

    /// A node's key file.
    public func keyPath(_ id: String) -> String { directory.file("\(id).key") }
    /// A node's database.
    public func databasePath(_ id: String) -> String { directory.file("\(id).sqlite") }

    /// The managers' pool capacity for nodes started from now on (nil: the default).
    public var poolCapacity: Int?
    /// A device's share of the managers' pool for nodes started from now on (nil: the default).
    public var poolDeviceShare: Int?
    /// The managers' transaction pool capacity for nodes started from now on (nil: the default).
    public var transactionPoolCapacity: Int?

    /// Wall clocks for nodes started from now on, by node id (the others use `WallClock.nowMs`): a
    /// node whose clock is wrong.
    public var clocks: [String: @Sendable () -> UInt64] = [:]

    /// A node's configuration.
    public func configuration(_ id: String) -> NodeConfiguration {
        let role: NodeConfiguration.Role =
            id.hasPrefix("validator") ? .validator : id.hasPrefix("manager") ? .manager : .observer
        var configuration = NodeConfiguration(
            id: id, role: role, genesis: genesisPath, key: role == .observer ? nil : keyPath(id),
            database: databasePath(id), broker: .init(host: broker.host, port: broker.port), timeouts: Self.timeouts,
            poolCapacity: poolCapacity, http: .init(host: "127.0.0.1", port: 0))
        configuration.poolDeviceShare = poolDeviceShare
        configuration.transactionPoolCapacity = transactionPoolCapacity
        return configuration
    }

    /// Starts a node (again, after `stop`, from its store and journal) and waits until it is
    /// connected and subscribed.
    @discardableResult
    public func start(_ id: String) async throws -> LedgerNode {
        let node = try LedgerNode(
            configuration: configuration(id), logger: logger, clock: clocks[id] ?? WallClock.nowMs)
        let task = Task { try await node.run() }
        nodes[id] = (node, task)
        try await eventually(.seconds(20), "\(id) subscribed") { await node.isReady }
        return node
    }

    /// Starts the whole council and the managers.
    public func startAll() async throws {
        for index in 1...channel.validatorKeys.count { try await start("validator-\(index)") }
        for index in 1...channel.managerKeys.count { try await start("manager-\(index)") }
    }

    /// Stops a node as a crash would leave it: at once, whatever it was doing.
    public func stop(_ id: String) async {
        guard let entry = nodes.removeValue(forKey: id) else { return }
        await entry.node.stop()
        _ = try? await entry.task.value
    }

    /// Stops every node and the broker.
    public func shutdown() async {
        for id in nodes.keys.sorted() { await stop(id) }
        await broker.stop()
        directory.remove()
    }

    /// A running node.
    public func node(_ id: String) -> LedgerNode { nodes[id]!.node }

    /// Every running node's height and counters, a line each: what a test prints when the network
    /// did not do what it should (a stall shows in the timeouts, retransmissions and proposals).
    public func describe() async -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var lines: [String] = []
        for id in nodes.keys.sorted() {
            let node = nodes[id]!.node
            let counters = (try? encoder.encode(await node.counters)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
            lines.append("\(id): height \(await node.height), \(await node.consensusSummary), counters \(counters)")
        }
        return lines.joined(separator: "\n")
    }

    /// The heights of the running nodes.
    public func heights() async -> [String: UInt64] {
        var heights: [String: UInt64] = [:]
        for (id, entry) in nodes { heights[id] = await entry.node.height }
        return heights
    }

    /// Waits until every running node is at `height` or above.
    public func waitForHeight(_ height: UInt64, limit: Duration = .seconds(60)) async throws {
        do {
            try await eventually(limit, "every node at height \(height)") { [self] in
                await heights().values.allSatisfy { $0 >= height }
            }
        } catch let timedOut as TimedOut {
            throw TimedOut(what: "\(timedOut.what); the nodes:\n\(await describe())")
        }
    }

    /// A client of the test's own (a device, a registrar).
    public func client(_ id: String) async throws -> MQTTClient {
        let client = try MQTTClient(
            configuration: MQTTConfiguration(
                host: broker.host, port: broker.port, clientID: "\(id)-\(UUID().uuidString.prefix(6))"),
            logger: logger)
        try await within(.seconds(10), "connect \(id)") { try await client.connect() }
        return client
    }

    /// Registers devices through the registrar and waits until the registrations are committed.
    public func register(_ devices: [(id: String, key: PrivateKey, patient: String?)]) async throws {
        let registrar = try await client("registrar-1")
        defer { registrar.shutdown() }
        let submitter = TransactionSubmitter(
            client: registrar, channel: channel.genesis.channel, submitter: "registrar-1", key: channel.registrarKey)
        let outcomes: [TransactionSubmitter.Outcome]
        do {
            outcomes = try await submitter.submit(
                devices.map { .registerDevice(device: $0.id, key: $0.key.publicKey, patient: $0.patient) },
                timeout: transactionWait)
        } catch {
            throw TimedOut(
                what: "the registration of \(devices.count) device(s): \(error); the nodes:\n\(await describe())")
        }
        for (device, outcome) in zip(devices, outcomes) {
            guard case .committed = outcome else { throw TimedOut(what: "registration of \(device.id): \(outcome)") }
        }
    }

    /// The store of a node, opened read-only for the test's checks.
    public func store(_ id: String) throws -> LedgerStore { try LedgerStore(path: databasePath(id)) }
}
