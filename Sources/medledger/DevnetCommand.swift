import ArgumentParser
import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerFleet
import MedLedgerNode
import MedLedgerStore
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

struct DevnetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devnet",
        abstract: "Run a local network: a Mosquitto broker, the council, managers and a fleet of simulated devices.",
        discussion: """
            Starts a broker (broker-config/dev.conf's settings) on a free loopback port, makes a channel in DIR \
            (or reuses the one there), starts every validator and manager as its own `medledger node` process, \
            registers a fleet of simulated devices and runs it, and shows one status line. Ctrl-C stops it all, \
            prints a summary and verifies every replica from genesis. DIR/devnet.json tells other tools and \
            devices how to join: the broker, the channel, the genesis, the registrar's key and every node's \
            database. Node logs are in DIR/logs.
            """)

    @Option(help: "The devnet's directory (made, or reused when it holds a devnet).")
    var dir: String = ".devnet"
    @Option(help: "The number of validators: 3f+1.")
    var validators: Int = 4
    @Option(help: "The number of managers.")
    var managers: Int = 2
    @Option(help: "The number of simulated devices (0: the network alone).")
    var devices: Int = 100
    @Option(help: "Readings per second of each device.")
    var rate: Double = 1
    @Option(help: "Stop after this many seconds (default: run until Ctrl-C).")
    var duration: Double?
    @Option(help: "Faults the fleet injects, fault=share,... (see `medledger-fleet --help`).")
    var faults: String = ""
    @Option(help: "The fleet's random seed.")
    var seed: UInt64 = 1
    @Option(help: "The most readings in a block (a new channel only).")
    var maxReadings: Int = 500
    @Option(help: "How long a manager waits before it cuts a block anyway, ms (a new channel only).")
    var blockTimeoutMs: UInt64 = 50
    @Option(help: "The channel id (a new channel only).")
    var channel: String = "devnet"
    @Flag(help: "Start from scratch: remove DIR's devnet first.")
    var fresh = false
    @Option(help: "Seconds between status lines when the output is not a terminal.")
    var statusInterval: Double = 5
    @Option(help: "The log format of the devnet (standard error) and of its nodes (DIR/logs): text or json.")
    var logFormat: LogFormat = .text
    @Option(help: "The nodes' log level (the devnet's own is warning): trace, debug, info, notice, warning, error.")
    var logLevel = LogLevel(.info)

    func validate() throws {
        guard validators >= 1, validators % 3 == 1 else { throw ValidationError("--validators must be 3f+1") }
        guard managers >= 1 else { throw ValidationError("--managers must be at least 1") }
        guard devices >= 0, rate > 0 else { throw ValidationError("--devices must be >= 0 and --rate > 0") }
    }

    func run() async throws {
        let directory = URL(fileURLWithPath: dir).standardizedFileURL.path
        try prepare(directory)
        LogSetup.bootstrap(format: logFormat, level: LogLevel(.warning))
        let logger = Logger(label: "medledger.devnet")
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)

        let broker = try await DevnetSetup.startBroker(directory: directory, logger: logger)
        let network = DevnetProcesses(
            directory: directory, broker: broker,
            logArguments: ["--log-level", logLevel.level.rawValue, "--log-format", logFormat.rawValue])
        do {
            try await runNetwork(network, directory: directory, signals: signals)
        } catch {
            await network.stopAll()
            await broker.stop()
            throw error
        }
    }

    /// Makes or checks DIR and the channel in it.
    func prepare(_ directory: String) throws {
        let manager = FileManager.default
        if fresh,
            manager.fileExists(atPath: "\(directory)/devnet.json") || manager.fileExists(atPath: "\(directory)/channel")
        {
            try? manager.removeItem(atPath: directory)
        }
        if manager.fileExists(atPath: directory), !manager.fileExists(atPath: "\(directory)/channel/genesis.json") {
            let contents = (try? manager.contentsOfDirectory(atPath: directory)) ?? []
            guard contents.isEmpty else {
                throw ToolError("\(directory) exists and holds no devnet; choose another --dir")
            }
        }
        for sub in ["", "/nodes", "/data", "/logs"] { try Files.makeDirectory(directory + sub) }
        let made = try DevnetSetup.makeChannel(
            directory: directory, channel: channel, validators: validators, managers: managers,
            block: BlockParameters(maxReadings: maxReadings, maxBytes: 1 << 20, timeoutMs: blockTimeoutMs))
        if made { say("devnet: new channel '\(channel)' in \(directory)/channel") }
    }

    func runNetwork(_ network: DevnetProcesses, directory: String, signals: UnixSignalsSequence) async throws {
        let genesisPath = "\(directory)/channel/genesis.json"
        let genesis = try Files.genesis(genesisPath)
        let ids = genesis.council.map(\.id) + genesis.managers.map(\.id)
        let description = try DevnetSetup.writeNodeFiles(directory: directory, broker: network.broker)
        let databases = description.databases
        for id in ids { try network.start(id, configuration: description.nodes[id]!) }
        say(
            "devnet: broker \(network.broker.host):\(network.broker.port), channel '\(genesis.channel)', "
                + "\(genesis.council.count) validators, \(genesis.managers.count) managers; \(directory)/devnet.json")
        try await network.waitUntilStarted(ids)
        let status = StatusLine(directory: directory, ids: ids, interval: statusInterval)
        if let manager = genesis.managers.first?.id, let url = status.status(manager)?.http {
            say("devnet: web page of \(manager): \(url) (metrics: \(url)metrics)")
        }

        var fleet: DevnetFleet?
        if devices > 0 {
            fleet = try await DevnetFleet.start(
                self, directory: directory, genesis: genesis, broker: network.broker, description: description)
        }

        let stop = StopSignal()
        let signalTask = Task {
            for await _ in signals {
                stop.fire()
                return
            }
        }
        defer { signalTask.cancel() }
        if let duration {
            Task {
                try? await Task.sleep(for: .seconds(duration))
                stop.fire()
            }
        }
        var down: Set<String> = []
        while !stop.fired {
            for (id, code) in network.exitedNodes() where down.insert(id).inserted {
                // A node that dies is reported, not restarted: the rest go on as a network would.
                status.finish()
                say("devnet: node \(id) exited (\(code)); see \(directory)/logs/\(id).log")
            }
            await status.show(fleet: fleet?.statusLine())
            try? await Task.sleep(for: .milliseconds(250))
        }
        status.finish()
        if let fleet {
            say("devnet: stopping the fleet (waiting for the receipts in flight)")
            try await fleet.stop()
        }
        say("devnet: stopping the nodes")
        await network.stopAll()
        await network.broker.stop()
        try summarize(databases: databases)
        if let fleet {
            let report = try await fleet.audit()
            say(report.summary())
            guard report.isCorrect else {
                throw ToolError("the fleet's readings do not match the ledger (\(report.mismatchCount) mismatches)")
            }
        }
    }

    /// Prints each replica's height and verifies it from genesis.
    func summarize(databases: [String: String]) throws {
        var failed: [String] = []
        var heads: Set<String> = []
        for (id, path) in databases.sorted(by: { $0.key < $1.key }) {
            let report = try StoreVerifier.verify(path: path)
            let head = report.headHash?.hex.prefix(16) ?? "-"
            heads.insert("\(report.blocks)/\(head)")
            let verdict = report.isIntact ? "verified" : "FAILED: \(report.problems.prefix(3).map(\.description))"
            say("  \(id): height \(report.blocks), \(report.readings) readings, head \(head)…, \(verdict)")
            if !report.isIntact { failed.append(id) }
        }
        guard failed.isEmpty else { throw ToolError("replicas that do not verify: \(failed.joined(separator: ", "))") }
        say("devnet: every replica verifies from genesis")
    }
}

