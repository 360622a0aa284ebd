import CMosquitto
import Foundation
import Logging
import Synchronization

/// Where the result of one publish goes.
enum PublishCompletion: Sendable {
    case none
    case continuation(CheckedContinuation<Result<Void, MQTTError>, Never>)
    case callback(@Sendable (Result<Void, MQTTError>) -> Void)
}

/// A message handed to the loop to publish.
struct OutgoingPublish: Sendable {
    var topic: String
    var payload: [UInt8]
    var qos: MQTTQoS
    var retain: Bool
    var properties: MQTTProperties
    var completion: PublishCompletion

    func complete(_ result: Result<Void, MQTTError>) { completion.complete(result) }
}

extension PublishCompletion {
    func complete(_ result: Result<Void, MQTTError>) {
        switch self {
        case .none: break
        case .continuation(let continuation): continuation.resume(returning: result)
        case .callback(let callback): callback(result)
        }
    }
}

/// The state of a client's connection.
public enum MQTTConnectionState: Hashable, Sendable {
    /// Not connected, and not trying to be.
    case idle
    /// A connection attempt is under way.
    case connecting
    /// Connected (CONNACK received).
    case connected
    /// The connection was lost; the client waits before the next attempt.
    case reconnecting
    /// A DISCONNECT is being sent.
    case disconnecting
    /// The client was shut down.
    case closed
}

/// A change of a client's connection.
public enum MQTTConnectionEvent: Hashable, Sendable {
    /// Connected to `endpoint`; `sessionPresent` tells whether the broker kept a session.
    case connected(endpoint: MQTTEndpoint, sessionPresent: Bool)
    /// The connection ended; `error` is nil when the client asked for it.
    case disconnected(error: MQTTError?)
    /// The client will try again after `delay` (its `attempt`th retry since the last connection).
    case reconnecting(attempt: Int, delay: Duration)
}

/// One libmosquitto handle and everything the loop knows about it. All `mosq` calls, the phase,
/// the outbox and the waiters live on the loop thread; other threads reach it through loop
/// commands, the inbox and the `shared` mutex.
final class MQTTConnection: @unchecked Sendable {
    // @unchecked Sendable: every stored `var` below is loop-confined (read and written only on
    // `loop`'s thread, by commands and callbacks); `mosq` is used only there too, and destroyed
    // in deinit when no thread can reach the object any more. Cross-thread state is in `shared`
    // (a Mutex), `inbox` (its own Mutex) and atomics.

    enum Phase {
        case idle
        case connecting(deadline: ContinuousClock.Instant)
        case connected
        case waiting(until: ContinuousClock.Instant)
        case disconnecting(deadline: ContinuousClock.Instant)
        case closed
    }

    struct Shared {
        var state: MQTTConnectionState = .idle
        var observers: [UInt64: AsyncStream<MQTTConnectionEvent>.Continuation] = [:]
        var nextObserver: UInt64 = 0
    }

    let token: UInt64
    let configuration: MQTTConfiguration
    unowned let loop: MQTTEventLoop
    let inbox: MQTTInbox
    let logger: Logger
    let shared = Mutex(Shared())
    let reconnects = Atomic<Int>(0)
    private let mosq: OpaquePointer
    private let clock = ContinuousClock()

    // Loop-confined.
    private var phase: Phase = .idle
    private var registeredFD: Int32 = -1
    private var registeredEvents: UInt32 = 0
    private var endpointIndex = 0
    private var failuresInRound = 0
    private var initialConnect = false
    private var retry = 0
    private var everConnected = false
    private var pendingError: MQTTError?
    private var lastMisc: ContinuousClock.Instant
    private var activity = 0
    private var connectWaiters: [CheckedContinuation<Result<Void, MQTTError>, Never>] = []
    private var disconnectWaiters: [CheckedContinuation<Void, Never>] = []
    private var outbox = MQTTQueue<OutgoingPublish>()
    private var inflight: [Int32: PublishCompletion] = [:]
    private var flushWaiters: [UInt64: CheckedContinuation<Result<Void, MQTTError>, Never>] = [:]
    private var unsubackWaiters: [Int32: CheckedContinuation<Result<Void, MQTTError>, Never>] = [:]
    private var subscriptions: [MQTTSubscription] = []
    private var requests: [[UInt8]: CheckedContinuation<Result<MQTTMessage, MQTTError>, Never>] = [:]
    private var nextWaiter: UInt64 = 0
    private var shutDown = false
    private var parked = false

    /// How many QoS 1/2 messages are handed to libmosquitto at once (all of them in flight).
    private var releaseLimit: Int { configuration.maxInflight }

