import Foundation
public import MedLedgerConsensus
internal import MedLedgerCore
public import MedLedgerMQTT

/// How one node runs: its id and role on a channel, its keys and files, its broker.
/// Read from the JSON file `medledger node --config FILE` names; relative paths are relative to
/// that file's directory.
public struct NodeConfiguration: Codable, Hashable, Sendable {
    /// What a node does.
    public enum Role: String, Codable, Hashable, Sendable, CaseIterable {
        /// A council member: checks every proposed block in full and votes.
        case validator
        /// Checks readings and transactions, keeps the pool, proposes in its turn, sends receipts,
        /// serves queries; keeps a full replica.
        case manager
        /// Follows the commits and keeps a verified replica (an archive, an auditor).
        case observer
    }

    /// The broker a node connects to.
    public struct Broker: Codable, Hashable, Sendable {
        /// The host.
        public var host: String
        /// The port.
        public var port: Int
        /// The user name (default: the node id).
        public var username: String?
        /// The password.
        public var password: String?
        /// The CA file for TLS (TLS is on when it is set).
        public var caFile: String?
        /// The node's client certificate (PEM), for brokers that authenticate by certificate.
        public var certificateFile: String?
        /// The client certificate's key (PEM).
        public var keyFile: String?

        /// Makes one.
        public init(
            host: String, port: Int, username: String? = nil, password: String? = nil, caFile: String? = nil,
            certificateFile: String? = nil, keyFile: String? = nil
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    /// The node's id: a validator's or manager's id in the genesis; any id for an observer.
    public var id: String
    /// What it does.
    public var role: Role
    /// The channel's genesis.json.
    public var genesis: String
    /// The node's private key (PKCS#8 PEM); validators and managers only.
    public var key: String?
    /// The ledger's SQLite file.
    public var database: String
    /// The node's journal (consensus state, evidence); default: the database path + `.journal`.
    public var journal: String?
    /// The broker (the first one); more in `fallbackBrokers`.
    public var broker: Broker
    /// Further brokers tried in turn when one cannot be reached.
    public var fallbackBrokers: [Broker]?
    /// Consensus timeouts, ms (defaults: docs/CONSENSUS.md).
    public var timeouts: Timeouts?
    /// The most readings the manager's pool holds (default: 20 blocks' worth).
    public var poolCapacity: Int?
    /// The most readings one device may have in the pool (default: an eighth of it, at least 256):
    /// a device that floods is answered `busy` while the others are still taken.
    public var poolDeviceShare: Int?
    /// The most transactions the manager's pool holds (default: 1000); more are answered `busy`.
    public var transactionPoolCapacity: Int?
    /// A file the node writes its status to (JSON) after every commit, for tools such as the devnet.
    public var statusFile: String?
    /// Where the node serves its read-only web page, `/metrics` and `/status.json` (none when nil).
    public var http: HTTP?

    /// The node's HTTP endpoint.
    public struct HTTP: Codable, Hashable, Sendable {
        /// The address to listen on, e.g. `127.0.0.1`.
        public var host: String
        /// The TCP port; 0 picks a free one, which the node writes into its status file (`http`).
        public var port: Int

        /// Makes one.
        public init(host: String = "127.0.0.1", port: Int = 0) {
            self.host = host
            self.port = port
        }
    }

    /// How long a manager holds a fetch response for its access log to be committed before it
    /// refuses the fetch as `unavailable`, ms (default 30,000).
    public var accessLogWaitMs: UInt64?

    /// Consensus timeouts, ms.
    public struct Timeouts: Codable, Hashable, Sendable {
        /// The propose step's base timeout.
        public var proposeMs: UInt64?
        /// What each round adds to it.
        public var proposeDeltaMs: UInt64?
        /// The prevote step's base timeout.
        public var prevoteMs: UInt64?
        /// The precommit step's base timeout.
        public var precommitMs: UInt64?
        /// How often own votes and proposals are sent again.
        public var retransmitMs: UInt64?
        /// The longest any step's timeout grows to (an idle channel's rounds reach it).
        public var maxMs: UInt64?

        /// Makes one.
        public init(
            proposeMs: UInt64? = nil, proposeDeltaMs: UInt64? = nil, prevoteMs: UInt64? = nil,
            precommitMs: UInt64? = nil, retransmitMs: UInt64? = nil, maxMs: UInt64? = nil
        ) {
            self.proposeMs = proposeMs
            self.proposeDeltaMs = proposeDeltaMs
            self.prevoteMs = prevoteMs
            self.precommitMs = precommitMs
            self.retransmitMs = retransmitMs
            self.maxMs = maxMs
        }

        /// The consensus policy these give.
        public var policy: TimeoutPolicy {
            var policy = TimeoutPolicy()
            if let proposeMs { policy.proposeMs = proposeMs }
            if let proposeDeltaMs { policy.proposeDeltaMs = proposeDeltaMs }
            if let prevoteMs { policy.prevoteMs = prevoteMs }
            if let precommitMs { policy.precommitMs = precommitMs }
            if let retransmitMs { policy.retransmitMs = retransmitMs }
            if let maxMs { policy.maxMs = maxMs }
            return policy
        }
    }

    /// Makes a configuration.
    public init(
        id: String, role: Role, genesis: String, key: String?, database: String, journal: String? = nil,
        broker: Broker, fallbackBrokers: [Broker]? = nil, timeouts: Timeouts? = nil, poolCapacity: Int? = nil,
        statusFile: String? = nil, http: HTTP? = nil
    ) {
        self.id = id
        self.role = role
        self.genesis = genesis
        self.key = key
        self.database = database
        self.journal = journal
        self.broker = broker
        self.fallbackBrokers = fallbackBrokers
        self.timeouts = timeouts
        self.poolCapacity = poolCapacity
        self.statusFile = statusFile
        self.http = http
    }

    /// Reads a configuration file, resolving its relative paths against its directory.
    /// - Parameter path: the JSON file.
    /// - Throws: `NodeError` naming what is wrong.
    public static func load(_ path: String) throws(NodeError) -> NodeConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeError(.configuration, "cannot read the node configuration '\(path)'")
        }
        var configuration: NodeConfiguration
        do {
            configuration = try JSONDecoder().decode(NodeConfiguration.self, from: data)
        } catch {
            throw NodeError(.configuration, "\(path) is not a node configuration: \(error)")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ file: String?) -> String? {
            guard let file, !file.hasPrefix("/") else { return file }
            return base.appendingPathComponent(file).path
        }
        configuration.genesis = resolve(configuration.genesis)!
        configuration.key = resolve(configuration.key)
        configuration.database = resolve(configuration.database)!
        configuration.journal = resolve(configuration.journal)
        configuration.statusFile = resolve(configuration.statusFile)
        for index in ([configuration.broker] + (configuration.fallbackBrokers ?? [])).indices {
            func fix(_ broker: inout Broker) {
                broker.caFile = resolve(broker.caFile)
                broker.certificateFile = resolve(broker.certificateFile)
                broker.keyFile = resolve(broker.keyFile)
            }
            if index == 0 { fix(&configuration.broker) } else { fix(&configuration.fallbackBrokers![index - 1]) }
        }
        try configuration.validate()
        return configuration
    }

