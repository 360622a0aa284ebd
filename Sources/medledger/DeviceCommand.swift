import ArgumentParser
import Foundation
import MedLedgerCore
import MedLedgerNode

/// Where a registrar's transactions go: a devnet's directory, or a real deployment's broker.
struct RegistrarOptions: ParsableArguments {
    @OptionGroup var network: NetworkOptions
    @Option(help: "The channel id (with --broker).")
    var channel: String?
    @Option(help: "The registrar's private key (PKCS#8 PEM).")
    var registrarKey: String?
    @Option(help: "The registrar's id in the genesis.")
    var registrarId: String = "registrar-1"

    /// Submits one transaction, waits for its final receipt and prints it.
    func run(_ body: TransactionBody) async throws {
        var channelID: String
        var keyPath: String
        var registrar = registrarId
        if let file = try network.devnetFile() {
            channelID = file.channel
            keyPath = registrarKey ?? file.registrarKey
            registrar = file.registrarId
        } else {
            guard network.broker != nil, let channel, let registrarKey else {
                throw ValidationError("give --devnet DIR, or --broker HOST:PORT with --channel and --registrar-key")
            }
            channelID = channel
            keyPath = registrarKey
        }
        let key = try Files.privateKey(keyPath)
        let (_, height, block) = try await network.submit(
            body, channel: channelID, submitter: registrar, key: key)
        print("\(body.typeName) \(body.device): committed at height \(height), block \(block.hex)")
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
