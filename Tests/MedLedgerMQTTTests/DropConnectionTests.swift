import Foundation
import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport
import Synchronization
import Testing

@Suite("Dropping a connection as a device that loses power does", .network)
struct DropConnectionTests {
    @Test("the broker sees the connection end without DISCONNECT; the client is back after the pause")
    func dropWithoutDisconnect() async throws {
        let directory = try TemporaryDirectory("mqtt-drop")
        defer { directory.remove() }
        let config = BrokerConfigs.dev().replacingOccurrences(
            of: "connection_messages false", with: "connection_messages true")
        try await withBroker(config: MosquittoConfig(text: config), in: directory.path, logger: testLogger) { broker in
            let client = try await connectedClient(broker, "dropper", version: .v311)
            defer { client.shutdown() }
            let id = client.configuration.clientID
            try await client.subscribe("drop/\(id)")
            let events = client.events()
            let start = ContinuousClock.now
            client.dropConnection(reconnectAfter: .milliseconds(800))
            let collected = Mutex<[MQTTConnectionEvent]>([])
            let seen: [MQTTConnectionEvent]
            do {
                seen = try await within(.seconds(10), "lost and back") {
                    for await event in events {
                        collected.withLock { $0.append(event) }
                        if case .connected = event { break }
                    }
                    return collected.withLock { $0 }
                }
            } catch {
                // What it saw: the events so far, the client's state and its reconnects.
                let events = collected.withLock { $0 }
                Issue.record(
                    "\(error); events seen: \(events), state \(client.state), reconnects \(client.reconnectCount)")
                return
            }
            let back = ContinuousClock.now - start
            guard case .disconnected(let error?) = seen.first else {
                Issue.record("first event: \(String(describing: seen.first))")
                return
            }
            #expect(error.code == .connectionLost)
            #expect(back >= .milliseconds(750), "back after \(back)")
            // At least the one reconnect (on a loaded machine the events are read late, and a
            // client whose loop was starved past its keep-alive may have connected again since).
            #expect(client.reconnectCount >= 1, "events seen: \(seen)")
            // The subscription is made again: a message on it arrives.
            let publisher = try await connectedClient(broker, "drop-publisher")
            defer { publisher.shutdown() }
            let received = try await publishUntilReceived(
                publisher, client, topic: "drop/\(id)", payload: [7], "the message after the drop")
            #expect(received.first?.payload == [7])
            try await eventually(.seconds(5), "the broker's log line") {
                broker.logTail(lines: 200).contains("Client \(id) closed its connection")
            }
            #expect(!broker.logTail(lines: 200).contains("Client \(id) disconnected"))
        }
    }

    @Test("a client that is not connected ignores a drop")
    func dropWhileIdle() async throws {
        try await withDevBroker { broker in
            let client = try MQTTClient(
                configuration: MQTTConfiguration(host: broker.host, port: broker.port, clientID: clientID("idle")),
                logger: testLogger)
            defer { client.shutdown() }
            client.dropConnection()
            try await within(.seconds(10), "connect after a drop while idle") { try await client.connect() }
            #expect(client.state == .connected)
            #expect(client.reconnectCount == 0)
        }
    }
}
