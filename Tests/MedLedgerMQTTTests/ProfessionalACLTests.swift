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
}
