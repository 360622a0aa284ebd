import Foundation

/// `DIR/devnet.json`: what outside tools and devices need to join a running devnet.
public struct DevnetFile: Codable, Hashable, Sendable {
    /// The broker.
    public struct Broker: Codable, Hashable, Sendable {
        /// Its host.
        public var host: String
        /// Its port.
        public var port: Int

        /// Makes one.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// The broker (loopback, anonymous).
    public var broker: Broker
    /// The broker's process id.
    public var brokerPid: Int32
    /// The devnet command's own process id.
    public var pid: Int32
    /// The channel id.
    public var channel: String
    /// The genesis file.
    public var genesis: String
    /// The registrar's id.
    public var registrarId: String
    /// The registrar's private key (PKCS#8 PEM).
    public var registrarKey: String
    /// Each node's ledger database, by node id.
    public var databases: [String: String]
    /// Each node's configuration file, by node id.
    public var nodes: [String: String]

    /// Makes one.
    public init(
        broker: Broker, brokerPid: Int32, pid: Int32, channel: String, genesis: String, registrarId: String,
        registrarKey: String,
        databases: [String: String], nodes: [String: String]
    ) {
        self.broker = broker
        self.brokerPid = brokerPid
        self.pid = pid
        self.channel = channel
        self.genesis = genesis
        self.registrarId = registrarId
        self.registrarKey = registrarKey
        self.databases = databases
        self.nodes = nodes
    }

    /// Reads `DIR/devnet.json`.
    /// - Throws: `NodeError` naming what is wrong.
    public static func load(directory: String) throws(NodeError) -> DevnetFile {
        let path = "\(directory)/devnet.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeError(.file, "no devnet at '\(directory)': cannot read \(path) (is `medledger devnet` running?)")
        }
        do {
            return try JSONDecoder().decode(DevnetFile.self, from: data)
        } catch {
            throw NodeError(.file, "\(path) is not a devnet description: \(error)")
        }
    }

    /// Writes it to `DIR/devnet.json`.
    /// - Throws: when the file cannot be written.
    public func write(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: "\(directory)/devnet.json"), options: .atomic)
    }

    /// A database of a manager (or else a validator), for tools that read the ledger.
    public var anyDatabase: String? {
        databases.filter { $0.key.hasPrefix("manager") }.sorted { $0.key < $1.key }.first?.value
            ?? databases.sorted { $0.key < $1.key }.first?.value
    }
}
