public import ArgumentParser
import Dispatch
import Foundation
import Logging
public import MedLedgerBroker
import MedLedgerCore
import MedLedgerStore

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker", abstract: "Mosquitto configurations for a channel, and a broker to run.",
        subcommands: [Config.self, Run.self])

    struct Config: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write a hospital's Mosquitto configuration for a channel: dev, hospital, bridges, ACL, passwords.",
            discussion: """
                Reads the channel's genesis (managers, validators, registrars) and the devices (from --devices, \
                one id a line, and/or the registered devices of --db) and writes into --out:
                  dev.conf        a loopback, anonymous broker for a local devnet
                  hospital.conf   the hospital's broker: TLS on --port, authentication, the ACL, persistence
                  acl             who may use which topic: a device only its readings and receipts; a researcher
                                  or clinician (--professionals, or registered in --db) its transactions,
                                  fetches to managers and its own responses
                  bridges/*.conf  one per --bridge, to another hospital's broker (MQTT 5, TLS, durable)
                  passwd          (--auth password) the Mosquitto password file; passwords.txt has the plain
                                  passwords to hand out (mode 0600; kept and reused when run again)
                  identities.txt  every identity that needs a client certificate (for scripts/make-certs.sh)
                Paths inside the files point at --install-dir (default: --out itself) and its certs/.
                """)

        @Option(help: "The channel directory (as `medledger channel init --dir` writes it).")
        var dir: String
        @Option(help: "Where to write the configuration (made if missing).")
        var out: String
        @Option(help: "A file of device ids, one a line ('#' starts a comment).")
        var devices: String?
        @Option(help: "A file of researchers' and clinicians' ids, one a line ('#' starts a comment).")
        var professionals: String?
        @Option(help: "A ledger store whose registered (not revoked) devices and registered professionals are added.")
        var db: String?
        @Option(help: "This hospital's name, used for its bridge identity (bridge-<name>).")
        var hospital: String = "hospital-1"
        @Option(help: "How clients authenticate: certificate or password.")
        var auth: BrokerAuthentication = .certificate
        @Option(help: "The TLS port of the hospital broker.")
        var port: Int = 8883
        @Option(help: "The address the hospital broker listens on.")
        var bind: String = "0.0.0.0"
        @Option(help: "The port of dev.conf's loopback listener.")
        var devPort: Int = 1883
        @Option(help: "Where the files will be on the broker's host (default: the absolute --out).")
        var installDir: String?
        @Option(help: "Where the broker's persistence lives on its host.")
        var persistenceDir: String = "/var/lib/mosquitto/"
        @Option(
            name: .customLong("bridge"),
            help: "A bridge to another hospital's broker, NAME=HOST:PORT[,HOST:PORT...] (repeatable).")
        var bridges: [String] = []
        @Option(
            name: .customLong("accept-bridge"),
            help: "The identity of another hospital's bridge allowed to connect here (repeatable).")
        var acceptBridges: [String] = []
        @Flag(help: "Let the bridges carry readings too (for managers at another hospital).")
        var carryReadings = false

        func validate() throws {
            guard (1...65535).contains(port), (1...65535).contains(devPort) else {
                throw ValidationError("--port and --dev-port must be 1...65535")
            }
            guard Identifiers.isValidNodeID(hospital) else {
                throw ValidationError("--hospital '\(hospital)' is not [A-Za-z0-9._-]{1,64}")
            }
            for identity in acceptBridges where !Identifiers.isValidNodeID(identity) {
                throw ValidationError("--accept-bridge '\(identity)' is not [A-Za-z0-9._-]{1,64}")
            }
            for bridge in bridges { _ = try Self.parseBridge(bridge) }
        }

        static func parseBridge(_ text: String) throws -> (name: String, addresses: [String]) {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, Identifiers.isValidNodeID(parts[0]) else {
                throw ValidationError("--bridge '\(text)' is not NAME=HOST:PORT[,HOST:PORT...]")
            }
            let addresses = parts[1].split(separator: ",").map(String.init)
            for address in addresses {
                let hostPort = address.split(separator: ":")
                guard hostPort.count == 2, !hostPort[0].isEmpty, let port = Int(hostPort[1]), (1...65535).contains(port)
                else {
                    throw ValidationError("--bridge '\(text)': '\(address)' is not HOST:PORT")
                }
            }
            guard !addresses.isEmpty else { throw ValidationError("--bridge '\(text)' names no address") }
            return (parts[0], addresses)
        }

        /// Reads a file of ids, one a line, `#` starting a comment.
        static func readIDs(_ path: String, what: String) throws -> [String] {
            var ids: [String] = []
            for (number, line) in try Files.readText(path, what: "\(what) list").split(
                separator: "\n", omittingEmptySubsequences: false
            ).enumerated() {
                let id =
                    line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first
                    .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if id.isEmpty { continue }
                guard Identifiers.isValidNodeID(id) else {
                    throw ToolError("\(path):\(number + 1): '\(id)' is not a \(what) id ([A-Za-z0-9._-]{1,64})")
                }
                ids.append(id)
            }
            return ids
        }

        func run() throws {
            let genesis = try Files.genesis("\(dir)/genesis.json")
            var deviceIDs = try devices.map { try Self.readIDs($0, what: "device") } ?? []
            var professionals = try self.professionals.map { try Self.readIDs($0, what: "professional") } ?? []
            if let db {
                let store: LedgerStore
                do {
                    store = try LedgerStore(path: db)
                } catch {
                    throw ToolError("\(db): \(error)")
                }
                guard store.genesis.channel == genesis.channel else {
                    throw ToolError("\(db) holds channel '\(store.genesis.channel)', not '\(genesis.channel)'")
                }
                deviceIDs += store.state.devices.values.filter { !$0.revoked }.map(\.id).sorted()
                professionals += store.state.access.professionals.keys.sorted().filter { !professionals.contains($0) }
            }
            var unique: [String] = []
            var seen = Set<String>()
            for id in deviceIDs where seen.insert(id).inserted { unique.append(id) }
            let nodes = Set(
                genesis.council.map(\.id) + genesis.managers.map(\.id) + genesis.registrars.map(\.id) + professionals)
            if let clash = unique.first(where: { nodes.contains($0) }) {
                throw ToolError(
                    "device id '\(clash)' is also a node's or a professional's id; MQTT usernames must be unique")
            }

            let outURL = URL(fileURLWithPath: out).standardizedFileURL
            let install = installDir ?? outURL.path
            try Files.makeDirectory(outURL.path)
            let bridgeIdentity = "bridge-\(hospital)"
            let acl = ChannelACL(
                channel: genesis.channel, devices: unique, managers: genesis.managers.map(\.id),
                validators: genesis.council.map(\.id), registrars: genesis.registrars.map(\.id),
                professionals: professionals, bridges: acceptBridges, bridgesCarryReadings: carryReadings)
            try Files.write(acl.render(), to: "\(outURL.path)/acl")
            let limits = BrokerLimits(largestMessage: SyncResponse.maxEncodedBytes(genesis.block))
            try Files.write(BrokerConfigs.dev(port: devPort, limits: limits), to: "\(outURL.path)/dev.conf")
            let identities =
                genesis.managers.map(\.id) + genesis.council.map(\.id) + genesis.registrars.map(\.id)
                + professionals + unique + (bridges.isEmpty ? [] : [bridgeIdentity])
            try Files.write(identities.joined(separator: "\n") + "\n", to: "\(outURL.path)/identities.txt")

            if auth == .password {
                let plainPath = "\(outURL.path)/passwords.txt"
                var passwords: [String: String] = [:]
                if let existing = try? Files.readText(plainPath, what: "passwords") {
                    for line in existing.split(separator: "\n") {
                        let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                        if parts.count == 2 { passwords[parts[0]] = parts[1] }
                    }
                }
                var plain: [String] = []
                var hashed: [String] = []
                for identity in identities {
                    let password = passwords[identity] ?? PasswordFile.randomPassword()
                    plain.append("\(identity) \(password)")
                    hashed.append(PasswordFile.entry(user: identity, password: password))
                }
                try Files.write(plain.joined(separator: "\n") + "\n", to: plainPath, secret: true)
                try Files.write(hashed.joined(separator: "\n") + "\n", to: "\(outURL.path)/passwd", secret: true)
            }

            if !bridges.isEmpty { try Files.makeDirectory("\(outURL.path)/bridges") }
            for bridge in bridges {
                let (name, addresses) = try Self.parseBridge(bridge)
                let options = BridgeOptions(
                    name: name, addresses: addresses, channel: genesis.channel, remoteClientID: bridgeIdentity,
                    caFile: "\(install)/certs/ca.crt",
                    certificateFile: auth == .certificate ? "\(install)/certs/\(bridgeIdentity).crt" : nil,
                    keyFile: auth == .certificate ? "\(install)/certs/\(bridgeIdentity).key" : nil,
                    remoteUsername: auth == .password ? bridgeIdentity : nil, carryReadings: carryReadings)
                try Files.write(BrokerConfigs.bridge(options), to: "\(outURL.path)/bridges/\(name).conf")
            }
            let hospitalOptions = HospitalBrokerOptions(
                port: port, bindAddress: bind, caFile: "\(install)/certs/ca.crt",
                certificateFile: "\(install)/certs/broker.crt", keyFile: "\(install)/certs/broker.key",
                authentication: auth, passwordFile: "\(install)/passwd", aclFile: "\(install)/acl",
                persistenceDirectory: persistenceDir, limits: limits,
                includeDirectory: bridges.isEmpty ? nil : "\(install)/bridges")
            try Files.write(BrokerConfigs.hospital(hospitalOptions), to: "\(outURL.path)/hospital.conf")
            print(
                "channel \(genesis.channel): wrote dev.conf, hospital.conf, acl (\(unique.count) device(s), "
                    + "\(genesis.managers.count) manager(s), \(genesis.council.count) validator(s), "
                    + "\(genesis.registrars.count) registrar(s), \(professionals.count) researcher(s) or clinician(s), "
                    + "\(acceptBridges.count) bridge(s) accepted)"
                    + (bridges.isEmpty ? "" : ", \(bridges.count) bridge config(s)")
                    + (auth == .password ? ", passwd and passwords.txt" : "") + " in \(outURL.path)")
            if auth == .certificate {
                print(
                    "certificates: scripts/make-certs.sh \(outURL.path)/certs --server broker "
                        + "$(cat \(outURL.path)/identities.txt)")
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a Mosquitto broker from a configuration on a loopback port until SIGINT or SIGTERM.",
            discussion: """
                Starts `mosquitto` through MedLedger's harness: the listeners bind to 127.0.0.1 on free ports \
                (or --port for the first), persistence and the log go to --state-dir. Prints HOST:PORT (one line \
                per listener) once every listener accepts connections, then waits; stops the broker on SIGINT \
                or SIGTERM, and exits 1 if the broker dies.
                """)

        @Option(help: "The Mosquitto configuration file.")
        var config: String
        @Option(help: "The port of the first listener (default: a free one).")
        var port: Int?
        @Option(
            help:
                "The broker's directory: its rewritten config, persistence and mosquitto.log (default: a new temporary one)."
        )
        var stateDir: String?
        @Flag(help: "Stop when the process that started this one ends (for test harnesses and scripts).")
        var stopWithParent = false

        func run() async throws {
            let parent = getppid()
            let configuration: MosquittoConfig
            do {
                configuration = try MosquittoConfig(contentsOf: config)
            } catch {
                throw ToolError("\(error)")
            }
            var ports: [Int: Int] = [:]
            if let port, let first = configuration.listenerPorts.first { ports[first] = port }
            let directory =
                stateDir ?? (NSTemporaryDirectory() + "medledger-broker-\(UUID().uuidString.prefix(8))")
            var logger = Logger(label: "medledger.broker")
            logger.logLevel = .warning
            let broker: MosquittoBroker
            do {
                broker = try await MosquittoBroker.start(
                    config: configuration, in: directory, ports: ports, logger: logger)
            } catch {
                throw ToolError("\(error)")
            }
            // Unbuffered, so that a script reading the first line gets it at once.
            let lines = broker.ports.map { "\(broker.host):\($0)\n" }.joined()
            FileHandle.standardOutput.write(Data(lines.utf8))
            FileHandle.standardError.write(Data("broker pid \(broker.pid), log \(broker.logPath)\n".utf8))
            let stop = SignalWaiter(signals: [SIGINT, SIGTERM])
            var died = false
            while !stop.fired {
                if stopWithParent && getppid() != parent {
                    FileHandle.standardError.write(Data("the parent process ended; stopping the broker\n".utf8))
                    break
                }
                if !broker.isRunning {
                    died = true
                    break
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            await broker.stop()
            if died {
                throw ToolError("the broker exited:\n\(broker.logTail())")
            }
        }
    }
}

/// Notes SIGINT/SIGTERM instead of dying of them.
final class SignalWaiter: @unchecked Sendable {
    // @unchecked Sendable: `sources` is written once in init; `flag` is only set on the main
    // dispatch queue and read with a lock.
    private var sources: [any DispatchSourceSignal] = []
    private let lock = NSLock()
    private var flag = false

    init(signals: [Int32]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                self.flag = true
                self.lock.unlock()
            }
            source.resume()
            sources.append(source)
        }
    }

    var fired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return flag
    }
}

extension BrokerAuthentication: ExpressibleByArgument {}
