import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerNode

#if canImport(Glibc)
    import Glibc
#endif

/// What `medledger devnet` and `medledger bench` both set up: the broker, the channel, each
/// node's configuration file and DIR/devnet.json.
enum DevnetSetup {
    /// Starts a broker with broker-config/dev.conf's settings on a free loopback port, its files in
    /// DIR/broker.
    static func startBroker(directory: String, logger: Logger) async throws -> MosquittoBroker {
        _ = FileLimit.raise(to: 65_536)
        do {
            return try await MosquittoBroker.start(
                config: MosquittoConfig(text: BrokerConfigs.dev()), in: "\(directory)/broker", logger: logger)
        } catch {
            throw ToolError("cannot start the broker: \(error)")
        }
    }

    /// Makes a channel of Ed25519 keys in DIR/channel (one registrar), unless one is there.
    /// - Returns: whether it made one.
    @discardableResult
    static func makeChannel(
        directory: String, channel: String, validators: Int, managers: Int, block: BlockParameters
    ) throws -> Bool {
        guard !FileManager.default.fileExists(atPath: "\(directory)/channel/genesis.json") else { return false }
        _ = try ChannelFiles.create(
            dir: "\(directory)/channel", channel: channel, validators: validators, managers: managers, registrars: 1,
            alg: .ed25519, block: block, skewMs: 300_000)
        return true
    }

    /// Writes every node's configuration in DIR/nodes (databases in DIR/data, status files in
    /// DIR/nodes, a web page on a free port) and DIR/devnet.json.
    /// - Returns: the description written to DIR/devnet.json.
    static func writeNodeFiles(directory: String, broker: MosquittoBroker) throws -> DevnetFile {
        let genesisPath = "\(directory)/channel/genesis.json"
        let genesis = try Files.genesis(genesisPath)
        var databases: [String: String] = [:]
        var nodeFiles: [String: String] = [:]
        for id in genesis.council.map(\.id) + genesis.managers.map(\.id) {
            let configuration = NodeConfiguration(
                id: id, role: id.hasPrefix("validator") ? .validator : .manager, genesis: genesisPath,
                key: ChannelFiles.keyPath(dir: "\(directory)/channel", id: id),
                database: "\(directory)/data/\(id).sqlite",
                broker: .init(host: broker.host, port: broker.port),
                timeouts: .init(
                    proposeMs: 500, proposeDeltaMs: 250, prevoteMs: 250, precommitMs: 250, retransmitMs: 500),
                statusFile: "\(directory)/nodes/\(id).status.json", http: .init(host: "127.0.0.1", port: 0))
            let path = "\(directory)/nodes/\(id).json"
            try Files.write(try JSONOutput.encode(configuration), to: path)
            databases[id] = configuration.database
            nodeFiles[id] = path
        }
        let description = DevnetFile(
            broker: .init(host: broker.host, port: broker.port), brokerPid: broker.pid, pid: getpid(),
            channel: genesis.channel, genesis: genesisPath, registrarId: genesis.registrars[0].id,
            registrarKey: ChannelFiles.keyPath(dir: "\(directory)/channel", id: genesis.registrars[0].id),
            databases: databases, nodes: nodeFiles)
        try description.write(directory: directory)
        return description
    }
}
