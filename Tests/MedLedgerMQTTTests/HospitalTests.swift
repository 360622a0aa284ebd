import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport
import Testing

@Suite("A hospital's broker: TLS, authentication and the channel's ACL", .network)
struct HospitalTests {
    /// Connects `identity`; the client is returned connected.
    private func connect(_ hospital: HospitalFixture, _ broker: MosquittoBroker, _ identity: String) async throws
        -> MQTTClient
    {
        let client = try MQTTClient(
            configuration: hospital.configuration(broker, identity: identity), logger: testLogger)
        try await within(.seconds(10), "connect \(identity)") { try await client.connect() }
        return client
    }

    @Test(
        "a device publishes only its own readings and reads only its own receipts",
        arguments: BrokerAuthentication.allCases)
    func deviceACL(authentication: BrokerAuthentication) async throws {
        let hospital = try HospitalFixture(authentication: authentication)
        defer { hospital.remove() }
        let broker = try await hospital.start()
        do {
            let manager = try await connect(hospital, broker, "manager-1")
            let cuff1 = try await connect(hospital, broker, "cuff-1")
            try await manager.subscribe(hospital.topic("readings", "+"), qos: .atLeastOnce)

            // Another device's topic: the broker refuses it (MQTT 5 PUBACK "not authorized") and
            // the manager never sees it.
            do {
                try await cuff1.publish(topic: hospital.topic("readings", "cuff-2"), payload: [0xBA, 0xD0])
                Issue.record("a device published on another device's readings topic")
            } catch {
                #expect(error.code == .notAuthorized)
                #expect(error.reasonCode == 0x87)
            }
            try await cuff1.publish(topic: hospital.topic("readings", "cuff-1"), payload: [1])
            let readings = try await collect(manager, "the device's own reading") { $0.count == 1 }
            #expect(readings.map(\.topic) == [hospital.topic("readings", "cuff-1")])
            #expect(readings.first?.payload == [1])

            // Receipts: cuff-1 asks for cuff-2's too, and gets only its own.
            try await cuff1.subscribe(hospital.topic("receipts", "cuff-1"), qos: .atLeastOnce)
            _ = try? await cuff1.subscribe(hospital.topic("receipts", "cuff-2"), qos: .atLeastOnce)
            try await manager.publish(topic: hospital.topic("receipts", "cuff-2"), payload: [2])
            try await manager.publish(topic: hospital.topic("receipts", "cuff-1"), payload: [1])
            let receipts = try await collect(cuff1, "the device's own receipt") { $0.count == 1 }
            #expect(receipts.map(\.topic) == [hospital.topic("receipts", "cuff-1")])

            // A device may not publish receipts, or subscribe to everything.
            await #expect(throws: MQTTError.self) {
                try await cuff1.publish(topic: hospital.topic("receipts", "cuff-1"), payload: [9])
            }
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }

    @Test("a client without credentials, or with a certificate of another CA, is refused")
    func refused() async throws {
        let hospital = try HospitalFixture(extraIdentities: ["stranger"])
        defer { hospital.remove() }
        let otherCA = hospital.directory.file("other-ca")
        try TestCertificates.make(in: otherCA, caName: "Some other CA", servers: [], identities: ["cuff-1"])
        let broker = try await hospital.start()
        do {
            var noReconnect = hospital.configuration(broker, identity: "cuff-1", withCertificate: false)
            noReconnect.reconnect = .never
            let anonymous = try MQTTClient(configuration: noReconnect, logger: testLogger)
            await #expect(throws: MQTTError.self) {
                try await within(.seconds(10), "anonymous connect") { try await anonymous.connect() }
            }
            var forged = hospital.configuration(broker, identity: "cuff-1", certificateFrom: otherCA)
            forged.reconnect = .never
            let impostor = try MQTTClient(configuration: forged, logger: testLogger)
            await #expect(throws: MQTTError.self) {
                try await within(.seconds(10), "connect with a foreign certificate") { try await impostor.connect() }
            }
            // A certificate of the right CA for an identity the ACL does not name: connected, but
            // allowed nothing.
            let stranger = try await connect(hospital, broker, "stranger")
            await #expect(throws: MQTTError.self) {
                try await stranger.publish(topic: hospital.topic("readings", "stranger"), payload: [1])
            }
            // A legitimate device still gets in.
            let device = try await connect(hospital, broker, "cuff-2")
            #expect(device.state == .connected)
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }

    @Test("a client that insists on TLS 1.3 connects")
    func tls13() async throws {
        let hospital = try HospitalFixture()
        defer { hospital.remove() }
        let broker = try await hospital.start()
        do {
            var configuration = hospital.configuration(broker, identity: "manager-1")
            configuration.tls?.minimumVersion = .tls13
            let client = try MQTTClient(configuration: configuration, logger: testLogger)
            try await within(.seconds(10), "connect") { try await client.connect() }
            try await client.subscribe(hospital.topic("readings", "+"), qos: .atLeastOnce)
            #expect(client.state == .connected)
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }

    @Test("a wrong password is refused as not authorized")
    func wrongPassword() async throws {
        let hospital = try HospitalFixture(authentication: .password)
        defer { hospital.remove() }
        let broker = try await hospital.start()
        do {
            var configuration = hospital.configuration(broker, identity: "cuff-1")
            configuration.password = "not-the-password"
            configuration.reconnect = .never
            let client = try MQTTClient(configuration: configuration, logger: testLogger)
            do {
                try await within(.seconds(10), "connect") { try await client.connect() }
                Issue.record("a wrong password was accepted")
            } catch let error as MQTTError {
                #expect(error.code == .notAuthorized)
                #expect(error.reasonCode == 0x86 || error.reasonCode == 0x87)
            }
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }
}
