public import Logging
import Synchronization

/// An MQTT client over libmosquitto, with async/await and no C type in its API.
///
/// Every libmosquitto call runs on the client's `MQTTEventLoop` thread (its own, unless one is
/// given, as an `MQTTFleet` does); the methods may be called from any task or thread.
///
/// - A QoS 1 `publish` returns once the broker's PUBACK arrived; `enqueue` plus `flush` send
///   many without waiting for each.
/// - Received messages come through `messages`, a bounded buffer (see
///   `MQTTConfiguration.receiveBufferCapacity`); libmosquitto has acknowledged a QoS 1 message
///   before the consumer sees it, so it is safe only once the consumer has persisted it.
/// - After a lost connection the client reconnects by its `MQTTReconnectPolicy`, trying the
///   configured brokers in turn; with `cleanStart` false and a `sessionExpiry` the broker keeps
///   the session, so a subscriber gets the QoS 1 messages sent while it was away. Subscriptions
///   are made again when the broker kept no session.
public final class MQTTClient: Sendable {
    /// The configuration it was made with.
    public let configuration: MQTTConfiguration
    /// The loop that drives it.
    public let eventLoop: MQTTEventLoop
    let connection: MQTTConnection
    private let ownsLoop: Bool

    /// Makes a client; it does not connect yet.
    /// - Parameters:
    ///   - configuration: where and how to connect.
    ///   - eventLoop: the loop to run on; nil makes one for this client alone (one thread).
    ///   - logger: where connection events are logged.
    /// - Throws: `MQTTError` when the configuration is invalid or libmosquitto refuses an option
    ///   (a missing TLS file, say).
    public init(configuration: MQTTConfiguration, eventLoop: MQTTEventLoop? = nil, logger: Logger) throws(MQTTError) {
        let loop: MQTTEventLoop
        if let eventLoop {
            loop = eventLoop
        } else {
            loop = try MQTTEventLoop(name: "mqtt-\(configuration.clientID)")
        }
        self.configuration = configuration
        self.eventLoop = loop
        self.ownsLoop = eventLoop == nil
        do {
            connection = try MQTTConnection(configuration: configuration, loop: loop, logger: logger)
        } catch {
            if eventLoop == nil { loop.stopSoon() }
            throw error
        }
        let connection = self.connection
        loop.execute { loop.add(connection) }
    }

    deinit {
        let connection = self.connection
        let loop = eventLoop
        loop.execute {
            connection.shutdownOnLoop()
            loop.remove(connection)
        }
        if ownsLoop { loop.stopSoon() }
    }

