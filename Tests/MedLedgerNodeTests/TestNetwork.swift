import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport

let testLogger: Logger = {
    var logger = Logger(label: "medledger.node.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["NODE_TEST_DEBUG"] == nil ? .error : .debug
    return logger
}()

/// A channel's network in one test: a real Mosquitto broker on a free loopback port, the
/// channel's files, and nodes (real `LedgerNode`s with their own SQLite stores and MQTT
/// connections) started and stopped by id.
final class TestNetwork: @unchecked Sendable {
    // @unchecked Sendable: `nodes` is only touched by the test's own task, one call at a time.
    let directory: TemporaryDirectory
    let broker: MosquittoBroker
    let channel: TestChannel
    let genesisPath: String
    private(set) var nodes: [String: (node: LedgerNode, task: Task<Void, any Error>)] = [:]

    static let timeouts = NodeConfiguration.Timeouts(
        proposeMs: 400, proposeDeltaMs: 200, prevoteMs: 200, precommitMs: 200, retransmitMs: 300)

    init(validators: Int = 4, managers: Int = 1, block: BlockParameters) async throws {
        directory = try TemporaryDirectory("node-net")
        channel = TestChannel(channel: "ward-7", validators: validators, managers: managers, block: block)
        broker = try await MosquittoBroker.start(
            config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory.file("broker"), logger: testLogger)
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

    func keyPath(_ id: String) -> String { directory.file("\(id).key") }
    func databasePath(_ id: String) -> String { directory.file("\(id).sqlite") }

    func configuration(_ id: String) -> NodeConfiguration {
        let role: NodeConfiguration.Role =
            id.hasPrefix("validator") ? .validator : id.hasPrefix("manager") ? .manager : .observer
        return NodeConfiguration(
            id: id, role: role, genesis: genesisPath, key: role == .observer ? nil : keyPath(id),
            database: databasePath(id), broker: .init(host: broker.host, port: broker.port), timeouts: Self.timeouts,
            http: .init(host: "127.0.0.1", port: 0))
    }

    /// Starts a node (again, after `stop`, from its store and journal).
    @discardableResult
    func start(_ id: String) throws -> LedgerNode {
        let node = try LedgerNode(configuration: configuration(id), logger: testLogger)
        let task = Task { try await node.run() }
        nodes[id] = (node, task)
        return node
    }

    /// Starts the whole council and the managers.
    func startAll() throws {
        for index in 1...channel.validatorKeys.count { try start("validator-\(index)") }
        for index in 1...channel.managerKeys.count { try start("manager-\(index)") }
    }

    /// Stops a node as a crash would leave it: at once, whatever it was doing.
    func stop(_ id: String) async {
        guard let entry = nodes.removeValue(forKey: id) else { return }
        await entry.node.stop()
        _ = try? await entry.task.value
    }

    /// Stops every node and the broker.
    func shutdown() async {
        for id in nodes.keys.sorted() { await stop(id) }
        await broker.stop()
        directory.remove()
    }

    func node(_ id: String) -> LedgerNode { nodes[id]!.node }

    /// Waits until every running node has connected and subscribed (what is published before
    /// a manager subscribes never reaches it).
    func waitUntilStarted(limit: Duration = .seconds(30)) async throws {
        let running = nodes.values.map(\.node)
        try await eventually(limit, "every node started") {
            for node in running where await !node.isStarted { return false }
            return true
        }
    }

    /// The heights of the running nodes.
    func heights() async -> [String: UInt64] {
        var heights: [String: UInt64] = [:]
        for (id, entry) in nodes { heights[id] = await entry.node.height }
        return heights
    }

    /// Waits until every running node is at `height` or above.
    func waitForHeight(_ height: UInt64, limit: Duration = .seconds(60)) async throws {
        try await eventually(limit, "every node at height \(height)") { [self] in
            await heights().values.allSatisfy { $0 >= height }
        }
    }

    /// A client of the test's own (a device, a registrar).
    func client(_ id: String) async throws -> MQTTClient {
        let client = try MQTTClient(
            configuration: MQTTConfiguration(
                host: broker.host, port: broker.port, clientID: "\(id)-\(UUID().uuidString.prefix(6))"),
            logger: testLogger)
        try await within(.seconds(10), "connect \(id)") { try await client.connect() }
        return client
    }

    /// Registers devices through the registrar and waits until the registrations are committed.
    func register(_ devices: [(id: String, key: PrivateKey, patient: String?)], firstSeq: UInt64 = 1) async throws {
        try await waitUntilStarted()
        let registrar = try await client("registrar-1")
        defer { registrar.shutdown() }
        let topics = ChannelTopics(channel: channel.genesis.channel)
        try await registrar.subscribe(topics.transactionReceipts("registrar-1"))
        let count = devices.count
        let waiting = Task {
            var committed = Set<UInt64>()
            for await message in registrar.messages {
                if let receipt = try? TransactionReceipt(decoding: message.payload),
                    case .committed = receipt.status
                {
                    committed.insert(receipt.seq)
                    if committed.count == count { return }
                }
            }
        }
        for (offset, device) in devices.enumerated() {
            let tx = channel.transaction(
                seq: firstSeq + UInt64(offset),
                .registerDevice(device: device.id, key: device.key.publicKey, patient: device.patient))
            try await registrar.publish(topic: topics.transactions("registrar-1"), payload: tx.bytes)
        }
        try await within(.seconds(60), "registrations committed") { await waiting.value }
    }

    /// The store of a node, opened read-only for the test's checks.
    func store(_ id: String) throws -> LedgerStore { try LedgerStore(path: databasePath(id)) }
}

/// Collects the receipts one device client gets until every seq in `seqs` is committed.
func waitForCommitted(
    _ client: MQTTClient, seqs: Set<UInt64>, limit: Duration = .seconds(60)
) async throws -> [UInt64: Receipt] {
    try await within(limit, "\(seqs.count) readings committed") {
        var committed: [UInt64: Receipt] = [:]
        for await message in client.messages {
            guard let receipt = try? Receipt(decoding: message.payload) else { continue }
            if case .committed = receipt.status, seqs.contains(receipt.seq) { committed[receipt.seq] = receipt }
            if committed.count == seqs.count { break }
        }
        return committed
    }
}
