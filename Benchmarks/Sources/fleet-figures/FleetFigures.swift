import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerMQTT
import Synchronization

/// Measures the fleet simulator at scale: `medledger-fleet` with 10,000 devices (each its own
/// MQTT connection) publishing a reading every 10 seconds, with receipts flowing, and reports the
/// fleet process's peak resident memory (VmHWM) and CPU time, with a verdict (under 1 GiB on two
/// cores, every reading accounted for).
///
/// Receipts come from a stand-in manager in this process (the default): it registers the devices
/// the fleet's registrar sends, checks every reading's signature with the registered key, answers
/// `accepted` at once and `committed` in a "block" every 100 ms. With `--devnet DIR` the fleet
/// runs against a running `medledger devnet` instead (real managers and council, and the audit).
///
/// Usage: `fleet-figures --fleet-bin PATH [--devices N] [--rate R] [--duration S] [--threads T]
/// [--devnet DIR] [--json FILE] [--strict]`.
@main
struct FleetFigures {
    struct Options {
        var fleetBin = ""
        var devices = 10_000
        var rate = 0.1
        var duration = 120.0
        var threads = 2
        var devnet: String?
        var jsonPath: String?
        var strict = false
    }

    struct Figure: Codable {
        var devices: Int
        var rate: Double
        var durationSeconds: Double
        var receipts: String
        var made: Int
        var committed: Int
        var pending: Int
        var mismatches: Int
        var latencyP50Ms: Int?
        var latencyP99Ms: Int?
        var peakResidentBytes: Int
        var cpuSeconds: Double
        var wallSeconds: Double
        var cores: Double
        var passed: Bool
    }

    static func main() async throws {
        let options = parseOptions()
        var logger = Logger(label: "fleet-figures")
        logger.logLevel = .warning
        _ = FileLimit.raise(to: options.devices * 2 + 4096)
        let directory = NSTemporaryDirectory() + "fleet-figures-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var arguments = [
            "--devices", "\(options.devices)", "--rate", "\(options.rate)", "--duration", "\(options.duration)",
            "--threads", "\(options.threads)", "--state", "\(directory)/fleet", "--json", "--status-interval", "0",
            "--log-level", "error", "--drain", "60",
        ]
        var broker: MosquittoBroker?
        var standIn: StandInManager?
        let receipts: String
        if let devnet = options.devnet {
            receipts = "medledger devnet (\(devnet))"
            arguments += ["--devnet", devnet]
        } else {
            receipts = "stand-in manager (signatures checked, committed every 100 ms)"
            let started = try await MosquittoBroker.start(
                config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory + "/broker", logger: logger)
            broker = started
            let manager = try await StandInManager(
                channel: "bench", host: started.host, port: started.port, logger: logger)
            standIn = manager
            let key = PrivateKey(generating: .ed25519)
            try key.pemRepresentation.write(toFile: "\(directory)/registrar.key", atomically: true, encoding: .utf8)
            arguments += [
                "--broker", "\(started.host):\(started.port)", "--channel", "bench", "--managers", "1",
                "--registrar-key", "\(directory)/registrar.key", "--registrar-id", "registrar-1",
            ]
        }
        print(
            "fleet-figures: \(options.devices) devices, \(options.rate) readings/s each, \(options.duration) s, "
                + "\(options.threads) threads; receipts from the \(receipts)")
        let clock = ContinuousClock()
        let start = clock.now
        let child = try ChildProcess(options.fleetBin, arguments: arguments, logPath: "\(directory)/fleet.log")
        let status = await child.wait()
        let wall = (clock.now - start) / .seconds(1)
        await standIn?.stop()
        await broker?.stop()
        let output = (try? String(contentsOfFile: "\(directory)/fleet.log", encoding: .utf8)) ?? ""
        guard let brace = output.firstIndex(of: "{"),
            let object = try? JSONSerialization.jsonObject(with: Data(output[brace...].utf8)) as? [String: Any],
            let report = object["report"] as? [String: Any]
        else {
            FileHandle.standardError.write(Data("fleet-figures: medledger-fleet exited \(status):\n\(output)\n".utf8))
            exit(1)
        }
        let latency = report["latency"] as? [String: Any]
        let peak = object["peakResidentBytes"] as? Int ?? 0
        let cpu = object["cpuSeconds"] as? Double ?? 0
        let mismatches = report["mismatchCount"] as? Int ?? -1
        let figure = Figure(
            devices: options.devices, rate: options.rate, durationSeconds: options.duration, receipts: receipts,
            made: report["made"] as? Int ?? 0, committed: report["committed"] as? Int ?? 0,
            pending: report["pending"] as? Int ?? 0, mismatches: mismatches,
            latencyP50Ms: latency?["p50Ms"] as? Int, latencyP99Ms: latency?["p99Ms"] as? Int,
            peakResidentBytes: peak, cpuSeconds: cpu, wallSeconds: wall, cores: wall > 0 ? cpu / wall : 0,
            passed: status == 0 && mismatches == 0 && peak > 0 && peak < 1 << 30 && cpu / max(wall, 1) < 2)
        print(
            String(
                format:
                    "  fleet: %d made, %d committed, %d pending, %d mismatches; latency p50 %@ ms, p99 %@ ms",
                figure.made, figure.committed, figure.pending, figure.mismatches,
                figure.latencyP50Ms.map(String.init) ?? "-", figure.latencyP99Ms.map(String.init) ?? "-"))
        print(
            String(
                format: "  peak resident %.1f MiB (limit 1024), cpu %.1f s over %.1f s = %.2f cores (limit 2): %@",
                Double(peak) / 1_048_576, cpu, wall, figure.cores, figure.passed ? "PASS" : "FAIL"))
        if let path = options.jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(figure).write(to: URL(fileURLWithPath: path))
        }
        if options.strict && !figure.passed { exit(1) }
    }

    static func parseOptions() -> Options {
        var options = Options()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            if argument == "--strict" {
                options.strict = true
                continue
            }
            guard let value = arguments.next() else { usage("\(argument) needs a value") }
            switch argument {
            case "--fleet-bin": options.fleetBin = value
            case "--devices": options.devices = Int(value) ?? 0
            case "--rate": options.rate = Double(value) ?? 0
            case "--duration": options.duration = Double(value) ?? 0
            case "--threads": options.threads = Int(value) ?? 0
            case "--devnet": options.devnet = value
            case "--json": options.jsonPath = value
            default: usage("unknown argument \(argument)")
            }
        }
        guard !options.fleetBin.isEmpty, options.devices > 0, options.rate > 0, options.duration > 0,
            options.threads > 0
        else { usage("bad arguments") }
        return options
    }

    static func usage(_ problem: String) -> Never {
        FileHandle.standardError.write(Data("fleet-figures: \(problem)\n".utf8))
        FileHandle.standardError.write(
            Data(
                ("usage: fleet-figures --fleet-bin PATH [--devices N] [--rate R] [--duration S] [--threads T] "
                    + "[--devnet DIR] [--json FILE] [--strict]\n").utf8))
        exit(2)
    }
}