/// Writes a line to standard output at once (unbuffered), so that the devnet's messages reach a
/// log file or a pipe as they happen.
func say(_ text: String = "") {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Set once; read by the loop that waits for it.
final class StopSignal: Sendable {
    private let state = Atomic<Bool>(false)
    func fire() { state.store(true, ordering: .relaxed) }
    var fired: Bool { state.load(ordering: .relaxed) }
}

/// The devnet's node processes, each `medledger node --config FILE` with its log in DIR/logs.
final class DevnetProcesses: @unchecked Sendable {
    // @unchecked Sendable: `processes` is only touched by the devnet command's own task.
    let directory: String
    let broker: MosquittoBroker
    /// How the nodes log (`--log-level`, `--log-format`).
    let logArguments: [String]
    private var processes: [String: ChildProcess] = [:]

    init(directory: String, broker: MosquittoBroker, logArguments: [String]) {
        self.directory = directory
        self.broker = broker
        self.logArguments = logArguments
    }

    /// This program, to start the nodes with.
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    func start(_ id: String, configuration: String) throws {
        try? FileManager.default.removeItem(atPath: "\(directory)/nodes/\(id).status.json")
        do {
            processes[id] = try ChildProcess(
                Self.executable, arguments: ["node", "--config", configuration] + logArguments,
                logPath: "\(directory)/logs/\(id).log")
        } catch {
            throw ToolError("cannot start node \(id): \(error)")
        }
    }

    /// Waits until every node has connected and written its status file.
    func waitUntilStarted(_ ids: [String], limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let dead = exited() { throw ToolError("node \(dead) exited; see \(directory)/logs/\(dead).log") }
            let ready = ids.allSatisfy {
                FileManager.default.fileExists(atPath: "\(directory)/nodes/\($0).status.json")
            }
            if ready { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ToolError("the nodes did not start within \(limit); see \(directory)/logs")
    }

    /// A node's status file (DIR/nodes/ID.status.json), if written.
    func status(_ id: String) -> NodeStatus? { Self.status(id, in: directory) }

    /// The status file of node `id` of the devnet in `directory`, if written.
    static func status(_ id: String, in directory: String) -> NodeStatus? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/nodes/\(id).status.json") else {
            return nil
        }
        return try? JSONDecoder().decode(NodeStatus.self, from: data)
    }

    /// Each running node's process id.
    var pids: [String: Int32] { processes.mapValues(\.pid) }

    /// The first node that is no longer running, if any.
    func exited() -> String? { processes.sorted { $0.key < $1.key }.first { !$0.value.isRunning }?.key }

    /// The nodes that are no longer running, with how they ended.
    func exitedNodes() -> [(String, String)] {
        processes.sorted { $0.key < $1.key }.compactMap { id, process in
            guard let status = process.exitStatus else { return nil }
            let how = status & 0x7F == 0 ? "exit status \((status >> 8) & 0xFF)" : "signal \(status & 0x7F)"
            return (id, how)
        }
    }

    /// Stops every node (SIGTERM, then SIGKILL after a grace period).
    func stopAll() async {
        await withTaskGroup(of: Void.self) { group in
            for process in processes.values { group.addTask { await process.stop(grace: .seconds(10)) } }
        }
        processes = [:]
    }
}

