import Foundation
import Logging
import MedLedgerBench
import MedLedgerBroker
import MedLedgerCore
import MedLedgerFleet
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore

#if canImport(Glibc)
    import Glibc
#endif

/// A pipeline's shape: its council, its managers, its blocks.
struct BenchShape {
    var validators: Int
    var managers: Int
    var block: BlockParameters

    /// A name for its directory: v4-m1-b500.
    var name: String { "v\(validators)-m\(managers)-b\(block.maxReadings)" }
}

/// A devnet of one shape for the bench: its own broker and channel, every node a `medledger
/// node` process (as the devnet runs them), logs in DIR/logs.
final class BenchNetwork: @unchecked Sendable {
    // @unchecked Sendable: used by the bench command's own task only.
    let shape: BenchShape
    let directory: String
    let processes: DevnetProcesses
    let description: DevnetFile
    let genesis: Genesis
    let registrarKey: PrivateKey

    private init(
        shape: BenchShape, directory: String, processes: DevnetProcesses, description: DevnetFile, genesis: Genesis,
        registrarKey: PrivateKey
    ) {
        self.shape = shape
        self.directory = directory
        self.processes = processes
        self.description = description
        self.genesis = genesis
        self.registrarKey = registrarKey
    }

    var broker: MosquittoBroker { processes.broker }

    /// Makes the channel, starts the broker and the nodes, and waits until every node runs.
    static func start(_ shape: BenchShape, directory: String, logger: Logger) async throws -> BenchNetwork {
        for sub in ["", "/nodes", "/data", "/logs"] { try Files.makeDirectory(directory + sub) }
        try DevnetSetup.makeChannel(
            directory: directory, channel: "bench", validators: shape.validators, managers: shape.managers,
            block: shape.block)
        let broker = try await DevnetSetup.startBroker(directory: directory, logger: logger)
        let processes = DevnetProcesses(
            directory: directory, broker: broker, logArguments: ["--log-level", "warning"])
        do {
            let description = try DevnetSetup.writeNodeFiles(directory: directory, broker: broker)
            let ids = description.nodes.keys.sorted()
            for id in ids { try processes.start(id, configuration: description.nodes[id]!) }
            try await processes.waitUntilStarted(ids)
            return BenchNetwork(
                shape: shape, directory: directory, processes: processes, description: description,
                genesis: try Files.genesis(description.genesis),
                registrarKey: try Files.privateKey(description.registrarKey))
        } catch {
            await processes.stopAll()
            await broker.stop()
            throw error
        }
    }

    func stop() async {
        await processes.stopAll()
        await broker.stop()
    }

    /// A node's status file, if written.
    func status(_ id: String) -> NodeStatus? { processes.status(id) }

