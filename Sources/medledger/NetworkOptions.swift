import ArgumentParser
import Foundation
import Logging
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore

/// Where a command reaches the channel: a running devnet's directory, or a deployment's broker
/// (with TLS and credentials).
struct NetworkOptions: ParsableArguments {
    @Option(help: "A running devnet's directory (reads DIR/devnet.json).")
    var devnet: String?
    @Option(help: "The broker for a real deployment: HOST:PORT, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS).")
    var broker: String?
    @Option(help: "A CA file: connect with TLS.")
    var tlsCa: String?
    @Option(help: "The client certificate for TLS (PEM).")
    var cert: String?
    @Option(help: "The client certificate's key (PEM).")
    var certKey: String?
    @Option(help: "The MQTT user name (default: the submitter's or requester's id).")
    var username: String?
    @Option(help: "A file holding the MQTT password.")
    var passwordFile: String?
    @Option(help: "How long to wait for the answer (a commit, a manager's response), seconds.")
    var timeout: Int = 60

    /// Whether a network was named.
    var isSet: Bool { devnet != nil || broker != nil }

    /// The devnet's description, when `--devnet` was given.
    func devnetFile() throws -> DevnetFile? {
        guard let devnet else { return nil }
        do {
            return try DevnetFile.load(directory: devnet)
        } catch {
            throw ToolError("\(error)")
        }
    }

    /// The broker's host and port.
    func endpoint() throws -> (host: String, port: Int) {
        if let file = try devnetFile() { return (file.broker.host, file.broker.port) }
        guard let broker else { throw ValidationError("give --devnet DIR or --broker HOST:PORT") }
        return try Self.parseBroker(broker, tls: tlsCa != nil)
    }

    /// `HOST:PORT`, `mqtt://HOST[:PORT]` (1883 by default) or `mqtts://HOST[:PORT]` (8883 by
    /// default, and only with a CA file for TLS).
    static func parseBroker(_ text: String, tls: Bool) throws -> (host: String, port: Int) {
        var rest = Substring(text)
        var defaultPort: Int?
        if rest.hasPrefix("mqtt://") {
            rest = rest.dropFirst("mqtt://".count)
            defaultPort = 1883
        } else if rest.hasPrefix("mqtts://") {
            guard tls else { throw ValidationError("--broker \(text) is TLS: give --tls-ca with the CA file") }
            rest = rest.dropFirst("mqtts://".count)
            defaultPort = 8883
        }
        if defaultPort != nil, rest.hasSuffix("/") { rest = rest.dropLast() }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        let problem = ValidationError("--broker must be HOST:PORT or mqtt[s]://HOST[:PORT], not '\(text)'")
        guard (1...2).contains(parts.count), !parts[0].isEmpty, !parts[0].contains("/") else { throw problem }
        guard parts.count == 2 else {
            guard let defaultPort else { throw problem }
            return (String(parts[0]), defaultPort)
        }
        guard let number = Int(parts[1]), (1...65535).contains(number) else { throw problem }
        return (String(parts[0]), number)
    }

    /// Connects as an identity: client id `{identity}-{random}`, user name `--username` or the
    /// identity, and MQTT 5 responses under `medledger/v1/_responses/{identity}/`.
    func connect(as identity: String) async throws -> MQTTClient {
        let (host, port) = try endpoint()
        var configuration = MQTTConfiguration(
            host: host, port: port, clientID: "\(identity)-\(UUID().uuidString.prefix(8))",
            username: username ?? identity,
            password: try passwordFile.map {
                try Files.readText($0, what: "password file").trimmingCharacters(in: .newlines)
            }, responseTopicPrefix: "medledger/v1/_responses/\(identity)")
        if let tlsCa { configuration.tls = MQTTTLSOptions(caFile: tlsCa, certificateFile: cert, keyFile: certKey) }
        let client = try MQTTClient(configuration: configuration, logger: Logger(label: "medledger.tool"))
        do {
            try await client.connect()
        } catch {
            client.shutdown()
            throw ToolError("cannot connect to \(host):\(port): \(error)")
        }
        return client
    }

    /// Submits one transaction and waits for its final receipt.
    /// - Returns: the signed transaction and where it was committed.
    func submit(_ body: TransactionBody, channel: String, submitter: String, key: PrivateKey) async throws -> (
        SignedTransaction, height: UInt64, block: Hash256
    ) {
        let client = try await connect(as: submitter)
        defer { client.shutdown() }
        let result: (transaction: SignedTransaction, outcome: TransactionSubmitter.Outcome)
        do {
            result = try await TransactionSubmitter(client: client, channel: channel, submitter: submitter, key: key)
                .submitSigned([body], timeout: .seconds(timeout))[0]
        } catch {
            throw ToolError("\(error)")
        }
        switch result.outcome {
        case .committed(let height, let block):
            return (result.transaction, height, block)
        case .rejected(let reason):
            throw ToolError("\(body.typeName) by \(submitter): rejected (\(reason.rawValue))")
        }
    }

    /// A devnet's store of a manager, once it holds at least `height` blocks.
    func devnetStore(atLeast height: UInt64 = 0) async throws -> LedgerStore {
        guard let file = try devnetFile(), let path = file.anyDatabase else {
            throw ToolError("the devnet names no database")
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            let store = try Parse.store(path)
            if store.height >= height { return store }
            guard ContinuousClock.now < deadline else {
                throw ToolError("\(path) did not reach height \(height) within \(timeout) s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
