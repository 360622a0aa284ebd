import Foundation
import Logging
import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport

let testLogger: Logger = {
    var logger = Logger(label: "medledger.mqtt.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["MQTT_TEST_DEBUG"] == nil ? .warning : .debug
    return logger
}()

/// A unique client id for a test.
func clientID(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(8))" }

/// Starts a dev broker in a temporary directory for the body, and always stops it.
func withDevBroker<T>(_ body: (MosquittoBroker) async throws -> T) async throws -> T {
    let directory = try TemporaryDirectory("mqtt-dev")
    defer { directory.remove() }
    return try await withBroker(
        config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory.path, logger: testLogger, body)
}

/// A connected client.
func connectedClient(
    _ broker: MosquittoBroker, _ name: String, version: MQTTProtocolVersion = .v5,
    configure: (inout MQTTConfiguration) -> Void = { _ in }
) async throws -> MQTTClient {
    var configuration = MQTTConfiguration(
        host: broker.host, port: broker.port, clientID: clientID(name), protocolVersion: version)
    configure(&configuration)
    let client = try MQTTClient(configuration: configuration, logger: testLogger)
    try await within(.seconds(10), "connect \(name)") { try await client.connect() }
    return client
}

/// Collects messages until `until` says stop.
func collect(
    _ client: MQTTClient, limit: Duration = .seconds(30), _ what: String,
    until: @escaping @Sendable ([MQTTMessage]) -> Bool
) async throws -> [MQTTMessage] {
    try await within(limit, what) {
        var received: [MQTTMessage] = []
        for await message in client.messages {
            received.append(message)
            if until(received) { break }
        }
        return received
    }
}

/// Publishes `payload` on `topic` every 200 ms until `subscriber` has received a message there,
/// and returns what it received: for a subscriber whose subscription is being made again after a
/// reconnect (its SUBSCRIBE and another client's PUBLISH may reach the broker in either order).
func publishUntilReceived(
    _ publisher: MQTTClient, _ subscriber: MQTTClient, topic: String, payload: [UInt8], _ what: String
) async throws -> [MQTTMessage] {
    let publishing = Task {
        while !Task.isCancelled {
            try await publisher.publish(topic: topic, payload: payload)
            try await Task.sleep(for: .milliseconds(200))
        }
    }
    defer { publishing.cancel() }
    return try await collect(subscriber, what) { received in received.contains { $0.topic == topic } }
}

extension UInt64 {
    var bytes: [UInt8] { withUnsafeBytes(of: bigEndian, Array.init) }
    init(bytes: [UInt8]) { self = bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }
}