    init(configuration: MQTTConfiguration, loop: MQTTEventLoop, logger: Logger) throws(MQTTError) {
        try configuration.validate()
        MQTTLibrary.initialize()
        self.configuration = configuration
        self.loop = loop
        self.logger = logger
        self.token = loop.makeToken()
        // One mosquitto_loop_read reads up to (messages in flight out + in + 1) packets, more while
        // TLS has decrypted bytes buffered (one record, at most 16 KiB).
        self.inbox = MQTTInbox(
            capacity: configuration.receiveBufferCapacity, overflow: 2 * configuration.maxInflight + 1024,
            priorityTopicPrefixes: configuration.priorityTopicPrefixes)
        lastMisc = ContinuousClock().now
        guard let handle = mosquitto_new(configuration.clientID, configuration.cleanStart, nil) else {
            throw MQTTError(.noMemory, "mosquitto_new failed for client '\(configuration.clientID)'")
        }
        mosq = handle
        // Every stored property is set from here on, so a throw runs deinit, which destroys the handle.
        try setUp()
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        releaseWakeupPair()
        inbox.onSpace = { [weak self] in
            guard let self else { return }
            self.loop.execute { [self] in self.resumeReading() }
        }
    }

    deinit {
        mosquitto_destroy(mosq)
    }

