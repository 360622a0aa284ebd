import Foundation
import MedLedgerBroker
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerTestSupport
import Testing

@Suite("medledger broker config and broker run", .network)
struct BrokerToolTests {
    @Test("the repository's dev.conf runs as it is, on a port the harness picks")
    func devConfAsIs() async throws {
        let config = try MosquittoConfig(contentsOf: "\(repositoryRoot)/broker-config/dev.conf")
        #expect(config.text == BrokerConfigs.dev(), "broker-config/dev.conf is what BrokerConfigs.dev() writes")
        let directory = try TemporaryDirectory("mqtt-devconf")
        defer { directory.remove() }
        try await withBroker(config: config, in: directory.path, logger: testLogger) { broker in
            #expect(broker.port != 1883)
            let client = try await connectedClient(broker, "devconf")
            try await client.publish(topic: "medledger/v1/ward-7/readings/cuff-1", payload: [1])
        }
    }

    @Test("a broker takes packets up to what the channel's largest message needs, and ends a larger one's connection")
    func packetLimit() async throws {
        // The standard limits are those of the default blocks' largest sync response.
        #expect(BrokerLimits.standard == BrokerLimits(largestMessage: SyncResponse.maxEncodedBytes(BlockParameters())))
        #expect(BrokerLimits.standard.maxPacketBytes == 9 << 20)
        #expect(BrokerConfigs.dev().contains("max_packet_size 9437184"))
        #expect(BrokerLimits(largestMessage: 100 << 20).maxPacketBytes == 101 << 20)
        #expect(BrokerLimits(largestMessage: 100 << 20).maxQueuedBytes == (101 << 20) * 64)
        try await withDevBroker { broker in
            let subscriber = try await connectedClient(broker, "big-reader")
            defer { subscriber.shutdown() }
            try await subscriber.subscribe("big/#")
            let client = try await connectedClient(broker, "big")
            defer { client.shutdown() }
            // 8 MiB (a sync response of the largest default blocks is a little more) passes.
            try await client.publish(topic: "big/fits", payload: Array(repeating: 7, count: 8 << 20), qos: .atMostOnce)
            let received = try await collect(subscriber, "the 8 MiB message") { $0.contains { $0.topic == "big/fits" } }
            #expect(received.first { $0.topic == "big/fits" }?.payload.count == 8 << 20)
            // 10 MiB: an MQTT 5 client knows the broker's limit and refuses to send it ...
            await #expect(throws: MQTTError.self) {
                try await client.publish(
                    topic: "big/over", payload: Array(repeating: 7, count: 10 << 20), qos: .atMostOnce)
            }
            // ... and the broker ends the connection of an MQTT 3.1.1 client that sends it.
            let old = try await connectedClient(broker, "big-311", version: .v311)
            defer { old.shutdown() }
            let events = old.events()
            // The publish fails with the lost connection, or it went out and the connection ends.
            do {
                try await old.publish(
                    topic: "big/over", payload: Array(repeating: 7, count: 10 << 20), qos: .atMostOnce)
                let lost = try await within(.seconds(10), "the broker ending the connection") { () -> MQTTError? in
                    for await event in events {
                        if case .disconnected(let error) = event { return error }
                    }
                    return nil
                }
                #expect(lost?.code == .connectionLost)
            } catch let error as MQTTError {
                #expect(error.code == .connectionLost, "\(error)")
            }
        }
    }

    @Test("broker config writes a hospital broker that broker run serves: devices get in with their passwords")
    func configAndRun() async throws {
        let directory = try TemporaryDirectory("mqtt-tool")
        defer { directory.remove() }
        let made = try ToolRunner.medledger(
            "channel", "init", "--dir", "ch", "--channel", "ward-7", "--validators", "1", in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
        try "cuff-1\n# a comment\n\ncuff-2\n".write(
            toFile: directory.file("devices.txt"), atomically: true, encoding: .utf8)
        let config = try ToolRunner.medledger(
            "broker", "config", "--dir", "ch", "--out", "broker", "--devices", "devices.txt", "--auth", "password",
            "--bridge", "hub=127.0.0.1:1", in: directory.path)
        #expect(config.status == 0, "\(config.stderr)")
        for file in [
            "dev.conf", "hospital.conf", "acl", "passwd", "passwords.txt", "identities.txt", "bridges/hub.conf",
        ] {
            #expect(FileManager.default.fileExists(atPath: directory.file("broker/\(file)")), "\(file) missing")
        }
        let acl = try String(contentsOfFile: directory.file("broker/acl"), encoding: .utf8)
        #expect(acl.contains("user cuff-2\ntopic write medledger/v1/ward-7/readings/cuff-2\n"))
        #expect(acl.contains("user manager-1\n"))
        let identities = try String(contentsOfFile: directory.file("broker/identities.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(identities.contains("bridge-hospital-1"))
        try TestCertificates.make(in: directory.file("broker/certs"), servers: ["broker"], identities: [])
        var passwords: [String: String] = [:]
        for line in try String(contentsOfFile: directory.file("broker/passwords.txt"), encoding: .utf8).split(
            separator: "\n")
        {
            let parts = line.split(separator: " ").map(String.init)
            passwords[parts[0]] = parts[1]
        }
        // Run again: the passwords stay the same.
        _ = try ToolRunner.medledger(
            "broker", "config", "--dir", "ch", "--out", "broker", "--devices", "devices.txt", "--auth", "password",
            in: directory.path)
        let again = try String(contentsOfFile: directory.file("broker/passwords.txt"), encoding: .utf8)
        #expect(again.contains("cuff-1 \(passwords["cuff-1"]!)"))

        // Serve hospital.conf without its bridge (the hub does not exist).
        try FileManager.default.removeItem(atPath: directory.file("broker/bridges/hub.conf"))
        let port = try MosquittoBroker.freePort()
        let running = try ToolRunner.start(
            ToolRunner.medledgerPath,
            [
                "broker", "run", "--config", "broker/hospital.conf", "--port", "\(port)", "--state-dir", "state",
                "--stop-with-parent",
            ],
            in: directory.path)
        defer {
            // On a failure: SIGTERM lets the tool stop its broker; finish() kills it if it hangs.
            if running.isRunning {
                kill(running.processIdentifier, SIGTERM)
                _ = ToolRunner.finish(running, timeout: 10)
            }
        }
        func client(_ identity: String, password: String?) throws -> MQTTClient {
            try MQTTClient(
                configuration: MQTTConfiguration(
                    port: port, clientID: clientID(identity), username: identity, password: password,
                    tls: MQTTTLSOptions(caFile: directory.file("broker/certs/ca.crt")), reconnect: .never),
                logger: testLogger)
        }
        let manager = try client("manager-1", password: passwords["manager-1"])
        try await within(.seconds(20), "the broker to come up") {
            while true {
                do {
                    try await manager.connect()
                    return
                } catch {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        try await manager.subscribe("medledger/v1/ward-7/readings/+", qos: .atLeastOnce)
        let device = try client("cuff-2", password: passwords["cuff-2"])
        try await within(.seconds(10), "device connect") { try await device.connect() }
        try await device.publish(topic: "medledger/v1/ward-7/readings/cuff-2", payload: [7])
        let got = try await collect(manager, "the reading") { $0.count == 1 }
        #expect(got.first?.topic == "medledger/v1/ward-7/readings/cuff-2")
        let intruder = try client("cuff-1", password: "guess")
        await #expect(throws: MQTTError.self) {
            try await within(.seconds(10), "bad login") { try await intruder.connect() }
        }

        kill(running.processIdentifier, SIGTERM)
        let finished = ToolRunner.finish(running, timeout: 20)
        #expect(finished.status == 0, "\(finished.stderr)")
        #expect(finished.stdout == "127.0.0.1:\(port)\n")
        let pid = finished.stderr.split(separator: " ").dropFirst(2).first.flatMap {
            Int32($0.trimmingCharacters(in: .punctuationCharacters))
        }
        if let pid { #expect(kill(pid, 0) != 0, "the broker process is gone") }
    }
}
