import ArgumentParser
import Foundation
import MedLedgerCore

struct ChannelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channel", abstract: "Make and inspect channels.", subcommands: [Init.self, ManagerKeys.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the keys of a new channel's registrar, validators and managers, and write its genesis.",
            discussion: """
                Writes DIR/genesis.json and DIR/keys/<id>.key (PKCS#8 PEM, mode 0600) with <id>.pub beside it,
                for registrar-1, validator-1..N and manager-1..M.
                """)

        @Option(help: "The directory to write (made if missing; must not hold a genesis already).")
        var dir: String
        @Option(help: "The channel id, [a-z0-9-]{1,32}.")
        var channel: String
        @Option(help: "The number of validators: 3f+1 (1, 4, 7, 10, ...).")
        var validators: Int = 4
        @Option(help: "The number of managers.")
        var managers: Int = 1
        @Option(help: "The number of registrars.")
        var registrars: Int = 1
        @Option(help: "The algorithm of the keys made: ed25519 or es256.")
        var alg: SignatureAlgorithm = .ed25519
        @Option(help: "The most readings in a block.")
        var maxReadings: Int = 1000
        @Option(help: "The most bytes of signed data in a block.")
        var maxBytes: Int = 1 << 20
        @Option(help: "How long a manager waits before it cuts a block anyway, ms.")
        var timeoutMs: UInt64 = 200
        @Option(help: "How far ahead of a checker's clock a reading's time may be, ms.")
        var skewMs: UInt64 = 300_000

        func validate() throws {
            guard Identifiers.isValidChannelID(channel) else {
                throw ValidationError("channel id '\(channel)' is not [a-z0-9-]{1,32}")
            }
            guard validators >= 1, validators % 3 == 1 else {
                throw ValidationError("--validators must be 3f+1 (1, 4, 7, 10, ...), not \(validators)")
            }
            guard managers >= 1, registrars >= 1 else {
                throw ValidationError("--managers and --registrars must be at least 1")
            }
        }

        func run() throws {
            let genesis = try ChannelFiles.create(
                dir: dir, channel: channel, validators: validators, managers: managers, registrars: registrars,
                alg: alg, block: BlockParameters(maxReadings: maxReadings, maxBytes: maxBytes, timeoutMs: timeoutMs),
                skewMs: skewMs)
            print("channel \(channel): genesis \(genesis.hash.hex)")
            print(
                "wrote \(dir)/genesis.json and the keys of \(registrars) registrar(s), \(validators) validator(s), "
                    + "\(managers) manager(s) in \(dir)/keys")
        }
    }
}

extension ChannelCommand {
    struct ManagerKeys: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "manager-keys",
            abstract: "Write the public keys of a channel's managers, for devices to verify their receipts.",
            discussion: """
                Writes DIR/<id>.pub (PEM) for each manager the genesis names, and prints a line per
                manager: its id, algorithm and file. A device is given them as --manager-key ID=FILE:
                it trusts a committed or rejected receipt only when one of them signed it (PROTOCOL.md,
                "Signed receipts").
                """)

        @Option(help: "The channel's genesis.json.")
        var genesis: String
        @Option(help: "The directory to write the keys to (made if missing).")
        var out: String

        func run() throws {
            let genesis = try Files.genesis(self.genesis)
            do {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                for manager in genesis.managers {
                    let path = "\(out)/\(manager.id).pub"
                    try manager.publicKey.pemRepresentation.write(toFile: path, atomically: true, encoding: .utf8)
                    print("\(manager.id) \(manager.publicKey.algorithm.rawValue) \(path)")
                }
            } catch {
                throw ToolError("cannot write the managers' keys to \(out): \(error)")
            }
        }
    }
}

/// A channel's files: `DIR/genesis.json` and `DIR/keys/<id>.key` (PKCS#8 PEM, mode 0600) with
/// `<id>.pub` beside it, for registrar-1..R, validator-1..N and manager-1..M.
enum ChannelFiles {
    /// Makes the keys and writes the genesis.
    /// - Returns: the genesis.
    /// - Throws: `ToolError` when DIR holds a genesis already, or a file cannot be written.
    static func create(
        dir: String, channel: String, validators: Int, managers: Int, registrars: Int, alg: SignatureAlgorithm,
        block: BlockParameters, skewMs: UInt64
    ) throws -> Genesis {
        let genesisPath = "\(dir)/genesis.json"
        guard !FileManager.default.fileExists(atPath: genesisPath) else {
            throw ToolError("\(genesisPath) exists already; choose another --dir")
        }
        try Files.makeDirectory("\(dir)/keys")
        func members(_ prefix: String, _ count: Int) throws -> [Member] {
            try (1...count).map { index in
                let id = "\(prefix)-\(index)"
                let key = PrivateKey(generating: alg)
                try Files.write(key.pemRepresentation, to: keyPath(dir: dir, id: id), secret: true)
                try Files.write(key.publicKey.pemRepresentation, to: "\(dir)/keys/\(id).pub")
                return Member(id: id, publicKey: key.publicKey)
            }
        }
        let genesis = Genesis(
            channel: channel, createdAt: UInt64(Date().timeIntervalSince1970 * 1000),
            council: try members("validator", validators), managers: try members("manager", managers),
            registrars: try members("registrar", registrars), block: block, skewMs: skewMs)
        do {
            try genesis.validate()
        } catch {
            throw ToolError("\(error)")
        }
        try Files.write(try JSONOutput.encode(genesis), to: genesisPath)
        return genesis
    }

    /// Where a member's private key is.
    static func keyPath(dir: String, id: String) -> String { "\(dir)/keys/\(id).key" }
}
