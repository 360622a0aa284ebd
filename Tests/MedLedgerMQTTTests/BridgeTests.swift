import Foundation
import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport
import Testing

@Suite("Two hospitals' brokers bridged over TLS", .network)
struct BridgeTests {
    @Test(
        "a message published at hospital A reaches hospital B once, with no loop; messages sent during a cut arrive after it"
    )
    func bridge() async throws {
        // One consortium CA; hospital B's ACL names A's bridge identity.
        let certificates = try TemporaryDirectory("mqtt-bridge-certs")
        defer { certificates.remove() }
        try TestCertificates.make(
            in: certificates.path, servers: ["broker"],
            identities: ["manager-a", "manager-b", "registrar-1", "bridge-a"])
        let hospitalA = try HospitalFixture(
            managers: ["manager-a"], registrars: ["registrar-1"], certificates: certificates.path)
        let hospitalB = try HospitalFixture(
            managers: ["manager-b"], registrars: [], bridges: ["bridge-a"], certificates: certificates.path)
        defer {
            hospitalA.remove()
            hospitalB.remove()
        }
        var brokerB = try await hospitalB.start()
        var brokerA: MosquittoBroker?
        do {
            let bridge = BridgeOptions(
                name: "to-hospital-b", addresses: ["127.0.0.1:\(brokerB.port)"], channel: "ward-7",
                remoteClientID: "bridge-a", caFile: "\(certificates.path)/ca.crt",
                certificateFile: "\(certificates.path)/bridge-a.crt", keyFile: "\(certificates.path)/bridge-a.key",
                restartTimeout: "1")
            let a = try await hospitalA.start(bridges: [bridge])
            brokerA = a
            let tx = hospitalA.topic("tx", "registrar-1")

            // A durable subscriber at B, and a plain one at A.
            var atBConfiguration = hospitalB.configuration(brokerB, identity: "manager-b")
            atBConfiguration.cleanStart = false
            atBConfiguration.sessionExpiry = 3600
            let atB = try MQTTClient(configuration: atBConfiguration, logger: testLogger)
            try await within(.seconds(10), "connect at B") { try await atB.connect() }
            try await atB.subscribe(hospitalB.topic("tx", "#"), qos: .atLeastOnce)
            let atA = try MQTTClient(
                configuration: hospitalA.configuration(a, identity: "manager-a"), logger: testLogger)
            try await within(.seconds(10), "connect at A") { try await atA.connect() }
            try await atA.subscribe(hospitalA.topic("tx", "#"), qos: .atLeastOnce)
            let registrar = try MQTTClient(
                configuration: hospitalA.configuration(a, identity: "registrar-1"), logger: testLogger)
            try await within(.seconds(10), "connect the registrar") { try await registrar.connect() }

            // The bridge connects in its own time: publish until B sees one.
            try await within(.seconds(30), "the bridge to come up") {
                var probe: UInt64 = 0
                while atB.receivedMessages == 0 {
                    probe += 1
                    try await registrar.publish(topic: tx, payload: [0] + probe.bytes)
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            // Let the probes drain out of both subscribers: each side gets a marker last.
            try await registrar.publish(topic: tx, payload: [1])
            _ = try await collect(atB, "the first marker at B") { $0.last?.payload == [1] }
            _ = try await collect(atA, "the first marker at A") { $0.last?.payload == [1] }

            // One message: exactly one copy on each side (no echo back over the bridge).
            try await registrar.publish(topic: tx, payload: [2, 2])
            try await registrar.publish(topic: tx, payload: [3])
            let seenAtB = try await collect(atB, "the message at B") { $0.last?.payload == [3] }
            let seenAtA = try await collect(atA, "the message at A") { $0.last?.payload == [3] }
            #expect(seenAtB.map(\.payload) == [[2, 2], [3]])
            #expect(seenAtA.map(\.payload) == [[2, 2], [3]])
            #expect(seenAtB.first?.topic == tx)

            // The cut: B goes down, A keeps publishing, B comes back with its persistence.
            await brokerB.stop()
            let cut = 25
            for index in 0..<cut { try await registrar.publish(topic: tx, payload: [4] + UInt64(index).bytes) }
            brokerB = try await brokerB.restart()
            let afterCut = try await collect(atB, limit: .seconds(60), "the messages sent during the cut") { received in
                Set(received.filter { $0.payload.first == 4 }.map(\.payload)).count == cut
            }
            let cutPayloads = Set(afterCut.filter { $0.payload.first == 4 }.map(\.payload))
            #expect(cutPayloads.count == cut)
            #expect(atB.reconnectCount >= 1)

            await a.stop()
            await brokerB.stop()
        } catch {
            if let brokerA { await brokerA.stop() }
            await brokerB.stop()
            throw error
        }
    }
}
