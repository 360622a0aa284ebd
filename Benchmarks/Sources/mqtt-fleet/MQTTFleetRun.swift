import Foundation
import Logging
import MedLedgerBroker
import MedLedgerMQTT
import Synchronization

/// Holds a fleet of device connections in this one process, each publishing a reading-sized QoS 1
/// message every `--interval` seconds (spread evenly), and prints one JSON line with the resident
/// memory (VmRSS now, VmHWM the peak) once `--duration` seconds of publishing have passed.
///
/// Usage: `mqtt-fleet --port P [--host H] [--connections N] [--interval S] [--duration S] [--threads T]`.
@main
struct MQTTFleetRun {
    static func main() async throws {
        var host = "127.0.0.1"
        var port = 0
        var connections = 10_000
        var interval = 10
        var duration = 30
        var threads = 1
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            guard let value = arguments.next() else { usage("\(argument) needs a value") }
            switch argument {
            case "--host": host = value
            case "--port": port = Int(value) ?? 0
            case "--connections": connections = Int(value) ?? 0
            case "--interval": interval = Int(value) ?? 0
            case "--duration": duration = Int(value) ?? 0
            case "--threads": threads = Int(value) ?? 0
            default: usage("unknown argument \(argument)")
            }
        }
        guard port > 0, connections > 0, interval > 0, duration > 0, threads > 0 else { usage("bad arguments") }
        // One descriptor per connection (the client closes libmosquitto's unused wake-up pair).
        let limit = FileLimit.raise(to: connections + 1024)
        guard limit >= connections + 64 else {
            usage("the open-file limit is \(limit); \(connections) connections need \(connections + 64) (ulimit -n)")
        }
        var logger = Logger(label: "mqtt-fleet")
        logger.logLevel = .error
        let fleet = try MQTTFleet(threads: threads, logger: logger)
        let tag = "\(getpid())"
        var made: [MQTTClient] = []
        made.reserveCapacity(connections)
        for index in 0..<connections {
            let id = "fleet-\(tag)-\(index)"
            made.append(
                try fleet.makeClient(
                    configuration: MQTTConfiguration(
                        host: host, port: port, clientID: id, protocolVersion: .v5, keepAlive: 60, username: id,
                        maxInflight: 16, receiveBufferCapacity: 16)))
        }
        let clients = made
        let clock = ContinuousClock()
        let connectStart = clock.now
        let connected = try await withThrowingTaskGroup(of: Int.self) { group in
            var next = 0
            var done = 0
            func add() {
                guard next < clients.count else { return }
                let client = clients[next]
                next += 1
                group.addTask {
                    try await client.connect()
                    try await client.subscribe(
                        "medledger/v1/fleet/receipts/\(client.configuration.clientID)", qos: .atLeastOnce)
                    return 1
                }
            }
            for _ in 0..<512 { add() }
            while let one = try await group.next() {
                done += one
                add()
            }
            return done
        }
        let connectSeconds = (clock.now - connectStart) / .seconds(1)
        let acked = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        var published = 0
        let payload = [UInt8](repeating: 0xA5, count: 180)
        let slots = interval * 10
        let start = clock.now
        var tick = 0
        while clock.now - start < .seconds(duration) {
            let slot = tick % slots
            var index = slot
            while index < clients.count {
                let client = clients[index]
                try client.enqueue(
                    topic: "medledger/v1/fleet/readings/\(client.configuration.clientID)", payload: payload,
                    qos: .atLeastOnce
                ) { result in
                    switch result {
                    case .success: acked.add(1, ordering: .relaxed)
                    case .failure: failed.add(1, ordering: .relaxed)
                    }
                }
                published += 1
                index += slots
            }
            tick += 1
            try await Task.sleep(until: start + .milliseconds(100 * tick), clock: clock)
        }
        // Let the last acknowledgements arrive.
        let settle = clock.now
        while acked.load(ordering: .relaxed) + failed.load(ordering: .relaxed) < published,
            clock.now - settle < .seconds(10)
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        let (rss, peak) = memory()
        let reconnects = clients.reduce(0) { $0 + $1.reconnectCount }
        print(
            "{\"connections\":\(connections),\"connected\":\(connected),\"threads\":\(threads),"
                + "\"connectSeconds\":\(String(format: "%.2f", connectSeconds)),\"interval\":\(interval),"
                + "\"duration\":\(duration),\"published\":\(published),\"acked\":\(acked.load(ordering: .relaxed)),"
                + "\"failed\":\(failed.load(ordering: .relaxed)),\"reconnects\":\(reconnects),"
                + "\"rssBytes\":\(rss),\"peakRssBytes\":\(peak)}")
        await fleet.shutdown()
    }

    /// VmRSS and VmHWM of this process, bytes.
    static func memory() -> (Int, Int) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            for line in text.split(separator: "\n") where line.hasPrefix(name) {
                let digits = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
                return digits * 1024
            }
            return 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    static func usage(_ problem: String) -> Never {
        FileHandle.standardError.write(Data("mqtt-fleet: \(problem)\n".utf8))
        FileHandle.standardError.write(
            Data(
                "usage: mqtt-fleet --port P [--host H] [--connections N] [--interval S] [--duration S] [--threads T]\n"
                    .utf8))
        exit(2)
    }
}
