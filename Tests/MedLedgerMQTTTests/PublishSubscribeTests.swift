import MedLedgerBroker
import MedLedgerMQTT
import MedLedgerTestSupport
import Testing

@Suite("Publish and subscribe through a real broker", .network)
struct PublishSubscribeTests {
    @Test(
        "a message makes the round trip at QoS 0 and 1, over MQTT 3.1.1 and 5",
        arguments: [
            (MQTTProtocolVersion.v311, MQTTQoS.atMostOnce), (.v311, .atLeastOnce), (.v5, .atMostOnce),
            (.v5, .atLeastOnce),
        ])
    func roundTrip(version: MQTTProtocolVersion, qos: MQTTQoS) async throws {
        try await withDevBroker { broker in
            let subscriber = try await connectedClient(broker, "sub", version: version)
            let publisher = try await connectedClient(broker, "pub", version: version)
            let granted = try await subscriber.subscribe("medledger/v1/test/readings/+", qos: qos)
            #expect(granted == qos)
            try await publisher.publish(
                topic: "medledger/v1/test/readings/cuff-1", payload: [1, 2, 3], qos: qos)
            let received = try await collect(subscriber, "the message") { $0.count == 1 }
            #expect(received.first?.topic == "medledger/v1/test/readings/cuff-1")
            #expect(received.first?.payload == [1, 2, 3])
            #expect(received.first?.qos == qos)
            #expect(subscriber.droppedMessages == 0)
            await publisher.disconnect()
            await subscriber.disconnect()
            #expect(publisher.state == .idle)
        }
    }

    @Test("100,000 QoS 1 messages arrive, none lost")
    func hundredThousand() async throws {
        try await withDevBroker { broker in
            let subscriber = try await connectedClient(broker, "bulk-sub")
            let publisher = try await connectedClient(broker, "bulk-pub")
            try await subscriber.subscribe("bulk/#", qos: .atLeastOnce)
            let total = 100_000
            let receiving = Task {
                var seen = Set<UInt64>()
                var copies = 0
                for await message in subscriber.messages {
                    copies += 1
                    seen.insert(UInt64(bytes: message.payload))
                    if seen.count == total { break }
                }
                return (seen.count, copies)
            }
            for index in 0..<total {
                try publisher.enqueue(
                    topic: "bulk/\(index % 16)", payload: UInt64(index).bytes + [UInt8](repeating: 7, count: 56))
            }
            try await publisher.flush(timeout: .seconds(60))
            let (distinct, copies) = try await within(.seconds(60), "100,000 messages") { await receiving.value }
            #expect(distinct == total)
            // QoS 1 allows duplicates only after a reconnect; there was none.
            #expect(copies == total)
            #expect(subscriber.droppedMessages == 0)
            #expect(publisher.reconnectCount == 0)
        }
    }

    @Test("a message on a priority topic is taken before the others already buffered")
    func priorityTopicsJumpTheBuffer() async throws {
        try await withDevBroker { broker in
            let subscriber = try await connectedClient(broker, "prio") { $0.priorityTopicPrefixes = ["council/"] }
            let publisher = try await connectedClient(broker, "flood")
            try await subscriber.subscribe("readings/#", qos: .atLeastOnce)
            try await subscriber.subscribe("council/#", qos: .atLeastOnce)
            for index in 0..<2000 {
                try publisher.enqueue(
                    topic: "readings/cuff-\(index % 7)", payload: [UInt8(index % 251)], qos: .atLeastOnce)
            }
            try await publisher.publish(topic: "council/vote/v-1", payload: [9], qos: .atLeastOnce)
            // Nothing is taken until all 2001 are in the subscriber's buffer.
            try await eventually(.seconds(30), "2001 messages buffered") { subscriber.receivedMessages == 2001 }
            let taken = try await collect(subscriber, "every message") { $0.count == 2001 }
            #expect(taken.first?.topic == "council/vote/v-1", "\(taken.prefix(3).map(\.topic))")
            // The others keep their order.
            #expect(taken.dropFirst().map { $0.payload[0] } == (0..<2000).map { UInt8($0 % 251) })
            #expect(subscriber.droppedMessages == 0)
        }
    }

    @Test("MQTT 5 user properties, content type and request/response")
    func requestResponse() async throws {
        try await withDevBroker { broker in
            let responder = try await connectedClient(broker, "responder")
            let requester = try await connectedClient(broker, "requester")
            try await responder.subscribe("medledger/v1/test/sync/requests", qos: .atLeastOnce)
            let answering = Task { () async throws -> MQTTMessage? in
                for await request in responder.messages {
                    let sum = request.payload.reduce(0) { $0 &+ $1 }
                    try await responder.respond(
                        to: request, payload: [sum],
                        properties: MQTTProperties(userProperties: [MQTTUserProperty("answered-by", "responder")]))
                    return request
                }
                return nil
            }
            let response = try await requester.request(
                topic: "medledger/v1/test/sync/requests", payload: [1, 2, 3], timeout: .seconds(10),
                properties: MQTTProperties(
                    userProperties: [MQTTUserProperty("kind", "sum")], contentType: "application/cbor"))
            #expect(response.payload == [6])
            #expect(response.properties.userProperties == [MQTTUserProperty("answered-by", "responder")])
            let request = try await within(.seconds(5), "the request") { try await answering.value }
            #expect(request?.properties.userProperties == [MQTTUserProperty("kind", "sum")])
            #expect(request?.properties.contentType == "application/cbor")
            #expect(request?.properties.responseTopic == requester.responseTopic)
            #expect(request?.properties.correlationData?.count == 16)
        }
    }