/// A manager's part played by one MQTT connection, for measuring the fleet without a council:
/// registrations are committed as they come, readings are decoded and their signatures checked
/// with the registered keys, answered `accepted` at once and `committed` every 100 ms.
actor StandInManager {
    private let client: MQTTClient
    private let channel: String
    private var keys: [String: PublicKey] = [:]
    private var waiting: [(device: String, seq: UInt64)] = []
    private var height: UInt64 = 0
    private var consumer: Task<Void, Never>?
    private var blocks: Task<Void, Never>?

    init(channel: String, host: String, port: Int, logger: Logger) async throws {
        self.channel = channel
        var configuration = MQTTConfiguration(
            host: host, port: port, clientID: "stand-in-manager", protocolVersion: .v5, keepAlive: 30)
        configuration.maxInflight = 1000
        configuration.receiveBufferCapacity = 65_536
        client = try MQTTClient(configuration: configuration, logger: logger)
        try await client.connect()
        try await client.subscribe("medledger/v1/\(channel)/readings/+")
        try await client.subscribe("medledger/v1/\(channel)/tx/+")
        let client = self.client
        consumer = Task.detached { [weak self] in
            for await message in client.messages { await self?.take(message) }
        }
        blocks = Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                await self?.commit()
            }
        }
    }

    func stop() {
        consumer?.cancel()
        blocks?.cancel()
        client.shutdown()
    }

    private func send(_ topic: String, _ payload: [UInt8]) {
        try? client.enqueue(topic: topic, payload: payload)
    }

    private func take(_ message: MQTTMessage) {
        let parts = message.topic.split(separator: "/")
        guard parts.count == 5 else { return }
        let sender = String(parts[4])
        if parts[3] == "tx" {
            let answer = "medledger/v1/\(channel)/tx-receipts/\(sender)"
            guard let signed = try? SignedTransaction(decoding: message.payload) else { return }
            if case .registerDevice(let device, let key, _) = signed.transaction.body { keys[device] = key }
            height += 1
            send(
                answer,
                TransactionReceipt(
                    seq: signed.transaction.seq, status: .committed(height: height, blockHash: Self.hash(height))
                ).encoded())
            return
        }
        let answer = "medledger/v1/\(channel)/receipts/\(sender)"
        guard let signed = try? SignedReading(decoding: message.payload) else {
            send(answer, Receipt(seq: 0, status: .rejected(.malformed)).encoded())
            return
        }
        let seq = signed.reading.seq
        guard let key = keys[signed.keyID] else {
            send(answer, Receipt(seq: seq, status: .rejected(.unknownDevice)).encoded())
            return
        }
        guard (try? signed.message.verify(with: key)) != nil else {
            send(answer, Receipt(seq: seq, status: .rejected(.badSignature)).encoded())
            return
        }
        send(answer, Receipt(seq: seq, status: .accepted).encoded())
        waiting.append((sender, seq))
    }

    private func commit() {
        guard !waiting.isEmpty else { return }
        height += 1
        let hash = Self.hash(height)
        for (device, seq) in waiting {
            send(
                "medledger/v1/\(channel)/receipts/\(device)",
                Receipt(seq: seq, status: .committed(height: height, blockHash: hash)).encoded())
        }
        waiting = []
    }

    static func hash(_ height: UInt64) -> Hash256 { Hash256.sha256(Array("block \(height)".utf8)) }
}
