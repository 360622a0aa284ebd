import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport
import Testing

@Suite("A hospital's broker: researchers' and clinicians' topics", .network)
struct ProfessionalACLTests {
    @Test("a researcher publishes its own transactions and fetches, and reads only its own responses")
    func researcherACL() async throws {
        let hospital = try HospitalFixture(professionals: ["researcher-1", "researcher-2"])
        defer { hospital.remove() }
        let broker = try await hospital.start()
        do {
            func connect(_ identity: String) async throws -> MQTTClient {
                var configuration = hospital.configuration(broker, identity: identity)
                configuration.responseTopicPrefix = "medledger/v1/_responses/\(identity)"
                let client = try MQTTClient(configuration: configuration, logger: testLogger)
                try await within(.seconds(10), "connect \(identity)") { try await client.connect() }
                return client
            }
            let manager = try await connect("manager-1")
            try await manager.subscribe(hospital.topic("fetch", "manager-1"), qos: .atLeastOnce)
            try await manager.subscribe(hospital.topic("tx", "+"), qos: .atLeastOnce)
            let answering = Task {
                for await message in manager.messages where message.topic == hospital.topic("fetch", "manager-1") {
                    try await manager.respond(to: message, payload: [0xA0] + message.payload)
                }
            }
            defer { answering.cancel() }
            let first = try await connect("researcher-1")
            let second = try await connect("researcher-2")

            // Its own transactions: yes; another's, or a device's readings: no.
            try await first.publish(topic: hospital.topic("tx", "researcher-1"), payload: [1])
            try await first.publish(topic: hospital.topic("access-status", "manager-1"), payload: [1])
            for topic in [hospital.topic("tx", "researcher-2"), hospital.topic("readings", "cuff-1")] {
                do {
                    try await first.publish(topic: topic, payload: [2])
                    Issue.record("researcher-1 published on \(topic)")
                } catch {
                    #expect(error.code == .notAuthorized)
                }
            }
            // The manager publishes its access logs on its own tx topic.
            try await manager.publish(topic: hospital.topic("tx", "manager-1"), payload: [3])

            // A fetch to a manager and its answer, on the researcher's own response topic; the other
            // researcher, trying to subscribe to it too, gets only the answer to its own request.
            _ = try? await second.subscribe("medledger/v1/_responses/researcher-1/#", qos: .atLeastOnce)
            let answer = try await first.request(
                topic: hospital.topic("fetch", "manager-1"), payload: [7], timeout: .seconds(10))
            #expect(answer.payload == [0xA0, 7])
            let own = try await second.request(
                topic: hospital.topic("fetch", "manager-1"), payload: [8], timeout: .seconds(10))
            #expect(own.payload == [0xA0, 8])
            // Had the broker let it read researcher-1's answer, published before its own request was
            // even sent, that answer would have reached its inbox before its own.
            #expect(second.receivedMessages == 0)
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }

    @Test("only managers publish receipts, only validators publish commits, and only nodes read them")
    func receiptsAndCommitsACL() async throws {
        let hospital = try HospitalFixture(professionals: ["researcher-1"], bridges: ["bridge-b"])
        defer { hospital.remove() }
        let broker = try await hospital.start()
        do {
            func connect(_ identity: String) async throws -> MQTTClient {
                let client = try MQTTClient(
                    configuration: hospital.configuration(broker, identity: identity), logger: testLogger)
                try await within(.seconds(10), "connect \(identity)") { try await client.connect() }
                return client
            }
            let manager = try await connect("manager-1")
            let bridge = try await connect("bridge-b")
            // A bridge carries receipts towards its side (it may read them) but may not publish one.
            try await bridge.subscribe(hospital.topic("receipts", "#"), qos: .atLeastOnce)
            do {
                try await bridge.publish(topic: hospital.topic("receipts", "cuff-1"), payload: [0xF0])
                Issue.record("a bridge published a receipt")
            } catch {
                #expect(error.code == .notAuthorized)
            }
            try await manager.publish(topic: hospital.topic("receipts", "cuff-1"), payload: [1])
            let carried = try await collect(bridge, "the manager's receipt, carried") { $0.count == 1 }
            #expect(carried.first?.payload == [1])
            // Only validators publish commits; a manager may only read them.
            do {
                try await manager.publish(topic: hospital.topic("commits"), payload: [0xC1], retain: true)
                Issue.record("a manager published a commit")
            } catch {
                #expect(error.code == .notAuthorized)
            }
            let validator = try await connect("validator-1")
            try await validator.publish(topic: hospital.topic("commits"), payload: [0xC0], retain: true)
            try await validator.subscribe(hospital.topic("commits"), qos: .atLeastOnce)
            _ = try await collect(validator, "the retained commit, to a node") { $0.contains { $0.payload == [0xC0] } }
            // A researcher and a registrar subscribe to the committed blocks (every reading's
            // bytes) after one is retained: the broker would hand it over with the subscription,
            // before anything published later; they get nothing but their own receipts.
            let researcher = try await connect("researcher-1")
            let registrar = try await connect("registrar-1")
            for (client, id) in [(researcher, "researcher-1"), (registrar, "registrar-1")] {
                _ = try? await client.subscribe(hospital.topic("commits"), qos: .atLeastOnce)
                try await client.subscribe(hospital.topic("tx-receipts", id), qos: .atLeastOnce)
            }
            for id in ["researcher-1", "registrar-1"] {
                try await manager.publish(topic: hospital.topic("tx-receipts", id), payload: [2])
            }
            for (client, id) in [(researcher, "researcher-1"), (registrar, "registrar-1")] {
                let got = try await collect(client, "\(id)'s own receipt") { $0.contains { $0.payload == [2] } }
                #expect(got.allSatisfy { $0.topic != hospital.topic("commits") }, "\(id) read a committed block")
            }
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }
}