    /// Connects, trying each configured broker once in order; returns at the first CONNACK that
    /// accepts. Returns at once when already connected.
    /// - Throws: `MQTTError`: `.unreachable` (no broker answered), `.notAuthorized` or
    ///   `.connectionRefused` (CONNACK refused), `.tls`, `.timeout`.
    public func connect() async throws(MQTTError) {
        let connection = self.connection
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) in
            eventLoop.execute(
                { connection.connect(continuation) },
                ifClosed: { continuation.resume(returning: .failure(Self.loopClosed)) })
        }
        try result.get()
    }

    /// Sends DISCONNECT and waits until the connection is closed (at most 5 seconds). Messages
    /// not yet acknowledged stay in the client's session; call `flush` first to wait for them.
    /// Waiting publishes, requests and subscribes fail with `.closed`.
    public func disconnect() async {
        let connection = self.connection
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            eventLoop.execute({ connection.disconnect(continuation) }, ifClosed: { continuation.resume() })
        }
    }

    /// Closes the connection at once, without waiting, and ends `messages` and `events()`.
    /// Every later operation fails with `.closed`.
    public func shutdown() {
        let connection = self.connection
        eventLoop.execute { connection.shutdownOnLoop() }
    }

    /// Publishes a message. At QoS 0 it returns once libmosquitto has it; at QoS 1 and 2 once the
    /// broker acknowledged it (waiting through reconnects).
    /// - Parameters:
    ///   - topic: the topic (no wildcards).
    ///   - payload: the bytes.
    ///   - qos: the quality of service.
    ///   - retain: whether the broker retains it.
    ///   - properties: MQTT 5 properties (ignored on 3.1.1).
    /// - Throws: `MQTTError`: `.invalidArgument` (bad topic), `.notConnected` (QoS 0 while not
    ///   connected), `.notAuthorized` or `.rejected` (MQTT 5 PUBACK with a failure reason, such as
    ///   an ACL refusal), `.closed`.
    public func publish(
        topic: String, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, retain: Bool = false,
        properties: MQTTProperties = .none
    ) async throws(MQTTError) {
        try Self.checkTopic(topic)
        let connection = self.connection
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) in
            eventLoop.submit(
                .publish(
                    connection,
                    OutgoingPublish(
                        topic: topic, payload: payload, qos: qos, retain: retain, properties: properties,
                        completion: .continuation(continuation))))
        }
        try result.get()
    }

    /// Queues a message without waiting; `onAcknowledged` (if given) is called on the loop thread
    /// with the outcome (it must not block). `flush` waits for everything queued.
    /// - Throws: `MQTTError.Code.invalidArgument` for a topic that cannot be published on.
    public func enqueue(
        topic: String, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, retain: Bool = false,
        properties: MQTTProperties = .none,
        onAcknowledged: (@Sendable (Result<Void, MQTTError>) -> Void)? = nil
    ) throws(MQTTError) {
        try Self.checkTopic(topic)
        eventLoop.submit(
            .publish(
                connection,
                OutgoingPublish(
                    topic: topic, payload: payload, qos: qos, retain: retain, properties: properties,
                    completion: onAcknowledged.map { .callback($0) } ?? .none)))
    }

    /// Waits until every message published or queued before the call is acknowledged (QoS 1, 2)
    /// or written (QoS 0).
    /// - Parameter timeout: the longest wait.
    /// - Throws: `MQTTError`: `.timeout`, or the failure that ended the connection for good.
    public func flush(timeout: Duration = .seconds(60)) async throws(MQTTError) {
        let connection = self.connection
        let loop = eventLoop
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) in
            loop.execute(
                {
                    guard let id = connection.flush(continuation) else { return }
                    Task {
                        try? await Task.sleep(for: timeout)
                        loop.execute {
                            connection.cancelFlush(
                                id, error: MQTTError(.timeout, "flush did not finish within \(timeout)"))
                        }
                    }
                }, ifClosed: { continuation.resume(returning: .failure(Self.loopClosed)) })
        }
        try result.get()
    }

    /// Subscribes, one SUBSCRIBE per filter, and returns the QoS the broker granted for each.
    /// The subscriptions are remembered and made again after a reconnect without a session.
    /// - Throws: `MQTTError`: `.notConnected`, `.rejected` or `.notAuthorized` (SUBACK failure).
    @discardableResult
    public func subscribe(_ subscriptions: [MQTTSubscription]) async throws(MQTTError) -> [MQTTQoS] {
        for subscription in subscriptions { try Self.checkFilter(subscription.filter) }
        let connection = self.connection
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<[Int], MQTTError>, Never>) in
            eventLoop.execute(
                { connection.subscribe(subscriptions, continuation) },
                ifClosed: { continuation.resume(returning: .failure(Self.loopClosed)) })
        }
        return try result.get().map { MQTTQoS(rawValue: $0) ?? .atMostOnce }
    }

    /// Subscribes to one filter.
    /// - Throws: as `subscribe(_:)`.
    @discardableResult
    public func subscribe(_ filter: String, qos: MQTTQoS = .atLeastOnce) async throws(MQTTError) -> MQTTQoS {
        try await subscribe([MQTTSubscription(filter, qos: qos)])[0]
    }

    /// Unsubscribes from filters and forgets them.
    /// - Throws: `MQTTError`: `.notConnected`, `.invalidArgument`.
    public func unsubscribe(_ filters: [String]) async throws(MQTTError) {
        for filter in filters { try Self.checkFilter(filter) }
        let connection = self.connection
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) in
            eventLoop.execute(
                { connection.unsubscribe(filters, continuation) },
                ifClosed: { continuation.resume(returning: .failure(Self.loopClosed)) })
        }
        try result.get()
    }

    /// The messages received, through a bounded buffer. A QoS 1 message is acknowledged to the
    /// broker before it appears here: it is safe only once the consumer has persisted it.
    public var messages: MQTTMessageSequence { MQTTMessageSequence(inbox: connection.inbox) }

    /// Messages dropped because the receive buffer was full (never silently: each is counted and logged).
    public var droppedMessages: Int { connection.inbox.dropped.load(ordering: .relaxed) }

    /// Messages received from the broker so far (including dropped ones).
    public var receivedMessages: Int { connection.inbox.received.load(ordering: .relaxed) }

    /// How many times the client has connected again after losing a connection.
    public var reconnectCount: Int { connection.reconnects.load(ordering: .relaxed) }

    /// The connection's state now.
    public var state: MQTTConnectionState { connection.state }

    /// A new stream of the connection's changes from now on (each call gets its own).
    public func events() -> AsyncStream<MQTTConnectionEvent> { connection.events() }

    /// The topic this client's requests ask responders to answer on.
    public var responseTopic: String { connection.responseTopic }

    /// MQTT 5 request/response: publishes `payload` on `topic` with this client's response topic
    /// and fresh correlation data, and returns the response. Subscribes to the response topic on
    /// first use.
    /// - Parameters:
    ///   - topic: where the responder listens.
    ///   - payload: the request.
    ///   - timeout: the longest wait for the response.
    ///   - properties: more properties (the response topic and correlation data are set here).
    /// - Throws: `MQTTError`: `.invalidArgument` on MQTT 3.1.1, `.timeout`, or a publish failure.
    public func request(
        topic: String, payload: [UInt8], timeout: Duration = .seconds(10), properties: MQTTProperties = .none
    ) async throws(MQTTError) -> MQTTMessage {
        guard configuration.protocolVersion == .v5 else {
            throw MQTTError(.invalidArgument, "request/response needs MQTT 5")
        }
        let connection = self.connection
        let loop = eventLoop
        let subscribed = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            loop.execute(
                { continuation.resume(returning: connection.hasResponseSubscription) },
                ifClosed: { continuation.resume(returning: true) })
        }
        if !subscribed {
            try await subscribe([MQTTSubscription(connection.responseTopic, qos: .atLeastOnce)])
        }
        var correlation = [UInt8](repeating: 0, count: 16)
        for index in correlation.indices { correlation[index] = UInt8.random(in: 0...255) }
        var withResponse = properties
        withResponse.responseTopic = connection.responseTopic
        withResponse.correlationData = correlation
        let outgoing = withResponse
        let key = correlation
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<MQTTMessage, MQTTError>, Never>) in
            loop.execute(
                {
                    connection.addRequest(key, continuation)
                    let failed: @Sendable (Result<Void, MQTTError>) -> Void = { outcome in
                        if case .failure(let error) = outcome { connection.cancelRequest(key, error: error) }
                    }
                    _ = connection.enqueueOnLoop(
                        OutgoingPublish(
                            topic: topic, payload: payload, qos: .atLeastOnce, retain: false, properties: outgoing,
                            completion: .callback(failed)))
                    connection.releaseOutbox()
                    Task {
                        try? await Task.sleep(for: timeout)
                        loop.execute {
                            connection.cancelRequest(
                                key, error: MQTTError(.timeout, "no response on '\(topic)' within \(timeout)"))
                        }
                    }
                }, ifClosed: { continuation.resume(returning: .failure(Self.loopClosed)) })
        }
        return try result.get()
    }

    /// Answers a request: publishes `payload` on the request's response topic with its
    /// correlation data.
    /// - Throws: `MQTTError.Code.invalidArgument` when the request has no response topic; a
    ///   publish failure.
    public func respond(
        to request: MQTTMessage, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, properties: MQTTProperties = .none
    ) async throws(MQTTError) {
        guard let topic = request.properties.responseTopic else {
            throw MQTTError(.invalidArgument, "the message on '\(request.topic)' has no response topic")
        }
        var outgoing = properties
        outgoing.correlationData = request.properties.correlationData
        try await publish(topic: topic, payload: payload, qos: qos, properties: outgoing)
    }

    static let loopClosed = MQTTError(.closed, "the client's event loop has shut down")

    static func checkTopic(_ topic: String) throws(MQTTError) {
        guard !topic.isEmpty, topic.utf8.count <= 65535, !topic.contains("+"), !topic.contains("#"),
            !topic.utf8.contains(0)
        else {
            throw MQTTError(.invalidArgument, "'\(topic)' is not a topic that can be published on")
        }
    }

    static func checkFilter(_ filter: String) throws(MQTTError) {
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        var valid = !filter.isEmpty && filter.utf8.count <= 65535 && !filter.utf8.contains(0)
        for (index, level) in levels.enumerated() {
            if level.contains("#") && (level != "#" || index != levels.count - 1) { valid = false }
            if level.contains("+") && level != "+" { valid = false }
        }
        guard valid else { throw MQTTError(.invalidArgument, "'\(filter)' is not a valid topic filter") }
    }
}