    @Test("a request nobody answers times out")
    func requestTimeout() async throws {
        try await withDevBroker { broker in
            let requester = try await connectedClient(broker, "lonely")
            await #expect(throws: MQTTError.self) {
                _ = try await requester.request(topic: "nobody/listens", payload: [1], timeout: .milliseconds(300))
            }
        }
    }

    @Test("bad topics and filters are refused with a clear error")
    func badArguments() async throws {
        try await withDevBroker { broker in
            let client = try await connectedClient(broker, "bad")
            #expect(throws: MQTTError.self) { try client.enqueue(topic: "a/+/b", payload: []) }
            await #expect(throws: MQTTError.self) { try await client.subscribe("a/#/b") }
            do {
                try await client.publish(topic: "", payload: [])
                Issue.record("an empty topic was accepted")
            } catch let error as MQTTError {
                #expect(error.code == .invalidArgument)
            }
        }
    }

    @Test("connecting to a port where no broker listens fails as unreachable")
    func unreachable() async throws {
        let port = try await withDevBroker { broker in broker.port }
        let client = try MQTTClient(
            configuration: MQTTConfiguration(port: port, clientID: clientID("nobody"), reconnect: .never),
            logger: testLogger)
        do {
            try await within(.seconds(10), "connect") { try await client.connect() }
            Issue.record("connected to a stopped broker")
        } catch let error as MQTTError {
            #expect(error.code == .unreachable)
            #expect(error.mosquittoCode != nil)
        }
    }
}

@Suite("Smaller parts of the client", .network)
struct ClientPartsTests {
    @Test("after unsubscribe nothing more arrives on the filter")
    func unsubscribe() async throws {
        try await withDevBroker { broker in
            let subscriber = try await connectedClient(broker, "unsub")
            let publisher = try await connectedClient(broker, "unsub-pub")
            try await subscriber.subscribe([MQTTSubscription("a/#"), MQTTSubscription("marker")])
            try await publisher.publish(topic: "a/1", payload: [1])
            _ = try await collect(subscriber, "the first message") { $0.count == 1 }
            try await subscriber.unsubscribe(["a/#"])
            try await publisher.publish(topic: "a/2", payload: [2])
            try await publisher.publish(topic: "marker", payload: [3])
            let after = try await collect(subscriber, "the marker") { $0.last?.topic == "marker" }
            #expect(after.map(\.topic) == ["marker"])
        }
    }

    @Test("reconnect delays grow from the minimum to the maximum, shortened by at most the jitter")
    func reconnectDelays() {
        let policy = MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .seconds(5), jitter: 0.25)
        #expect(policy.delay(attempt: 0, random: 0) == .milliseconds(100))
        #expect(policy.delay(attempt: 3, random: 0) == .milliseconds(800))
        #expect(policy.delay(attempt: 10, random: 0) == .seconds(5))
        #expect(policy.delay(attempt: 40, random: 0) == .seconds(5))
        #expect(policy.delay(attempt: 3, random: 0.999) > .milliseconds(600))
        #expect(policy.delay(attempt: 3, random: 0.999) < .milliseconds(601))
        #expect(MQTTReconnectPolicy(jitter: 7).jitter == 1)
    }

    @Test("configurations libmosquitto would refuse are refused up front, naming the field")
    func invalidConfigurations() {
        var configuration = MQTTConfiguration(clientID: "x")
        configuration.keepAlive = 1
        #expect(throws: MQTTError.self) { try configuration.validate() }
        configuration = MQTTConfiguration(clientID: "")
        #expect(throws: MQTTError.self) { try configuration.validate() }
        configuration = MQTTConfiguration(clientID: "x", password: "p")
        #expect(throws: MQTTError.self) { try configuration.validate() }
        configuration = MQTTConfiguration(clientID: "x", tls: MQTTTLSOptions(caFile: "ca", certificateFile: "c"))
        #expect(throws: MQTTError.self) { try configuration.validate() }
        configuration = MQTTConfiguration(endpoints: [], clientID: "x")
        #expect(throws: MQTTError.self) { try configuration.validate() }
        do {
            _ = try MQTTClient(
                configuration: MQTTConfiguration(
                    clientID: "x", tls: MQTTTLSOptions(caFile: "/nonexistent/ca.crt")), logger: testLogger)
            Issue.record("a missing CA file was accepted")
        } catch {
            #expect(error.code == .invalidArgument || error.code == .tls)
            #expect(error.mosquittoCode != nil)
        }
    }
}