    /// Waits (up to a minute) until every node is at one height that has not moved for 1.5 s: the
    /// pools are empty, so the next step does not start on the last one's backlog.
    func settle() async {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var last: [UInt64] = []
        var since = clock.now
        while clock.now < deadline {
            let heights = nodes.map { status($0.id)?.height ?? 0 }
            if heights != last {
                last = heights
                since = clock.now
            } else if Set(heights).count == 1, clock.now - since >= .milliseconds(1500) {
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The nodes' ids and roles.
    var nodes: [(id: String, role: String)] {
        genesis.council.map { ($0.id, "validator") } + genesis.managers.map { ($0.id, "manager") }
    }

    /// Every node's CPU time so far, seconds.
    func cpuSeconds() -> [String: Double] {
        var out: [String: Double] = [:]
        for (id, pid) in processes.pids { out[id] = ProcessFigures.cpuSeconds(pid) }
        return out
    }

    /// Every node's resident memory, height and database size now.
    func memorySamples() -> [MemorySample] {
        let pids = processes.pids
        return nodes.compactMap { node in
            guard let pid = pids[node.id], let status = status(node.id), let resident = ProcessFigures.residentMiB(pid)
            else { return nil }
            let database = description.databases[node.id] ?? ""
            let bytes = ["", "-wal"].reduce(0.0) { total, suffix in
                let size = (try? FileManager.default.attributesOfItem(atPath: database + suffix)[.size]) as? NSNumber
                return total + (size?.doubleValue ?? 0)
            }
            return MemorySample(
                node: node.id, role: node.role, height: status.height, readings: status.counters.readingsCommitted,
                residentMiB: resident, databaseMiB: bytes / 1_048_576)
        }
    }
}

/// Figures of a process from /proc.
enum ProcessFigures {
    /// User and system CPU time, seconds (nil when the process is gone).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After the command's closing parenthesis: state is field 3, utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory, MiB (nil when the process is gone).
    static func residentMiB(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kib = line.split(separator: " ").compactMap { Double($0) }.first
            return kib.map { $0 / 1024 }
        }
        return nil
    }
}

/// What the machine is, for the report.
enum MachineInfo {
    static func current() -> Machine {
        func field(_ path: String, _ key: String) -> String? {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            for line in text.split(separator: "\n") where line.hasPrefix(key) {
                return line.dropFirst(key.count).trimmingCharacters(in: CharacterSet(charactersIn: " \t:=\""))
            }
            return nil
        }
        let memory = field("/proc/meminfo", "MemTotal").flatMap { Double($0.split(separator: " ").first ?? "") } ?? 0
        #if DEBUG
            let build = "debug"
        #else
            let build = "release"
        #endif
        return Machine(
            cores: ProcessorCount.active, cpu: field("/proc/cpuinfo", "model name") ?? "unknown",
            memoryGiB: memory / 1_048_576, system: field("/etc/os-release", "PRETTY_NAME") ?? "unknown", build: build)
    }
}

/// Runs load steps against a network: a fleet per step (the same devices every time, registered
/// once), its rate held for the warm-up and the measured window, then stopped and drained.
final class LoadRunner: @unchecked Sendable {
    // @unchecked Sendable: used by the bench command's own task only.
    let network: BenchNetwork
    let devices: Int
    let fleetDirectory: String
    let seed: UInt64
    let warmup: Double
    let measure: Double
    let criteria: Saturation.Criteria
    let logger: Logger
    /// Every second of every step so far.
    private(set) var timeline: [TimelinePoint] = []
    private var origin: ContinuousClock.Instant?
    private var steps = 0
    /// The devices' readings per second at a rate of one per device (set by the first step).
    private var weight: Double?

    init(
        network: BenchNetwork, devices: Int, fleetDirectory: String, seed: UInt64, warmup: Double, measure: Double,
        criteria: Saturation.Criteria, logger: Logger
    ) {
        self.network = network
        self.devices = devices
        self.fleetDirectory = fleetDirectory
        self.seed = seed
        self.warmup = warmup
        self.measure = measure
        self.criteria = criteria
        self.logger = logger
    }

    private struct Snapshot {
        var time: ContinuousClock.Instant
        var sent: Int
        var committed: Int
        var busy: Int
        var resent: Int
        var latency: LatencyHistogram
        var cpu: [String: Double]
    }

    private func options(rate: Double) -> FleetOptions {
        var options = FleetOptions(
            devices: devices, brokers: [MQTTEndpoint(host: network.broker.host, port: network.broker.port)],
            genesis: network.genesis, stateDirectory: fleetDirectory)
        options.seed = seed
        options.rate = rate
        options.drainTime = .seconds(15)
        return options
    }

    /// One step at `rate` readings per second.
    func step(rate: Double) async throws -> LoadStep {
        // The devices' rate, so that the fleet as a whole offers `rate` (lab analysers report rarely);
        // the devices are the same every step, so their weight is worked out once.
        if weight == nil {
            do {
                let probe = try Fleet(options: options(rate: 1), logger: logger)
                weight = await probe.devices.reduce(0.0) { $0 + 1 / $1.kind.rateDivisor }
            } catch {
                throw ToolError("the bench's fleet: \(error)")
            }
        }
        let perDevice = rate / max(weight ?? 1, 1e-9)
        let fleet: Fleet
        do {
            fleet = try Fleet(options: options(rate: perDevice), logger: logger)
            try await fleet.register(registrarID: network.description.registrarId, registrarKey: network.registrarKey)
        } catch {
            throw ToolError("the bench's fleet: \(error)")
        }
        let running = Task { () throws -> FleetReport in try await fleet.run() }
        let clock = ContinuousClock()
        // The step's clock starts once every device is connected (10,000 take some seconds).
        let connectDeadline = clock.now + .seconds(120)
        while await fleet.stats().connected < devices, clock.now < connectDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let began = clock.now
        if origin == nil { origin = began }
        func snapshot() async -> Snapshot {
            let stats = await fleet.stats()
            return Snapshot(
                time: clock.now, sent: stats.sent, committed: stats.committed, busy: stats.busy, resent: stats.resent,
                latency: await fleet.latencyHistogram(), cpu: network.cpuSeconds())
        }
        var previous = await snapshot()
        var windowStart: Snapshot?
        var windowEnd: Snapshot?
        while windowEnd == nil {
            try await Task.sleep(for: .seconds(1))
            let now = await snapshot()
            let seconds = (now.time - previous.time) / .seconds(1)
            let latency = now.latency.subtracting(previous.latency)
            timeline.append(
                TimelinePoint(
                    seconds: (now.time - origin!) / .seconds(1), step: steps,
                    offered: Double(now.sent - previous.sent) / seconds,
                    committed: Double(now.committed - previous.committed) / seconds,
                    p50Ms: latency.percentile(0.5), p99Ms: latency.percentile(0.99)))
            previous = now
            let elapsed = (now.time - began) / .seconds(1)
            if windowStart == nil, elapsed >= warmup - 0.5 { windowStart = now }
            if let start = windowStart, (now.time - start.time) / .seconds(1) >= measure - 0.5 { windowEnd = now }
        }
        await fleet.stop()
        do {
            _ = try await running.value
        } catch {
            throw ToolError("the bench's fleet: \(error)")
        }
        await fleet.shutdown()
        await network.settle()
        steps += 1
        let start = windowStart!
        let end = windowEnd!
        let seconds = (end.time - start.time) / .seconds(1)
        let committed = end.committed - start.committed
        let latency = end.latency.subtracting(start.latency)
        var step = LoadStep(
            requestedPerSecond: rate, devices: devices, perDeviceRate: perDevice,
            offeredPerSecond: Double(end.sent - start.sent) / seconds, committedPerSecond: Double(committed) / seconds,
            latency: latency.count == 0
                ? nil
                : Percentiles(
                    count: latency.count, p50Ms: latency.percentile(0.5)!, p95Ms: latency.percentile(0.95)!,
                    p99Ms: latency.percentile(0.99)!, maxMs: latency.percentile(1)!),
            busy: end.busy - start.busy, resent: end.resent - start.resent, criteria: criteria)
        if committed > 0 {
            var byRole: [String: [Double]] = [:]
            for node in network.nodes {
                guard let before = start.cpu[node.id], let after = end.cpu[node.id] else { continue }
                byRole[node.role, default: []].append((after - before) * 1000 / Double(committed))
            }
            step.cpuMsPerReading = byRole.mapValues { $0.reduce(0, +) / Double($0.count) }
        }
        return step
    }

    /// A scaling point: a short search from 0.6 of the default shape's `capacity` (three steps,
    /// growing by half), its best step as the throughput, then a step at half of that (the latency).
    func point(value: Int, capacity: Double) async throws -> ScalingPoint {
        var search = SaturationSearch(start: capacity * 0.6, factor: 1.5, resolution: 1.3, maxSteps: 3)
        while let rate = search.nextRate {
            let step = try await step(rate: rate)
            search.record(step)
            say("  \(value): " + BenchReport.stepLine(step))
        }
        let best = search.steps.max { $0.committedPerSecond < $1.committedPerSecond }!
        let half = try await step(rate: search.halfLoadRate)
        say("  \(value), half load: " + BenchReport.stepLine(half))
        return ScalingPoint(value: value, saturated: best, halfLoad: half)
    }
}