/// The devnet's one live line: height, committed readings a second, latency from publish to
/// committed receipt, rejections by reason (from the nodes' status files and the fleet).
final class StatusLine: @unchecked Sendable {
    // @unchecked Sendable: used by the devnet command's own task only.
    let directory: String
    let ids: [String]
    let interval: Double
    let isTerminal = isatty(1) != 0
    private var samples: [(time: ContinuousClock.Instant, committed: Int)] = []
    private var lastPrinted = ContinuousClock.now - .seconds(3600)
    private var width = 0

    init(directory: String, ids: [String], interval: Double) {
        self.directory = directory
        self.ids = ids
        self.interval = interval
    }

    func status(_ id: String) -> NodeStatus? { DevnetProcesses.status(id, in: directory) }

    /// The line now.
    func line(fleet: String?) -> String {
        let statuses = ids.compactMap(status)
        let height = statuses.map(\.height).max() ?? 0
        let lowest = statuses.map(\.height).min() ?? 0
        let manager = statuses.first { $0.role == "manager" }
        let committed = manager?.counters.readingsCommitted ?? 0
        let now = ContinuousClock.now
        samples.append((now, committed))
        // The rate over the last few seconds, or since the line before when lines are further apart.
        samples.removeAll { now - $0.time > .seconds(max(5, interval * 2)) }
        while samples.count > 2, now - samples[1].time > .seconds(5) { samples.removeFirst() }
        var rate = 0.0
        if let first = samples.first, now - first.time > .milliseconds(500) {
            let seconds =
                Double((now - first.time).components.seconds)
                + Double((now - first.time).components.attoseconds) * 1e-18
            rate = Double(committed - first.committed) / seconds
        }
        var parts = [
            "height \(height)" + (lowest < height ? " (lowest \(lowest))" : ""),
            String(format: "%.0f readings/s committed", rate), "\(committed) in all",
        ]
        if let fleet { parts.append(fleet) }
        let rejected = (manager?.counters.readingsRejected ?? [:]).sorted { $0.key < $1.key }
        if !rejected.isEmpty {
            parts.append("rejected " + rejected.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        return parts.joined(separator: " | ")
    }

    func show(fleet: String?) {
        let now = ContinuousClock.now
        if isTerminal {
            guard now - lastPrinted >= .milliseconds(500) else { return }
            let text = line(fleet: fleet)
            let padding = String(repeating: " ", count: max(0, width - text.count))
            width = text.count
            FileHandle.standardOutput.write(Data(("\r" + text + padding).utf8))
        } else {
            guard now - lastPrinted >= .seconds(interval) else { return }
            say(line(fleet: fleet))
        }
        lastPrinted = now
    }

    func finish() {
        if isTerminal { say() }
    }
}
