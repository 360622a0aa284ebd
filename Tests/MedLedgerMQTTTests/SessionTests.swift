import Foundation
import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport
import Testing

@Suite("Durable sessions and reconnects", .network)
struct SessionTests {
    @Test(
        "a durable subscriber that leaves while messages flow gets all of them when it returns",
        arguments: [
            MQTTProtocolVersion.v311, .v5,
        ])
    func durableSubscriber(version: MQTTProtocolVersion) async throws {
        try await withDevBroker { broker in
            let id = clientID("durable")
            let durable: (inout MQTTConfiguration) -> Void = { configuration in
                configuration.clientID = id
                configuration.cleanStart = false
                configuration.sessionExpiry = 300
                // A small buffer, so that the client cannot take in the whole flow before it leaves.
                configuration.receiveBufferCapacity = 20
            }
            let subscriber = try await connectedClient(broker, "durable", version: version, configure: durable)
            try await subscriber.subscribe("durable/#", qos: .atLeastOnce)
            let publisher = try await connectedClient(broker, "flow", version: version)
            let total = 3000
            let publishing = Task {
                for index in 0..<total {
                    try publisher.enqueue(topic: "durable/\(index % 8)", payload: UInt64(index).bytes)
                    if index % 100 == 99 { try await publisher.flush(timeout: .seconds(30)) }
                }
                try await publisher.flush(timeout: .seconds(30))
            }
            var seen = Set<UInt64>()
            // Take some, then leave in the middle of the flow.
            let first = try await collect(subscriber, "the first messages") { $0.count >= 300 }
            for message in first { seen.insert(UInt64(bytes: message.payload)) }
            await subscriber.disconnect()
            // What the client had already received (and acknowledged) is the consumer's to keep.
            var drain = subscriber.messages.makeAsyncIterator()
            for _ in 0..<subscriber.messages.buffered {
                if let message = await drain.next() { seen.insert(UInt64(bytes: message.payload)) }
            }
            try await within(.seconds(60), "publishing") { try await publishing.value }
            #expect(seen.count < total, "the subscriber left before the flow ended")

            let returning = try MQTTClient(
                configuration: {
                    var configuration = MQTTConfiguration(
                        host: broker.host, port: broker.port, clientID: id, protocolVersion: version)
                    durable(&configuration)
                    return configuration
                }(), logger: testLogger)
            let events = returning.events()
            try await within(.seconds(10), "reconnect") { try await returning.connect() }
            var iterator = events.makeAsyncIterator()
            let event = await iterator.next()
            #expect(
                event == .connected(endpoint: MQTTEndpoint(host: broker.host, port: broker.port), sessionPresent: true))
            // QoS 1 may deliver again what the first connection had taken: de-duplicate by content.
            let before = seen
            seen = try await within(.seconds(60), "the messages sent while away") {
                var all = before
                for await message in returning.messages {
                    all.insert(UInt64(bytes: message.payload))
                    if all.count == total { break }
                }
                return all
            }
            #expect(seen.count == total)
            #expect(subscriber.droppedMessages == 0)
            #expect(returning.droppedMessages == 0)
        }
    }

    @Test("after the broker restarts the client reconnects, subscribes again and sends what was queued")
    func reconnectAfterRestart() async throws {
        let directory = try TemporaryDirectory("mqtt-restart")
        defer { directory.remove() }
        let first = try await MosquittoBroker.start(
            config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory.path, logger: testLogger)
        var current = first
        do {
            let fast = MQTTReconnectPolicy(minimumDelay: .milliseconds(50), maximumDelay: .milliseconds(400))
            let subscriber = try await connectedClient(first, "resub") { $0.reconnect = fast }
            let publisher = try await connectedClient(first, "queued") { $0.reconnect = fast }
            try await subscriber.subscribe("restart/#", qos: .atLeastOnce)
            let events = subscriber.events()
            await first.stop()
            let lost = try await within(.seconds(10), "the disconnect event") { () -> MQTTConnectionEvent? in
                var iterator = events.makeAsyncIterator()
                return await iterator.next()
            }
            guard case .disconnected(let error) = lost else {
                Issue.record("expected a disconnect, got \(String(describing: lost))")
                return
            }
            #expect(error != nil)
            // Published while the broker is down: waits in the client and goes out after the reconnect.
            try publisher.enqueue(topic: "restart/queued", payload: [42])
            current = try await first.restart()
            try await within(.seconds(20), "the reconnect") {
                while subscriber.state != .connected || publisher.state != .connected {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(subscriber.reconnectCount == 1)
            #expect(publisher.reconnectCount == 1)
            var sawReconnecting = false
            var iterator = events.makeAsyncIterator()
            while let event = await iterator.next() {
                if case .reconnecting = event { sawReconnecting = true }
                if case .connected(_, let sessionPresent) = event {
                    #expect(!sessionPresent, "the dev broker keeps no persistence")
                    break
                }
            }
            #expect(sawReconnecting)
            try await publisher.flush(timeout: .seconds(20))
            let received = try await publishUntilReceived(
                publisher, subscriber, topic: "restart/after", payload: [43], "messages after the restart")
            #expect(received.contains { $0.topic == "restart/after" && $0.payload == [43] })
            // The queued message reached a broker whose subscription was not yet made again, or this one.
            await current.stop()
        } catch {
            await current.stop()
            throw error
        }
    }

    @Test("a consumer that stops reading pauses the socket instead of dropping messages")
    func backpressure() async throws {
        try await withDevBroker { broker in
            let subscriber = try await connectedClient(broker, "slow") { $0.receiveBufferCapacity = 100 }
            let publisher = try await connectedClient(broker, "fast")
            try await subscriber.subscribe("slow/#", qos: .atLeastOnce)
            let total = 2000
            for index in 0..<total { try publisher.enqueue(topic: "slow/x", payload: UInt64(index).bytes) }
            try await publisher.flush(timeout: .seconds(30))
            #expect(subscriber.messages.buffered <= 100)
            var seen = Set<UInt64>()
            let received = try await collect(subscriber, "all messages") { $0.count >= total }
            for message in received { seen.insert(UInt64(bytes: message.payload)) }
            #expect(seen.count == total)
            #expect(subscriber.droppedMessages == 0)
            // In order, since nothing was sent twice.
            #expect(received.map { UInt64(bytes: $0.payload) } == (0..<UInt64(total)).map { $0 })
        }
    }
}

/// How many descriptors this process has open.
func openDescriptors() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
}