    private func check(_ rc: Int32, _ what: String) throws(MQTTError) {
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError.mosquitto(rc, what) }
    }

    private func setUp() throws(MQTTError) {
        let version = configuration.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        try check(mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, Int32(version)), "protocol version")
        try check(mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1), "TCP_NODELAY")
        let inflightLimit = UInt32(configuration.maxInflight)
        try check(mosquitto_max_inflight_messages_set(mosq, inflightLimit), "max in-flight messages")
        if configuration.protocolVersion == .v5 {
            try check(mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, Int32(inflightLimit)), "send maximum")
            try check(mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, Int32(inflightLimit)), "receive maximum")
        }
        if let username = configuration.username {
            try check(mosquitto_username_pw_set(mosq, username, configuration.password), "username and password")
        }
        if let tls = configuration.tls {
            try check(
                mosquitto_tls_set(mosq, tls.caFile, tls.caPath, tls.certificateFile, tls.keyFile, nil),
                "TLS files (CA \(tls.caFile ?? tls.caPath ?? "-"), certificate \(tls.certificateFile ?? "-"))")
            try check(mosquitto_tls_opts_set(mosq, 1, tls.minimumVersion.rawValue, tls.ciphers), "TLS options")
            try check(mosquitto_tls_insecure_set(mosq, !tls.verifyHostname), "TLS hostname check")
        }
        mosquitto_connect_v5_callback_set(mosq) { _, obj, rc, flags, _ in
            MQTTConnection.from(obj).didConnect(rc: Int(rc), flags: Int(flags))
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, obj, rc, _ in
            MQTTConnection.from(obj).didDisconnect(rc: rc)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, obj, mid, reason, _ in
            MQTTConnection.from(obj).didPublish(mid: mid, reason: Int(reason))
        }
        mosquitto_message_v5_callback_set(mosq) { _, obj, message, properties in
            guard let message else { return }
            MQTTConnection.from(obj).didReceive(message.pointee, properties: properties)
        }
        mosquitto_subscribe_v5_callback_set(mosq) { _, obj, mid, count, granted, _ in
            let codes = (0..<Int(count)).map { Int(granted![$0]) }
            MQTTConnection.from(obj).didSubscribe(mid: mid, codes: codes)
        }
        mosquitto_unsubscribe_v5_callback_set(mosq) { _, obj, mid, _ in
            MQTTConnection.from(obj).didUnsubscribe(mid: mid)
        }
    }

    /// Closes the socket pair libmosquitto 2.0 makes for every handle (in `mosquitto_new` and
    /// again on every connect). It only serves to wake `select` in libmosquitto's own loops,
    /// which this client does not use, and it would triple the descriptors of a connection:
    /// 10,000 devices would need 30,000 where the machine allows 20,000. The pair's two
    /// descriptors are the `int`s after the socket at the start of `struct mosquitto` in 2.0;
    /// they are closed only when libmosquitto is 2.0.x, the first field is the handle's socket
    /// and both are AF_UNIX stream sockets, and are then marked invalid (-1), which libmosquitto
    /// checks before each use.
    private func releaseWakeupPair() {
        guard MQTTLibrary.releasesWakeupPairs else { return }
        let base = UnsafeMutableRawPointer(mosq)
        let socket = base.load(fromByteOffset: 0, as: Int32.self)
        let reader = base.load(fromByteOffset: 4, as: Int32.self)
        let writer = base.load(fromByteOffset: 8, as: Int32.self)
        guard reader >= 0 || writer >= 0 else { return }
        guard socket == mosquitto_socket(mosq), reader >= 0, writer >= 0, reader != writer, reader != socket,
            writer != socket, Self.isUnixStreamSocket(reader), Self.isUnixStreamSocket(writer)
        else {
            logger.debug("libmosquitto's wake-up socket pair is not where 2.0 keeps it; leaving it open")
            return
        }
        close(reader)
        close(writer)
        base.storeBytes(of: Int32(-1), toByteOffset: 4, as: Int32.self)
        base.storeBytes(of: Int32(-1), toByteOffset: 8, as: Int32.self)
    }

    private static func isUnixStreamSocket(_ fd: Int32) -> Bool {
        var domain: Int32 = 0
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 else { return false }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else { return false }
        return domain == AF_UNIX && type == Int32(SOCK_STREAM.rawValue)
    }

    private static func from(_ obj: UnsafeMutableRawPointer?) -> MQTTConnection {
        Unmanaged<MQTTConnection>.fromOpaque(obj!).takeUnretainedValue()
    }

    // MARK: state and events

    private func setState(_ state: MQTTConnectionState, event: MQTTConnectionEvent? = nil) {
        let observers = shared.withLock { shared -> [AsyncStream<MQTTConnectionEvent>.Continuation] in
            shared.state = state
            return event == nil ? [] : Array(shared.observers.values)
        }
        if let event {
            for observer in observers { observer.yield(event) }
        }
    }

    func events() -> AsyncStream<MQTTConnectionEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: MQTTConnectionEvent.self, bufferingPolicy: .bufferingNewest(256))
        let id = shared.withLock { shared -> UInt64? in
            guard shared.state != .closed else { return nil }
            shared.nextObserver += 1
            shared.observers[shared.nextObserver] = continuation
            return shared.nextObserver
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.shared.withLock { $0.observers.removeValue(forKey: id) }
        }
        return stream
    }

    var state: MQTTConnectionState { shared.withLock { $0.state } }

    // MARK: connecting

    func connect(_ continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) {
        if shutDown {
            continuation.resume(returning: .failure(MQTTError(.closed, "the client was shut down")))
            return
        }
        switch phase {
        case .connected:
            continuation.resume(returning: .success(()))
        case .connecting, .waiting:
            connectWaiters.append(continuation)
        case .disconnecting:
            continuation.resume(
                returning: .failure(MQTTError(.invalidArgument, "connect() while a disconnect is under way")))
        case .idle, .closed:
            connectWaiters.append(continuation)
            initialConnect = true
            failuresInRound = 0
            attempt()
        }
    }

    private func attempt() {
        let endpoint = configuration.endpoints[endpointIndex % configuration.endpoints.count]
        pendingError = nil
        setState(everConnected ? .reconnecting : .connecting)
        let rc: Int32
        if configuration.protocolVersion == .v5, let expiry = configuration.sessionExpiry {
            // libmosquitto 2.0 sends CONNECT properties only from its blocking connect; its TCP
            // connect blocks this loop until the broker's host answers (at once on a LAN).
            var properties: OpaquePointer? = nil
            _ = mosquitto_property_add_int32(&properties, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), expiry)
            rc = mosquitto_connect_bind_v5(
                mosq, endpoint.host, Int32(endpoint.port), Int32(configuration.keepAlive), nil, properties)
            mosquitto_property_free_all(&properties)
        } else {
            rc = mosquitto_connect_bind_async(
                mosq, endpoint.host, Int32(endpoint.port), Int32(configuration.keepAlive), nil)
        }
        releaseWakeupPair()
        if rc != MOSQ_ERR_SUCCESS.rawValue {
            failed(MQTTError.mosquitto(rc, "connecting to \(endpoint)"), duringConnect: true)
            return
        }
        phase = .connecting(deadline: clock.now + configuration.connectTimeout)
        sync()
    }

    private func didConnect(rc: Int, flags: Int) {
        activity += 1
        guard rc == 0 else {
            let endpoint = configuration.endpoints[endpointIndex % configuration.endpoints.count]
            pendingError = MQTTError.reason(rc, "broker \(endpoint) refused the connection", connack: true)
            return
        }
        let sessionPresent = flags & 1 == 1
        let endpoint = configuration.endpoints[endpointIndex % configuration.endpoints.count]
        phase = .connected
        retry = 0
        failuresInRound = 0
        initialConnect = false
        if everConnected { reconnects.add(1, ordering: .relaxed) }
        everConnected = true
        logger.debug(
            "MQTT connected",
            metadata: [
                "client": "\(configuration.clientID)", "broker": "\(endpoint)",
                "session-present": "\(sessionPresent)",
            ])
        if !sessionPresent || configuration.cleanStart {
            for subscription in subscriptions { _ = sendSubscribe(subscription) }
        }
        setState(.connected, event: .connected(endpoint: endpoint, sessionPresent: sessionPresent))
        let waiters = connectWaiters
        connectWaiters = []
        for waiter in waiters { waiter.resume(returning: .success(())) }
        releaseOutbox()
    }

    private func didDisconnect(rc: Int32) {
        activity += 1
        unregister()
        if case .disconnecting = phase {
            finishClose(error: nil)
            return
        }
        if rc == MOSQ_ERR_SUCCESS.rawValue && shutDown { return }
        let connecting: Bool
        if case .connecting = phase { connecting = true } else { connecting = false }
        let error =
            pendingError
            ?? (rc == MOSQ_ERR_SUCCESS.rawValue
                ? MQTTError(.connectionLost, "the broker closed the connection")
                : MQTTError.mosquitto(
                    rc, "connection to \(configuration.endpoints[endpointIndex % configuration.endpoints.count])"))
        failed(error, duringConnect: connecting)
    }

    /// A connection attempt failed, or an established connection was lost.
    private func failed(_ error: MQTTError, duringConnect: Bool) {
        unregister()
        pendingError = nil
        failSubscribeWaiters(error)
        if shutDown { return }
        if duringConnect { endpointIndex = (endpointIndex + 1) % configuration.endpoints.count }
        if initialConnect {
            failuresInRound += 1
            if failuresInRound < configuration.endpoints.count {
                logger.debug("MQTT connect failed, trying the next broker", metadata: ["error": "\(error)"])
                attempt()
                return
            }
            initialConnect = false
            phase = .idle
            setState(.idle, event: .disconnected(error: error))
            let waiters = connectWaiters
            connectWaiters = []
            for waiter in waiters { waiter.resume(returning: .failure(error)) }
            failInflight(error)
            return
        }
        guard configuration.reconnect.enabled else {
            phase = .idle
            logger.info("MQTT connection lost", metadata: ["client": "\(configuration.clientID)", "error": "\(error)"])
            setState(.idle, event: .disconnected(error: error))
            failInflight(error)
            return
        }
        let delay = configuration.reconnect.delay(attempt: retry, random: Double.random(in: 0..<1))
        retry += 1
        phase = .waiting(until: clock.now + delay)
        logger.debug(
            "MQTT connection lost, reconnecting",
            metadata: ["client": "\(configuration.clientID)", "error": "\(error)", "delay": "\(delay)"])
        setState(.reconnecting, event: .disconnected(error: error))
        setState(.reconnecting, event: .reconnecting(attempt: retry, delay: delay))
    }

    private func failSubscribeWaiters(_ error: MQTTError) {
        let groups = pendingSubscribes
        pendingSubscribes = [:]
        for (_, (group, _, _)) in groups { group.fail(error) }
        let waiters = unsubackWaiters
        unsubackWaiters = [:]
        for (_, waiter) in waiters { waiter.resume(returning: .failure(error)) }
    }

    private func failInflight(_ error: MQTTError) {
        // The messages stay in libmosquitto's session and are sent again if the client connects
        // again (so they still count as in flight); their waiters learn that delivery is not known.
        for (mid, completion) in inflight {
            completion.complete(.failure(error))
            inflight[mid] = PublishCompletion.none
        }
        while let publish = outbox.popFirst() { publish.complete(.failure(error)) }
        completeFlushWaiters(error: error)
        for (_, waiter) in requests { waiter.resume(returning: .failure(error)) }
        requests = [:]
    }

    func disconnect(_ continuation: CheckedContinuation<Void, Never>) {
        switch phase {
        case .connected, .connecting:
            disconnectWaiters.append(continuation)
            phase = .disconnecting(deadline: clock.now + .seconds(5))
            setState(.disconnecting)
            let rc = mosquitto_disconnect_v5(mosq, 0, nil)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                forceClose()
            } else {
                sync()
            }
        case .disconnecting:
            disconnectWaiters.append(continuation)
        case .idle, .waiting, .closed:
            disconnectWaiters.append(continuation)
            finishClose(error: nil)
        }
    }

    private func finishClose(error: MQTTError?) {
        unregister()
        phase = .idle
        initialConnect = false
        let closed = MQTTError(.closed, "the client disconnected")
        let waiters = connectWaiters
        connectWaiters = []
        for waiter in waiters { waiter.resume(returning: .failure(closed)) }
        failInflight(closed)
        setState(.idle, event: .disconnected(error: error))
        let done = disconnectWaiters
        disconnectWaiters = []
        for waiter in done { waiter.resume() }
    }

    /// Ends an established connection at once without an MQTT DISCONNECT (as a device that loses
    /// power or its network): the broker sees the TCP connection end. The client reconnects as
    /// after any lost connection, after `delay` when it is given.
    func drop(reconnectAfter delay: Duration?) {
        guard case .connected = phase else { return }
        let endpoint = configuration.endpoints[endpointIndex % configuration.endpoints.count]
        pendingError = MQTTError(.connectionLost, "the connection to \(endpoint) was dropped on purpose")
        forceClose()
        if let delay, case .waiting = phase {
            phase = .waiting(until: clock.now + delay)
        }
    }

    /// Ends the connection at once: the socket is shut down and libmosquitto sees it closed.
    private func forceClose() {
        defer { inbox.wake() }
        parked = false
        let fd = mosquitto_socket(mosq)
        if fd >= 0 {
            shutdown(fd, Int32(SHUT_RDWR))
            _ = mosquitto_loop_read(mosq, 1)
        }
        if mosquitto_socket(mosq) >= 0 || isDisconnectingOrConnecting {
            // libmosquitto did not report the close (no socket activity); finish by hand.
            didDisconnect(rc: MOSQ_ERR_CONN_LOST.rawValue)
        }
    }

    private var hasLiveSocket: Bool {
        switch phase {
        case .connecting, .connected, .disconnecting: return true
        case .idle, .waiting, .closed: return false
        }
    }

    private var isDisconnectingOrConnecting: Bool {
        switch phase {
        case .disconnecting, .connecting: return true
        default: return false
        }
    }

    /// Closes everything at loop shutdown or when the client goes away; no callbacks after it.
    func shutdownOnLoop() {
        guard !shutDown else { return }
        inbox.wake()
        shutDown = true
        let closed = MQTTError(.closed, "the client was shut down")
        if mosquitto_socket(mosq) >= 0 {
            unregister()
            _ = mosquitto_disconnect_v5(mosq, 0, nil)
            _ = mosquitto_loop_write(mosq, 1)
            let fd = mosquitto_socket(mosq)
            if fd >= 0 {
                shutdown(fd, Int32(SHUT_RDWR))
                _ = mosquitto_loop_read(mosq, 1)
            }
        }
        unregister()
        phase = .closed
        let waiters = connectWaiters
        connectWaiters = []
        for waiter in waiters { waiter.resume(returning: .failure(closed)) }
        failSubscribeWaiters(closed)
        failInflight(closed)
        let done = disconnectWaiters
        disconnectWaiters = []
        for waiter in done { waiter.resume() }
        let observers = shared.withLock { shared in
            shared.state = .closed
            let all = Array(shared.observers.values)
            shared.observers = [:]
            return all
        }
        for observer in observers {
            observer.yield(.disconnected(error: nil))
            observer.finish()
        }
        inbox.finish()
    }

    // MARK: socket events

    func handle(events: UInt32) {
        let hangup = events & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let paused = inbox.isPaused
        if paused && hangup {
            // Reading waits for the consumer; a hang-up is handled once it has made room (until
            // then the descriptor is out of the epoll set, so the loop does not spin on it).
            unregister()
            parked = true
            return
        }
        var drained = true
        if !paused && events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            drained = readAvailable()
        }
        if events & EPOLLOUT.rawValue != 0, mosquitto_socket(mosq) >= 0 {
            let rc = mosquitto_loop_write(mosq, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue { lostIfStillOpen(rc) }
        }
        let fd = mosquitto_socket(mosq)
        if hangup && drained && fd >= 0 {
            // libmosquitto did not notice (a refused TLS connect looks like success to it).
            var code: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
            let endpoint = configuration.endpoints[endpointIndex % configuration.endpoints.count]
            if pendingError == nil {
                let connecting = isDisconnectingOrConnecting
                let reason = code == 0 ? "closed before the MQTT connection was made" : String(cString: strerror(code))
                pendingError =
                    connecting || [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT].contains(code)
                    ? MQTTError(.unreachable, "connecting to \(endpoint): \(reason)")
                    : MQTTError(.connectionLost, "connection to \(endpoint): closed by the peer")
            }
            forceClose()
        }
        sync()
    }

    /// Reads while packets come (at most 64 a turn); returns false when it stopped at that limit
    /// (more may be waiting), true when the socket had nothing more or failed.
    @discardableResult
    private func readAvailable() -> Bool {
        for _ in 0..<64 {
            guard mosquitto_socket(mosq) >= 0, !inbox.isPaused else { return true }
            let before = activity
            let rc = mosquitto_loop_read(mosq, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                lostIfStillOpen(rc)
                return true
            }
            if activity == before { return true }
        }
        return false
    }

    /// libmosquitto reports a failure of a read or write, normally through the disconnect
    /// callback; if it did not, the failure is handled here.
    private func lostIfStillOpen(_ rc: Int32) {
        if case .connected = phase {
            if mosquitto_socket(mosq) < 0 { didDisconnect(rc: rc) }
        } else if case .connecting = phase {
            if mosquitto_socket(mosq) < 0 { didDisconnect(rc: rc) }
        }
    }

    private func resumeReading() {
        guard !shutDown, inbox.resumeIfRoom() else { return }
        parked = false
        readAvailable()
        sync()
    }

    /// Brings the epoll registration in line with libmosquitto's socket and wishes.
    func sync() {
        inbox.wake()
        let fd = mosquitto_socket(mosq)
        // After a failure libmosquitto may keep a dead socket (a refused TLS connect) until the
        // next connect replaces it; it must stay out of the epoll set.
        if fd < 0 || parked || !hasLiveSocket {
            unregister()
            return
        }
        var events: UInt32 = 0
        if !inbox.isPaused { events |= EPOLLIN.rawValue }
        if mosquitto_want_write(mosq) { events |= EPOLLOUT.rawValue }
        if fd != registeredFD {
            loop.register(fd: fd, token: token, events: events, previousFD: registeredFD)
            registeredFD = fd
            registeredEvents = events
        } else if events != registeredEvents {
            loop.register(fd: fd, token: token, events: events, previousFD: fd)
            registeredEvents = events
        }
    }

    private func unregister() {
        if registeredFD >= 0 {
            loop.register(fd: registeredFD, token: token, events: nil, previousFD: -1)
            registeredFD = -1
            registeredEvents = 0
        }
    }

    func tick(now: ContinuousClock.Instant) {
        switch phase {
        case .connecting(let deadline):
            if now >= deadline {
                pendingError = MQTTError(.timeout, "no CONNACK within \(configuration.connectTimeout)")
                forceClose()
                return
            }
        case .disconnecting(let deadline):
            if now >= deadline { forceClose() }
            return
        case .waiting(let until):
            if now >= until { attempt() }
            return
        case .idle, .closed:
            return
        case .connected:
            break
        }
        if now - lastMisc >= .seconds(1) {
            lastMisc = now
            let rc = mosquitto_loop_misc(mosq)
            if rc != MOSQ_ERR_SUCCESS.rawValue && rc != MOSQ_ERR_NO_CONN.rawValue { lostIfStillOpen(rc) }
            sync()
        }
    }

    // MARK: publishing

    /// Takes a publish command; returns whether the outbox should be released.
    func enqueueOnLoop(_ publish: OutgoingPublish) -> Bool {
        if shutDown {
            publish.complete(.failure(MQTTError(.closed, "the client was shut down")))
            return false
        }
        outbox.append(publish)
        return true
    }

    /// Hands queued messages to libmosquitto while fewer than `releaseLimit` are in flight.
    func releaseOutbox() {
        guard case .connected = phase else {
            // QoS 0 cannot wait for a connection; QoS 1 and 2 wait in the outbox.
            if outbox.contains(where: { $0.qos == .atMostOnce }) {
                var kept = MQTTQueue<OutgoingPublish>()
                while let publish = outbox.popFirst() {
                    if publish.qos == .atMostOnce {
                        publish.complete(.failure(MQTTError(.notConnected, "QoS 0 publish while not connected")))
                    } else {
                        kept.append(publish)
                    }
                }
                outbox = kept
            }
            return
        }
        var sent = false
        while let head = outbox.first, head.qos == .atMostOnce || inflight.count < releaseLimit {
            _ = outbox.popFirst()
            send(head)
            sent = true
        }
        if sent { sync() }
        if outbox.isEmpty && inflight.isEmpty { completeFlushWaiters(error: nil) }
    }

    private func send(_ publish: OutgoingPublish) {
        var mid: Int32 = 0
        var properties: OpaquePointer? = nil
        if configuration.protocolVersion == .v5 && !publish.properties.isEmpty {
            Self.add(publish.properties, to: &properties)
        }
        let rc = publish.payload.withUnsafeBytes { bytes in
            mosquitto_publish_v5(
                mosq, &mid, publish.topic, Int32(bytes.count), bytes.baseAddress, Int32(publish.qos.rawValue),
                publish.retain, properties)
        }
        if properties != nil { mosquitto_property_free_all(&properties) }
        let queued =
            rc == MOSQ_ERR_SUCCESS.rawValue
            || (publish.qos != .atMostOnce && mid != 0
                && [MOSQ_ERR_NO_CONN.rawValue, MOSQ_ERR_CONN_LOST.rawValue, MOSQ_ERR_ERRNO.rawValue].contains(rc))
        guard queued else {
            publish.complete(.failure(MQTTError.mosquitto(rc, "publishing on '\(publish.topic)'")))
            return
        }
        if publish.qos == .atMostOnce {
            publish.complete(.success(()))
        } else {
            inflight[mid] = publish.completion
        }
    }

    private static func add(_ properties: MQTTProperties, to list: inout OpaquePointer?) {
        if let topic = properties.responseTopic {
            _ = mosquitto_property_add_string(&list, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), topic)
        }
        if let data = properties.correlationData {
            _ = data.withUnsafeBytes { bytes in
                mosquitto_property_add_binary(
                    &list, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), bytes.baseAddress, UInt16(bytes.count))
            }
        }
        if let type = properties.contentType {
            _ = mosquitto_property_add_string(&list, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), type)
        }
        if let expiry = properties.messageExpiryInterval {
            _ = mosquitto_property_add_int32(&list, Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue), expiry)
        }
        for property in properties.userProperties {
            _ = mosquitto_property_add_string_pair(
                &list, Int32(MQTT_PROP_USER_PROPERTY.rawValue), property.name, property.value)
        }
    }

    private func didPublish(mid: Int32, reason: Int) {
        activity += 1
        guard let completion = inflight.removeValue(forKey: mid) else { return }
        let result: Result<Void, MQTTError> =
            reason < 0x80
            ? .success(()) : .failure(MQTTError.reason(reason, "the broker refused a publish"))
        completion.complete(result)
        if !outbox.isEmpty {
            releaseOutbox()
        } else if inflight.isEmpty {
            completeFlushWaiters(error: nil)
        }
    }

    func flush(_ continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) -> UInt64? {
        if outbox.isEmpty && inflight.isEmpty {
            continuation.resume(returning: .success(()))
            return nil
        }
        nextWaiter += 1
        flushWaiters[nextWaiter] = continuation
        return nextWaiter
    }

    func cancelFlush(_ id: UInt64, error: MQTTError) {
        flushWaiters.removeValue(forKey: id)?.resume(returning: .failure(error))
    }

    private func completeFlushWaiters(error: MQTTError?) {
        guard !flushWaiters.isEmpty else { return }
        let waiters = flushWaiters
        flushWaiters = [:]
        for (_, waiter) in waiters { waiter.resume(returning: error.map { .failure($0) } ?? .success(())) }
    }

    /// Counts what waits: messages not yet handed to libmosquitto, and those in flight.
    var pendingCount: (queued: Int, inflight: Int) { (outbox.count, inflight.count) }

    // MARK: receiving

    private func didReceive(_ message: mosquitto_message, properties: OpaquePointer?) {
        activity += 1
        let topic = String(cString: message.topic)
        let payload: [UInt8]
        if message.payloadlen > 0, let bytes = message.payload {
            payload = Array(UnsafeRawBufferPointer(start: bytes, count: Int(message.payloadlen)))
        } else {
            payload = []
        }
        let parsed = properties.map(Self.read) ?? .none
        let received = MQTTMessage(
            topic: topic, payload: payload, qos: MQTTQoS(rawValue: Int(message.qos)) ?? .atMostOnce,
            retain: message.retain, properties: parsed)
        if let correlation = parsed.correlationData, !requests.isEmpty,
            topic == responseTopic, let waiter = requests.removeValue(forKey: correlation)
        {
            waiter.resume(returning: .success(received))
            return
        }
        if !inbox.push(received) {
            logger.warning(
                "MQTT receive buffer full, message dropped",
                metadata: ["client": "\(configuration.clientID)", "topic": "\(topic)"])
        }
    }

    private static func read(_ list: OpaquePointer) -> MQTTProperties {
        var result = MQTTProperties()
        var current: OpaquePointer? = list
        while let property = current {
            let identifier = mosquitto_property_identifier(property)
            switch identifier {
            case Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), Int32(MQTT_PROP_CONTENT_TYPE.rawValue):
                var value: UnsafeMutablePointer<CChar>? = nil
                if mosquitto_property_read_string(property, identifier, &value, false) != nil, let value {
                    let text = String(cString: value)
                    if identifier == Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue) {
                        result.responseTopic = text
                    } else {
                        result.contentType = text
                    }
                    free(value)
                }
            case Int32(MQTT_PROP_CORRELATION_DATA.rawValue):
                var value: UnsafeMutableRawPointer? = nil
                var length: UInt16 = 0
                if mosquitto_property_read_binary(property, identifier, &value, &length, false) != nil {
                    result.correlationData =
                        value.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(length))) } ?? []
                    free(value)
                }
            case Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue):
                var value: UInt32 = 0
                if mosquitto_property_read_int32(property, identifier, &value, false) != nil {
                    result.messageExpiryInterval = value
                }
            case Int32(MQTT_PROP_USER_PROPERTY.rawValue):
                var name: UnsafeMutablePointer<CChar>? = nil
                var value: UnsafeMutablePointer<CChar>? = nil
                if mosquitto_property_read_string_pair(property, identifier, &name, &value, false) != nil {
                    result.userProperties.append(
                        MQTTUserProperty(
                            name.map { String(cString: $0) } ?? "", value.map { String(cString: $0) } ?? ""))
                    free(name)
                    free(value)
                }
            default:
                break
            }
            current = mosquitto_property_next(property)
        }
        return result
    }

    // MARK: subscribing

    func subscribe(
        _ wanted: [MQTTSubscription], _ continuation: CheckedContinuation<Result<[Int], MQTTError>, Never>
    ) {
        guard case .connected = phase else {
            continuation.resume(returning: .failure(MQTTError(.notConnected, "subscribe while not connected")))
            return
        }
        // One SUBSCRIBE per filter; the answers are gathered in order.
        let group = SubscribeGroup(count: wanted.count) { result in continuation.resume(returning: result) }
        for (index, subscription) in wanted.enumerated() {
            switch sendSubscribe(subscription) {
            case .failure(let error):
                group.fail(error)
                return
            case .success(let mid):
                pendingSubscribes[mid] = (group, index, subscription)
            }
        }
    }

    private var pendingSubscribes: [Int32: (SubscribeGroup, Int, MQTTSubscription)] = [:]

    private func sendSubscribe(_ subscription: MQTTSubscription) -> Result<Int32, MQTTError> {
        var mid: Int32 = 0
        var options: Int32 = 0
        if subscription.noLocal && configuration.protocolVersion == .v5 {
            options |= Int32(MQTT_SUB_OPT_NO_LOCAL.rawValue)
        }
        let rc = mosquitto_subscribe_v5(mosq, &mid, subscription.filter, Int32(subscription.qos.rawValue), options, nil)
        sync()
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            return .failure(MQTTError.mosquitto(rc, "subscribing to '\(subscription.filter)'"))
        }
        return .success(mid)
    }

    private func didSubscribe(mid: Int32, codes: [Int]) {
        activity += 1
        guard let (group, index, subscription) = pendingSubscribes.removeValue(forKey: mid) else { return }
        let code = codes.first ?? 0x80
        if code >= 0x80 {
            group.fail(MQTTError.reason(code, "the broker refused the subscription to '\(subscription.filter)'"))
        } else {
            if !subscriptions.contains(where: { $0.filter == subscription.filter }) {
                subscriptions.append(subscription)
            } else if let at = subscriptions.firstIndex(where: { $0.filter == subscription.filter }) {
                subscriptions[at] = subscription
            }
            group.granted(index: index, code: code)
        }
    }

    func unsubscribe(_ filters: [String], _ continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) {
        subscriptions.removeAll { filters.contains($0.filter) }
        guard case .connected = phase else {
            continuation.resume(returning: .failure(MQTTError(.notConnected, "unsubscribe while not connected")))
            return
        }
        var mid: Int32 = 0
        let rc = filters.withCStrings { pointers in
            mosquitto_unsubscribe_multiple(mosq, &mid, Int32(filters.count), pointers, nil)
        }
        sync()
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            continuation.resume(returning: .failure(MQTTError.mosquitto(rc, "unsubscribing")))
            return
        }
        unsubackWaiters[mid] = continuation
    }

    private func didUnsubscribe(mid: Int32) {
        activity += 1
        unsubackWaiters.removeValue(forKey: mid)?.resume(returning: .success(()))
    }

    // MARK: request / response

    var responseTopic: String { "\(configuration.responseTopicPrefix)/\(configuration.clientID)" }

    func addRequest(_ correlation: [UInt8], _ continuation: CheckedContinuation<Result<MQTTMessage, MQTTError>, Never>)
    {
        requests[correlation] = continuation
    }

    func cancelRequest(_ correlation: [UInt8], error: MQTTError) {
        requests.removeValue(forKey: correlation)?.resume(returning: .failure(error))
    }

    var hasResponseSubscription: Bool { subscriptions.contains { $0.filter == responseTopic } }
}

/// Gathers the SUBACKs of one `subscribe` call.
final class SubscribeGroup {
    private var codes: [Int]
    private var remaining: Int
    private var done = false
    private let finish: (Result<[Int], MQTTError>) -> Void

    init(count: Int, finish: @escaping (Result<[Int], MQTTError>) -> Void) {
        codes = [Int](repeating: 0x80, count: count)
        remaining = count
        self.finish = finish
        if count == 0 {
            done = true
            finish(.success([]))
        }
    }

    func granted(index: Int, code: Int) {
        guard !done else { return }
        codes[index] = code
        remaining -= 1
        if remaining == 0 {
            done = true
            finish(.success(codes))
        }
    }

    func fail(_ error: MQTTError) {
        guard !done else { return }
        done = true
        finish(.failure(error))
    }
}

extension Array where Element == String {
    /// Calls `body` with a C array of the strings (valid only during the call).
    fileprivate func withCStrings<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let duplicates = map { strdup($0) }
        defer { for pointer in duplicates { free(pointer) } }
        return duplicates.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
