import ArgumentParser
import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerFleet
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// `medledger-fleet`: a fleet of simulated devices against a channel's brokers, with the
/// accounting checked against a replica's database.
@main
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medledger-fleet",
        abstract: "Run a fleet of simulated devices against a channel and check what the ledger made of it.",
        discussion: """
            Each device has its own key, its own MQTT connection (its id as client id and username), its \
            persisted seq counter and a bounded store of unanswered readings. The fleet registers its devices \
            through the registrar (unless --no-register), publishes until --duration ends or SIGINT/SIGTERM, \
            drains the outstanding receipts, prints the accounting (--json: as JSON on standard output) and \
            checks it against a replica's database (--audit-db; with --devnet a manager's by default). \
            Exit status: 0 everything matched, 1 a mismatch, 2 the fleet could not run (files, brokers, \
            registration), 64 a bad command line. firmware-sim/README.md lists the faults and their reasons.
            """)

    @Option(help: "The number of devices.")
    var devices: Int = 100
    @Option(help: "Readings per second of each device (e.g. 0.1: one every 10 s).")
    var rate: Double = 1
    @Option(help: "Seconds to publish (default: until SIGINT/SIGTERM).")
    var duration: Double?
    @Option(help: "The seed of keys, patients, values, faults and timing.")
    var seed: UInt64 = 1
    @Option(name: .customLong("broker"), help: "A broker, HOST:PORT; repeat for the fail-over list, in order.")
    var brokers: [String] = []
    @Option(help: "A devnet's directory: its devnet.json names the broker, channel, genesis, registrar and databases.")
    var devnet: String?
    @Option(help: "The channel id (or --genesis, or --devnet).")
    var channel: String?
    @Option(help: "The channel's genesis.json (channel id, skew window, managers).")
    var genesis: String?
    @Option(help: "How many managers answer (default: from the genesis, else 1).")
    var managers: Int?
    @Option(help: "The registrar's private key (PKCS#8 PEM).")
    var registrarKey: String?
    @Option(help: "The registrar's id.")
    var registrarId: String?
    @Flag(help: "Do not register devices (the fleet file's devices are registered already).")
    var noRegister = false
    @Option(help: "The fleet's state directory (fleet.json, seqs); default .fleet, or DIR/fleet with --devnet.")
    var state: String?
    @Option(help: "The fleet file (default: STATE/fleet.json).")
    var fleetFile: String?
    @Option(help: "The prefix of new device ids (default: sim- and four random hex digits).")
    var prefix: String?
    @Option(help: "TLS: the CA file that signed the brokers' certificates.")
    var tlsCa: String?
    @Option(help: "TLS: a client certificate (PEM); {device} in the path is replaced by the device id.")
    var cert: String?
    @Option(help: "TLS: the client certificate's key; {device} is replaced by the device id.")
    var key: String?
    @Option(help: "Passwords, one USER:PASSWORD a line (USER * for everyone else).")
    var passwordFile: String?
    @Option(help: "MQTT protocol of the devices: 3.1.1 or 5.")
    var mqttVersion: String = "3.1.1"
    @Option(help: "Faults by share of readings: fault=share,... or all=share (see firmware-sim/README.md).")
    var faults: String = ""
    @Option(help: "The share of new devices never registered (refused as unknown-device).")
    var unregisteredShare: Double = 0
    @Option(help: "The share of patients with abnormal (but plausible) values.")
    var abnormalShare: Double = 0.1
    @Option(help: "Revoke this many registered devices mid-run.")
    var revoke: Int = 0
    @Option(help: "Seconds after the start to revoke them (default: half the duration, or 10).")
    var revokeAfter: Double?
    @Option(help: "The share of devices that go offline once and then deliver their backlog.")
    var offlineShare: Double = 0
    @Option(help: "Seconds an offline period lasts.")
    var offlineDuration: Double = 20
    @Option(help: "Seconds a device stays away after an abrupt disconnect.")
    var disconnectPause: Double = 2
    @Option(help: "Readings a burst makes at once.")
    var burstSize: Int = 10
    @Option(help: "Signature algorithms of new devices: ed25519, es256 or mixed.")
    var alg: String = "ed25519"
    @Option(help: "Seconds before a kept reading is sent again.")
    var resend: Double = 30
    @Option(help: "The most readings a device keeps unanswered.")
    var storeCapacity: Int = 256
    @Option(help: "Seqs reserved at a time (written durably before use).")
    var seqChunk: Int = 100
    @Option(help: "Seconds to wait after publishing for the outstanding receipts.")
    var drain: Double = 30
    @Option(help: "Threads that drive the MQTT connections.")
    var threads: Int = 2
    @Option(help: "A replica's database to audit against (default with --devnet: a manager's).")
    var auditDb: String?
    @Flag(help: "Skip the audit against a database.")
    var noAudit = false
    @Flag(help: "Print the report as JSON on standard output.")
    var json = false
    @Option(help: "Seconds between status lines on standard error (0: none).")
    var statusInterval: Double = 5
    @Option(help: "The log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"
    @Option(help: "The log format on standard error: text, or json (one object a line).")
    var logFormat: String = "text"

    func validate() throws {
        guard devices >= 1 else { throw ValidationError("--devices must be at least 1") }
        guard rate > 0 else { throw ValidationError("--rate must be positive") }
        if let duration, duration < 0 { throw ValidationError("--duration must not be negative") }
        guard devnet != nil || !brokers.isEmpty else {
            throw ValidationError("give --broker HOST:PORT or --devnet DIR")
        }
        guard devnet != nil || channel != nil || genesis != nil else {
            throw ValidationError("give --channel, --genesis or --devnet")
        }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue))")
        }
        guard ["3.1.1", "5"].contains(mqttVersion) else { throw ValidationError("--mqtt-version is 3.1.1 or 5") }
        guard revoke >= 0, threads >= 1, drain >= 0, resend > 0 else {
            throw ValidationError("--revoke, --threads, --drain and --resend must be positive")
        }
        guard AlgorithmMix(rawValue: alg) != nil else { throw ValidationError("--alg is ed25519, es256 or mixed") }
        if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together") }
        if cert != nil, tlsCa == nil { throw ValidationError("--cert and --key need --tls-ca (they are TLS's)") }
        for broker in brokers where Self.endpoint(broker) == nil {
            throw ValidationError("'\(broker)' is not HOST:PORT")
        }
        do {
            _ = try FaultPlan(parsing: faults)
        } catch {
            throw ValidationError("--faults: \(error)")
        }
    }

    static func endpoint(_ text: String) -> MQTTEndpoint? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port), colon != text.startIndex
        else { return nil }
        return MQTTEndpoint(host: String(text[..<colon]), port: port)
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LogBootstrap.bootstrap(json: logFormat == "json", level: level)
        let logger = Logger(label: "medledger.fleet")
        do {
            let code = try await execute(logger: logger)
            if code != 0 { throw ExitCode(code) }
        } catch let error as FleetError {
            FileHandle.standardError.write(Data("medledger-fleet: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// Runs the fleet; returns the exit status.
    func execute(logger: Logger) async throws -> Int32 {
        // The devnet's description, the genesis, the channel.
        var description: DevnetFile?
        if let devnet {
            do {
                description = try DevnetFile.load(directory: devnet)
            } catch {
                throw FleetError(.file, "\(error)")
            }
        }
        let genesisPath = genesis ?? description?.genesis
        var loadedGenesis: Genesis?
        if let genesisPath {
            guard let data = FileManager.default.contents(atPath: genesisPath) else {
                throw FleetError(.file, "cannot read the genesis '\(genesisPath)'")
            }
            do {
                loadedGenesis = try JSONDecoder().decode(Genesis.self, from: data)
            } catch {
                throw FleetError(.file, "\(genesisPath) is not a genesis file: \(error)")
            }
        }
        guard let channelID = channel ?? loadedGenesis?.channel ?? description?.channel else {
            throw FleetError(.badOption, "no channel: give --channel, --genesis or --devnet")
        }
        var endpoints = brokers.compactMap(Self.endpoint)
        if endpoints.isEmpty, let broker = description?.broker {
            endpoints = [MQTTEndpoint(host: broker.host, port: broker.port)]
        }
        let stateDirectory = state ?? devnet.map { "\($0)/fleet" } ?? ".fleet"
        var options = FleetOptions(
            devices: devices, brokers: endpoints, channel: channelID, stateDirectory: stateDirectory)
        if let loadedGenesis {
            options.skewMs = loadedGenesis.skewMs
            options.managers = max(1, loadedGenesis.managers.count)
            options.receiptSigners = loadedGenesis.managers
        } else {
            logger.warning("receipts are not verified: give --genesis or --devnet to check the managers' signatures")
        }
        if let managers { options.managers = managers }
        options.algorithms = AlgorithmMix(rawValue: alg)!
        options.rate = rate
        options.duration = duration.map { .milliseconds(Int64($0 * 1000)) }
        options.seed = seed
        options.faults = try FaultPlan(parsing: faults)
        options.unregisteredShare = unregisteredShare
        options.abnormalShare = abnormalShare
        options.offlineShare = offlineShare
        options.offlineDuration = .milliseconds(Int64(offlineDuration * 1000))
        options.disconnectPause = .milliseconds(Int64(disconnectPause * 1000))
        options.burstSize = burstSize
        options.resendInterval = .milliseconds(Int64(resend * 1000))
        options.storeCapacity = storeCapacity
        options.seqChunk = seqChunk
        options.drainTime = .milliseconds(Int64(drain * 1000))
        options.eventLoopThreads = threads
        options.fleetFile = fleetFile
        options.devicePrefix = prefix
        options.protocolVersion = mqttVersion == "5" ? .v5 : .v311
        if let tlsCa {
            options.tls = MQTTTLSOptions(caFile: tlsCa, certificateFile: cert, keyFile: key)
        }
        if let passwordFile { options.passwords = try Self.passwords(passwordFile) }

        // One descriptor per connection.
        let limit = FileLimit.raise(to: devices + 1024)
        guard limit >= devices + 64 else {
            throw FleetError(
                .badOption, "the open-file limit is \(limit); \(devices) devices need \(devices + 64) (ulimit -n)")
        }

        let fleet = try Fleet(options: options, logger: logger)
        let registrarPath = registrarKey ?? description?.registrarKey
        let registrarName = registrarId ?? description?.registrarId ?? loadedGenesis?.registrars.first?.id
        var registrar: FleetRegistrar?
        if let registrarPath, let registrarName {
            guard let pem = try? String(contentsOfFile: registrarPath, encoding: .utf8) else {
                throw FleetError(.file, "cannot read the registrar key '\(registrarPath)'")
            }
            do {
                registrar = FleetRegistrar(id: registrarName, key: try PrivateKey(pem: pem))
            } catch {
                throw FleetError(.file, "\(registrarPath): \(error)")
            }
        }
        if !noRegister {
            guard let registrar else {
                throw FleetError(
                    .badOption, "registering needs --registrar-key and --registrar-id (or --devnet); or --no-register")
            }
            let summary = try await fleet.register(registrarID: registrar.id, registrarKey: registrar.key)
            if !json {
                print(
                    "fleet: \(summary.registered) device(s) registered, \(summary.alreadyRegistered) already, "
                        + "\(summary.leftUnregistered) left unregistered")
            }
        } else if let registrar {
            await fleet.useRegistrar(id: registrar.id, key: registrar.key)
        }
        if revoke > 0, registrar == nil {
            throw FleetError(
                .badOption, "--revoke needs the registrar (--registrar-key and --registrar-id, or --devnet)")
        }

        // The audit's database and its height now (the readings of this run come after it).
        let auditPath = noAudit ? nil : (auditDb ?? description?.anyDatabase)
        var fromHeight: UInt64 = 1
        if let auditPath {
            do {
                fromHeight = try LedgerStore(path: auditPath).height + 1
            } catch {
                throw FleetError(.file, "cannot open the audit database '\(auditPath)': \(error)")
            }
        }

        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let signalTask = Task {
            for await _ in signals {
                await fleet.stop()
                return
            }
        }
        defer { signalTask.cancel() }
        let statusTask = Task { [statusInterval] in
            guard statusInterval > 0 else { return }
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(statusInterval * 1000)))
                let stats = await fleet.stats()
                guard stats.phase == .running || stats.phase == .draining else { continue }
                FileHandle.standardError.write(Data("\(stats.statusLine)\n".utf8))
            }
        }
        defer { statusTask.cancel() }
        let revokeTask = Task { [revoke, revokeAfter, duration] () -> String? in
            guard revoke > 0 else { return nil }
            let after = revokeAfter ?? duration.map { $0 / 2 } ?? 10
            try? await Task.sleep(for: .milliseconds(Int64(after * 1000)))
            guard await fleet.currentPhase == .running else { return "the run ended before the revocation" }
            let candidates = await fleet.devices.filter { $0.registered && !$0.revoked }.map(\.id)
            let chosen = Array(candidates.suffix(revoke))
            do {
                try await fleet.revoke(chosen)
            } catch {
                return "revocation failed: \(error)"
            }
            return nil
        }

        var report = try await fleet.run()
        if let problem = await revokeTask.value {
            FileHandle.standardError.write(Data("medledger-fleet: \(problem)\n".utf8))
        }
        if let auditPath { report = try await fleet.audit(againstDatabase: auditPath, fromHeight: fromHeight) }
        await fleet.shutdown()
        let memory = Self.memory()
        if json {
            struct Output: Encodable {
                var report: FleetReport
                var peakResidentBytes: Int
                var cpuSeconds: Double
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(
                Output(report: report, peakResidentBytes: memory.peak, cpuSeconds: memory.cpuSeconds))
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(Self.text(report, memory: memory))
        }
        return report.isCorrect ? 0 : 1
    }

    /// Reads `USER:PASSWORD` lines.
    static func passwords(_ path: String) throws(FleetError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw FleetError(.file, "cannot read the password file '\(path)'")
        }
        var passwords: [String: String] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw FleetError(.file, "\(path) line \(number + 1) is not USER:PASSWORD")
            }
            passwords[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return passwords
    }

    /// The process's peak resident memory (VmHWM) and CPU time.
    static func memory() -> (peak: Int, cpuSeconds: Double) {
        var peak = 0
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                peak = (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
            }
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
        return (peak, cpu)
    }

    /// The report for a person, with the process's memory and CPU.
    static func text(_ report: FleetReport, memory: (peak: Int, cpuSeconds: Double)) -> String {
        report.summary(extra: [
            "  process: peak resident \(memory.peak / 1_048_576) MiB, cpu \(String(format: "%.1f", memory.cpuSeconds)) s"
        ])
    }
}