    /// Checks what can be checked without the files.
    /// - Throws: `NodeError` naming what is wrong.
    public func validate() throws(NodeError) {
        guard Identifiers.isValidNodeID(id) else { throw NodeError(.configuration, "node id '\(id)' is not valid") }
        if role != .observer, key == nil {
            throw NodeError(.configuration, "a \(role.rawValue) needs a key file ('key')")
        }
        guard (1...65535).contains(broker.port) else {
            throw NodeError(.configuration, "broker port \(broker.port) is not a TCP port")
        }
        for (name, value) in [
            ("poolCapacity", poolCapacity), ("poolDeviceShare", poolDeviceShare),
            ("transactionPoolCapacity", transactionPoolCapacity),
        ] {
            if let value, value < 1 { throw NodeError(.configuration, "\(name) must be at least 1, not \(value)") }
        }
        if let http {
            guard (0...65535).contains(http.port) else {
                throw NodeError(.configuration, "http port \(http.port) is not a TCP port (0: a free one)")
            }
            guard !http.host.isEmpty else { throw NodeError(.configuration, "http host is empty") }
        }
    }

    /// The MQTT configuration of the node's connection: a durable session (the broker keeps what
    /// is published to the node while it is away), MQTT 5, its id as client id and user name.
    public var mqtt: MQTTConfiguration {
        let brokers = [broker] + (fallbackBrokers ?? [])
        var configuration = MQTTConfiguration(
            host: broker.host, port: broker.port, clientID: id, protocolVersion: .v5, cleanStart: false,
            sessionExpiry: 600, keepAlive: 10, username: broker.username ?? id, password: broker.password)
        configuration.endpoints = brokers.map { MQTTEndpoint(host: $0.host, port: $0.port) }
        if let caFile = broker.caFile {
            configuration.tls = MQTTTLSOptions(
                caFile: caFile, certificateFile: broker.certificateFile, keyFile: broker.keyFile)
        }
        configuration.maxInflight = 1000
        configuration.receiveBufferCapacity = 65_536
        configuration.reconnect = MQTTReconnectPolicy(
            minimumDelay: .milliseconds(50), maximumDelay: .seconds(5), jitter: 0.5)
        return configuration
    }
}

/// A node's failure: a bad configuration, files it cannot use, a broker it cannot reach.
public struct NodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Hashable, Sendable {
        /// The configuration is invalid.
        case configuration
        /// A key, genesis or store file is unusable.
        case file
        /// The broker failed.
        case network
        /// Catching up from peers failed.
        case sync
    }
    /// What kind of failure.
    public var code: Code
    /// What is wrong, for a person.
    public var message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