@Suite("A client that publishes to itself with a small buffer", .network)
struct SelfLoopTests {
    @Test("writes go on while reading is paused, and everything arrives once the consumer reads")
    func pausedWhilePublishing() async throws {
        try await withDevBroker { broker in
            let client = try await connectedClient(broker, "self") { $0.receiveBufferCapacity = 50 }
            try await client.subscribe("self/#", qos: .atLeastOnce)
            let total = 1000
            for index in 0..<total { try client.enqueue(topic: "self/x", payload: UInt64(index).bytes) }
            let received = try await collect(client, "all of its own messages") { $0.count >= total }
            #expect(Set(received.map { UInt64(bytes: $0.payload) }).count == total)
            try await within(.seconds(20), "flush") { try await client.flush(timeout: .seconds(20)) }
            #expect(client.droppedMessages == 0)
        }
    }
}

@Suite("Many connections on few threads", .network)
struct FleetTests {
    @Test("300 devices on one loop each publish a reading and get their own receipt")
    func fleetReceipts() async throws {
        try await withDevBroker { broker in
            let manager = try await connectedClient(broker, "manager")
            try await manager.subscribe("medledger/v1/fleet/readings/+", qos: .atLeastOnce)
            let answering = Task {
                for await reading in manager.messages {
                    let device = reading.topic.split(separator: "/").last.map(String.init) ?? ""
                    try manager.enqueue(topic: "medledger/v1/fleet/receipts/\(device)", payload: reading.payload)
                }
            }
            defer { answering.cancel() }
            let fleet = try MQTTFleet(threads: 1, logger: testLogger)
            let count = 300
            let descriptorsBefore = openDescriptors()
            var made: [MQTTClient] = []
            for index in 0..<count {
                let id = "dev-\(index)-\(clientID("f"))"
                made.append(
                    try fleet.makeClient(
                        configuration: MQTTConfiguration(
                            host: broker.host, port: broker.port, clientID: id, protocolVersion: .v311, username: id)))
            }
            let devices = made
            #expect(fleet.loops.count == 1)
            try await within(.seconds(30), "connecting the fleet") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for device in devices { group.addTask { try await device.connect() } }
                    try await group.waitForAll()
                }
            }
            #expect(fleet.connectionCount == count)
            // One descriptor per connection (libmosquitto's wake-up pair is closed), not three;
            // the margin is for tests running beside this one.
            #expect(openDescriptors() - descriptorsBefore < count * 2)
            let receipts = try await within(.seconds(60), "every receipt") {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for (index, device) in devices.enumerated() {
                        group.addTask {
                            let id = device.configuration.clientID
                            try await device.subscribe("medledger/v1/fleet/receipts/\(id)", qos: .atLeastOnce)
                            try await device.publish(
                                topic: "medledger/v1/fleet/readings/\(id)", payload: UInt64(index).bytes)
                            for await receipt in device.messages {
                                return receipt.payload == UInt64(index).bytes
                            }
                            return false
                        }
                    }
                    var good = 0
                    for try await ok in group where ok { good += 1 }
                    return good
                }
            }
            #expect(receipts == count)
            await fleet.shutdown()
            #expect(devices.allSatisfy { $0.state == .closed })
            // A client whose loop has ended fails at once instead of waiting for ever.
            do {
                try await within(.seconds(5), "connect after shutdown") { try await devices[0].connect() }
                Issue.record("connected after the fleet shut down")
            } catch let error as MQTTError {
                #expect(error.code == .closed)
            }
        }
    }

    @Test("a client fails over to the next broker when the first cannot be reached")
    func failover() async throws {
        let deadPort = try await withDevBroker { broker in broker.port }
        try await withDevBroker { broker in
            let client = try MQTTClient(
                configuration: MQTTConfiguration(
                    endpoints: [
                        MQTTEndpoint(host: "127.0.0.1", port: deadPort),
                        MQTTEndpoint(host: broker.host, port: broker.port),
                    ],
                    clientID: clientID("failover")),
                logger: testLogger)
            let events = client.events()
            try await within(.seconds(10), "connect") { try await client.connect() }
            var iterator = events.makeAsyncIterator()
            var connectedTo: MQTTEndpoint?
            while let event = await iterator.next() {
                if case .connected(let endpoint, _) = event {
                    connectedTo = endpoint
                    break
                }
            }
            #expect(connectedTo?.port == broker.port)
        }
    }
}
