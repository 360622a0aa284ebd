import Foundation
import Logging
import MedLedgerBroker
import MedLedgerMQTT
import Synchronization

/// Measures the MQTT figures the project promised, each with a verdict, in one run against real
/// brokers:
/// - QoS 1 and QoS 0 throughput of the Swift client (publisher to subscriber through one broker)
///   at least 0.9 times that of `mqtt-bare`, a C program on plain libmosquitto doing the same;
///   rounds alternate which goes first, and the medians are compared;
/// - the resident memory of `mqtt-fleet` holding 10,000 device connections, each publishing a
///   reading every 10 seconds, under 1 GiB.
///
/// Usage: `mqtt-figures [--rounds N] [--count N] [--size BYTES] [--inflight N] [--connections N]
/// [--interval S] [--duration S] [--fleet-threads T] [--skip-fleet] [--json FILE] [--strict]`.
@main
struct MQTTFigures {
    struct Options {
        var rounds = 3
        var count = 100_000
        var size = 64
        var inflight = 500
        var connections = 10_000
        var interval = 10
        var duration = 30
        var fleetThreads = 1
        var skipFleet = false
        var jsonPath: String?
        var strict = false
    }

    struct Run: Codable {
        var impl: String
        var qos: Int
        var count: Int
        var received: Int
        var seconds: Double
        var rate: Double
    }

    static func main() async throws {
        let options = parseOptions()
        var logger = Logger(label: "mqtt-figures")
        logger.logLevel = .warning
        print(
            "mqtt-figures: \(options.rounds) rounds of \(options.count) messages of \(options.size) bytes, "
                + "in-flight window \(options.inflight), libmosquitto \(libmosquittoVersion())")
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        var figures: [Figure] = []

        let directory = NSTemporaryDirectory() + "mqtt-figures-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try await MosquittoBroker.start(
            config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory + "/throughput", logger: logger)
        do {
            for qos in [MQTTQoS.atLeastOnce, .atMostOnce] {
                var swift: [Run] = []
                var bare: [Run] = []
                for round in 0..<options.rounds {
                    let order = round % 2 == 0 ? ["c", "swift"] : ["swift", "c"]
                    for impl in order {
                        let run =
                            impl == "c"
                            ? try runBare(bin: bin, port: broker.port, qos: qos, options: options, round: round)
                            : try await runSwift(
                                port: broker.port, qos: qos, options: options, round: round, logger: logger)
                        print(
                            "  round \(round + 1) QoS \(qos.rawValue) \(impl.padding(toLength: 5, withPad: " ", startingAt: 0)) "
                                + String(
                                    format: "%9.0f msg/s  (%d of %d in %.3f s)", run.rate, run.received, run.count,
                                    run.seconds))
                        if impl == "c" { bare.append(run) } else { swift.append(run) }
                    }
                }
                let swiftRate = median(swift.map(\.rate))
                let bareRate = median(bare.map(\.rate))
                let ratio = bareRate > 0 ? swiftRate / bareRate : 0
                let complete = swift.allSatisfy { $0.received == $0.count }
                figures.append(
                    Figure(
                        name:
                            "QoS \(qos.rawValue) throughput, Swift client / plain libmosquitto (median of \(options.rounds))",
                        value: ratio, unit: "x", target: ">= 0.90",
                        pass: ratio >= 0.9 && (qos == .atMostOnce || complete),
                        details: [
                            "swiftMessagesPerSecond": swiftRate, "bareMessagesPerSecond": bareRate,
                            "swiftLost": Double(swift.reduce(0) { $0 + $1.count - $1.received }),
                            "bareLost": Double(bare.reduce(0) { $0 + $1.count - $1.received }),
                        ]))
            }
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }

        if !options.skipFleet {
            do {
                figures.append(try await fleetFigure(bin: bin, directory: directory, options: options, logger: logger))
            } catch {
                print("  fleet: \(error)")
                figures.append(
                    Figure(
                        name: "resident memory of \(options.connections) device connections in one process",
                        value: 0, unit: "MiB", target: "< 1024, all connected and acknowledged", pass: false,
                        details: [:]))
            }
        }
        print("")
        for figure in figures { print(figure.verdictLine) }
        if let path = options.jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(figures).write(to: URL(fileURLWithPath: path))
            print("wrote \(path)")
        }
        if options.strict, figures.contains(where: { !$0.pass }) { exit(1) }
    }

    static func runBare(bin: String, port: Int, qos: MQTTQoS, options: Options, round: Int) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(bin)/mqtt-bare")
        process.arguments = [
            "--port", "\(port)", "--qos", "\(qos.rawValue)", "--count", "\(options.count)", "--size",
            "\(options.size)", "--inflight", "\(options.inflight)", "--tag", "c\(round)",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
            let run = try? JSONDecoder().decode(Run.self, from: Data(line.utf8))
        else {
            throw MQTTError(.other, "mqtt-bare printed no result (status \(process.terminationStatus))")
        }
        return run
    }

    /// The same as mqtt-bare, with the Swift client: two clients (each with its own loop thread),
    /// `enqueue` of every message, the clock from the first publish to the last message received.
    static func runSwift(port: Int, qos: MQTTQoS, options: Options, round: Int, logger: Logger) async throws -> Run {
        let tag = "swift\(round)-\(getpid())"
        func make(_ role: String) throws -> MQTTClient {
            try MQTTClient(
                configuration: MQTTConfiguration(
                    port: port, clientID: "\(role)-\(tag)", keepAlive: 60, maxInflight: options.inflight),
                logger: logger)
        }
        let subscriber = try make("sub")
        let publisher = try make("pub")
        try await subscriber.connect()
        try await publisher.connect()
        try await subscriber.subscribe("bench/\(tag)/#", qos: qos)
        let clock = ContinuousClock()
        let total = options.count
        let receiving = Task { () -> (Int, ContinuousClock.Instant) in
            var count = 0
            var last = clock.now
            for await _ in subscriber.messages {
                count += 1
                last = clock.now
                if count == total { break }
            }
            return (count, last)
        }
        // QoS 0 may lose messages: stop waiting after two seconds without one.
        let watchdog = Task {
            var seen = -1
            var idleSince = clock.now
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(100))
                let now = subscriber.receivedMessages
                if now != seen {
                    seen = now
                    idleSince = clock.now
                } else if clock.now - idleSince > .seconds(2) {
                    subscriber.shutdown()
                    return
                }
            }
        }
        let topic = "bench/\(tag)/x"
        let start = clock.now
        for index in 0..<total {
            var payload = [UInt8](repeating: 0, count: options.size)
            withUnsafeBytes(of: index) { bytes in
                for (offset, byte) in bytes.enumerated() where offset < payload.count { payload[offset] = byte }
            }
            try publisher.enqueue(topic: topic, payload: payload, qos: qos)
        }
        let (received, last) = await receiving.value
        watchdog.cancel()
        let seconds = (last - start) / .seconds(1)
        await publisher.disconnect()
        await subscriber.disconnect()
        return Run(
            impl: "swift", qos: qos.rawValue, count: total, received: received, seconds: seconds,
            rate: seconds > 0 ? Double(received) / seconds : 0)
    }

    static func fleetFigure(bin: String, directory: String, options: Options, logger: Logger) async throws -> Figure {
        // A broker of its own, so the fleet's process is measured alone.
        let broker = try await MosquittoBroker.start(
            config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory + "/fleet", logger: logger)
        defer { _ = broker }
        let arguments = [
            "--port", "\(broker.port)", "--connections", "\(options.connections)", "--interval", "\(options.interval)",
            "--duration", "\(options.duration)", "--threads", "\(options.fleetThreads)",
        ]
        print("  fleet: \(bin)/mqtt-fleet \(arguments.joined(separator: " "))")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(bin)/mqtt-fleet")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        await broker.stop()
        let text = String(decoding: data, as: UTF8.self)
        print("  fleet: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        guard let line = text.split(separator: "\n").last,
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw MQTTError(.other, "mqtt-fleet printed no result (status \(process.terminationStatus))")
        }
        func number(_ key: String) -> Double { (object[key] as? NSNumber)?.doubleValue ?? 0 }
        let peak = number("peakRssBytes") / 1_048_576
        let allConnected = number("connected") == Double(options.connections)
        let allAcked = number("acked") == number("published") && number("published") > 0
        return Figure(
            name: "resident memory of \(options.connections) device connections in one process, "
                + "each publishing every \(options.interval) s (peak)",
            value: peak, unit: "MiB", target: "< 1024, all connected and acknowledged",
            pass: peak < 1024 && allConnected && allAcked,
            details: [
                "rssMiB": number("rssBytes") / 1_048_576, "peakRssMiB": peak, "connected": number("connected"),
                "published": number("published"), "acked": number("acked"), "failed": number("failed"),
                "connectSeconds": number("connectSeconds"), "threads": number("threads"),
                "reconnects": number("reconnects"),
            ])
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func libmosquittoVersion() -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/pkg-config")
        process.arguments = ["--modversion", "libmosquitto"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "?" }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func parseOptions() -> Options {
        var options = Options()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        func number(_ name: String) -> Int {
            guard let text = arguments.next(), let value = Int(text), value > 0 else {
                usage("\(name) needs a positive number")
            }
            return value
        }
        while let argument = arguments.next() {
            switch argument {
            case "--rounds": options.rounds = number(argument)
            case "--count": options.count = number(argument)
            case "--size": options.size = max(8, number(argument))
            case "--inflight": options.inflight = number(argument)
            case "--connections": options.connections = number(argument)
            case "--interval": options.interval = number(argument)
            case "--duration": options.duration = number(argument)
            case "--fleet-threads": options.fleetThreads = number(argument)
            case "--skip-fleet": options.skipFleet = true
            case "--strict": options.strict = true
            case "--json":
                guard let path = arguments.next() else { usage("--json needs a file") }
                options.jsonPath = path
            case "-h", "--help": usage(nil)
            default: usage("unknown argument '\(argument)'")
            }
        }
        return options
    }

    static func usage(_ problem: String?) -> Never {
        if let problem { FileHandle.standardError.write(Data("mqtt-figures: \(problem)\n".utf8)) }
        print(
            "usage: mqtt-figures [--rounds N] [--count N] [--size BYTES] [--inflight N] [--connections N] "
                + "[--interval S] [--duration S] [--fleet-threads T] [--skip-fleet] [--json FILE] [--strict]")
        exit(problem == nil ? 0 : 2)
    }
}

/// One measured figure and its verdict (as ledger-figures prints them).
struct Figure: Codable {
    var name: String
    var value: Double
    var unit: String
    var target: String
    var pass: Bool
    var details: [String: Double]

    var verdictLine: String {
        let shown = String(format: "%.3f", value)
        return "\(pass ? "PASS" : "MISS")  \(name): \(shown) \(unit) (target \(target))"
    }
}
