import ArgumentParser
import Foundation
import Logging
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode

/// Where a registrar's transactions go: a devnet's directory, or a real deployment's broker.
struct RegistrarOptions: ParsableArguments {
    @Option(help: "A running devnet's directory (reads DIR/devnet.json).")
    var devnet: String?
    @Option(help: "The broker, HOST:PORT (with --channel and --registrar-key, for a real deployment).")
    var broker: String?
    @Option(help: "The channel id (with --broker).")
    var channel: String?
    @Option(help: "The registrar's private key (PKCS#8 PEM).")
    var registrarKey: String?
    @Option(help: "The registrar's id in the genesis.")
    var registrarId: String = "registrar-1"
    @Option(help: "A CA file: connect with TLS.")
    var tlsCa: String?
    @Option(help: "The client certificate for TLS (PEM).")
    var cert: String?
    @Option(help: "The client certificate's key (PEM).")
    var certKey: String?
    @Option(help: "The MQTT user name (default: the registrar id).")
    var username: String?
    @Option(help: "A file holding the MQTT password.")
    var passwordFile: String?
    @Option(help: "How long to wait for the commit, seconds.")
    var timeout: Int = 60

    /// Connects as the registrar and returns a submitter.
    func submitter() async throws -> (TransactionSubmitter, MQTTClient) {
        var host: String
        var port: Int
        var channelID: String
        var keyPath: String
        var registrar = registrarId
        if let devnet {
            let file = try DevnetFile.load(directory: devnet)
            host = file.broker.host
            port = file.broker.port
            channelID = file.channel
            keyPath = registrarKey ?? file.registrarKey
            registrar = file.registrarId
        } else {
            guard let broker, let channel, let registrarKey else {
                throw ValidationError("give --devnet DIR, or --broker HOST:PORT with --channel and --registrar-key")
            }
            let parts = broker.split(separator: ":")
            guard parts.count == 2, let number = Int(parts[1]) else {
                throw ValidationError("--broker must be HOST:PORT, not '\(broker)'")
            }
            host = String(parts[0])
            port = number
            channelID = channel
            keyPath = registrarKey
        }
        let key = try Files.privateKey(keyPath)
        var configuration = MQTTConfiguration(
            host: host, port: port, clientID: "\(registrar)-\(UUID().uuidString.prefix(8))",
            username: username ?? registrar,
            password: try passwordFile.map {
                try Files.readText($0, what: "password file").trimmingCharacters(in: .newlines)
            })
        if let tlsCa { configuration.tls = MQTTTLSOptions(caFile: tlsCa, certificateFile: cert, keyFile: certKey) }
        let client = try MQTTClient(configuration: configuration, logger: Logger(label: "medledger.device"))
        do {
            try await client.connect()
        } catch {
            throw ToolError("cannot connect to \(host):\(port): \(error)")
        }
        return (TransactionSubmitter(client: client, channel: channelID, submitter: registrar, key: key), client)
    }

    /// Submits one transaction, waits for its final receipt and prints it.
    func run(_ body: TransactionBody) async throws {
        let (submitter, client) = try await submitter()
        defer { client.shutdown() }
        let outcome: TransactionSubmitter.Outcome
        do {
            outcome = try await submitter.submit([body], timeout: .seconds(timeout))[0]
        } catch {
            throw ToolError("\(error)")
        }
        switch outcome {
        case .committed(let height, let blockHash):
            print("\(body.typeName) \(body.device): committed at height \(height), block \(blockHash.hex)")
        case .rejected(let reason):
            throw ToolError("\(body.typeName) \(body.device): rejected (\(reason.rawValue))")
        }
    }
}

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Register, assign and revoke devices by a registrar's signed transactions.",
        subcommands: [Register.self, Assign.self, Revoke.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a device and wait until the registration is committed.")
        @OptionGroup var registrar: RegistrarOptions
        @Option(help: "The device id, [A-Za-z0-9._-]{1,64}.")
        var device: String
        @Option(help: "The device's public key (SubjectPublicKeyInfo PEM, Ed25519 or P-256).")
        var publicKey: String
        @Option(help: "The pseudonymous patient the device is assigned to.")
        var patient: String?

        func validate() throws {
            guard Identifiers.isValidNodeID(device) else { throw ValidationError("'\(device)' is not a device id") }
            if let patient, !Identifiers.isValidNodeID(patient) {
                throw ValidationError("'\(patient)' is not a pseudonymous patient id")
            }
        }

        func run() async throws {
            let key = try Files.publicKey(publicKey)
            try await registrar.run(.registerDevice(device: device, key: key, patient: patient))
        }
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Assign a registered device to a pseudonymous patient and wait for the commit.")
        @OptionGroup var registrar: RegistrarOptions
        @Option(help: "The device id.")
        var device: String
        @Option(help: "The pseudonymous patient id.")
        var patient: String

        func run() async throws {
            try await registrar.run(.assignDevice(device: device, patient: patient))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device for good and wait until the revocation is committed.")
        @OptionGroup var registrar: RegistrarOptions
        @Option(help: "The device id.")
        var device: String

        func run() async throws {
            try await registrar.run(.revokeDevice(device: device))
        }
    }
}
