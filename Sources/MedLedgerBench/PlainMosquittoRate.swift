internal import CMosquitto
internal import Dispatch
internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// QoS 1 (or 0) messages per second through a broker with plain libmosquitto and nothing of
/// MedLedger's: one subscriber and one publisher, each with libmosquitto's own network thread;
/// the publisher hands every message to `mosquitto_publish` as fast as it takes them, and the
/// clock runs from the first publish to the last message received.
public enum PlainMosquittoRate {
    /// What went wrong.
    public struct Failure: Error, CustomStringConvertible {
        /// What, in words.
        public let description: String
    }

    /// Measures it.
    /// - Parameters:
    ///   - host: the broker's host.
    ///   - port: its port.
    ///   - count: how many messages.
    ///   - size: the payload's size, bytes.
    ///   - qos: 0 or 1.
    ///   - inflight: the clients' in-flight window (100–1000; 0 is pathologically slow).
    /// - Returns: messages received per second.
    /// - Throws: `Failure` when a client cannot connect or subscribe, a publish fails, or messages
    ///   stop arriving before all of them did (QoS 1).
    public static func measure(
        host: String, port: Int, count: Int = 100_000, size: Int = 200, qos: Int32 = 1, inflight: Int32 = 500
    ) throws(Failure) -> Double {
        mosquitto_lib_init()
        let context = Context()
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let opaque = Unmanaged.passRetained(context).toOpaque()
        defer { Unmanaged<Context>.fromOpaque(opaque).release() }
        guard let subscriber = mosquitto_new("bench-sub-\(tag)", true, opaque),
            let publisher = mosquitto_new("bench-pub-\(tag)", true, opaque)
        else { throw Failure(description: "mosquitto_new failed") }
        defer {
            mosquitto_disconnect(publisher)
            mosquitto_disconnect(subscriber)
            mosquitto_loop_stop(publisher, false)
            mosquitto_loop_stop(subscriber, false)
            mosquitto_destroy(publisher)
            mosquitto_destroy(subscriber)
        }
        for client in [subscriber, publisher] {
            mosquitto_int_option(client, MOSQ_OPT_PROTOCOL_VERSION, Int32(MQTT_PROTOCOL_V5))
            mosquitto_int_option(client, MOSQ_OPT_TCP_NODELAY, 1)
            mosquitto_max_inflight_messages_set(client, UInt32(inflight))
            mosquitto_int_option(client, MOSQ_OPT_SEND_MAXIMUM, inflight)
            mosquitto_int_option(client, MOSQ_OPT_RECEIVE_MAXIMUM, inflight)
            mosquitto_connect_callback_set(client) { _, object, code in
                if code == 0 {
                    Unmanaged<Context>.fromOpaque(object!).takeUnretainedValue().connected.add(1, ordering: .relaxed)
                }
            }
        }
        mosquitto_subscribe_callback_set(subscriber) { _, object, _, _, _ in
            Unmanaged<Context>.fromOpaque(object!).takeUnretainedValue().subscribed.store(true, ordering: .relaxed)
        }
        mosquitto_message_callback_set(subscriber) { _, object, _ in
            let context = Unmanaged<Context>.fromOpaque(object!).takeUnretainedValue()
            context.received.add(1, ordering: .relaxed)
            context.lastReceive.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
        }
        guard mosquitto_connect(subscriber, host, Int32(port), 60) == MOSQ_ERR_SUCCESS.rawValue,
            mosquitto_connect(publisher, host, Int32(port), 60) == MOSQ_ERR_SUCCESS.rawValue
        else { throw Failure(description: "cannot connect to the broker at \(host):\(port)") }
        mosquitto_loop_start(subscriber)
        mosquitto_loop_start(publisher)
        try wait("CONNACK") { context.connected.load(ordering: .relaxed) >= 2 }
        let filter = "bench/\(tag)/#"
        mosquitto_subscribe(subscriber, nil, filter, qos)
        try wait("SUBACK") { context.subscribed.load(ordering: .relaxed) }

        var payload = [UInt8](repeating: 0, count: max(8, size))
        let topic = "bench/\(tag)/x"
        let start = DispatchTime.now().uptimeNanoseconds
        for index in 0..<count {
            withUnsafeBytes(of: UInt64(index)) { bytes in
                for offset in 0..<8 { payload[offset] = bytes[offset] }
            }
            let code = mosquitto_publish(publisher, nil, topic, Int32(payload.count), payload, qos, false)
            guard code == MOSQ_ERR_SUCCESS.rawValue else {
                throw Failure(description: "publish failed: \(String(cString: mosquitto_strerror(code)))")
            }
        }
        // Every message, or two seconds without one.
        var seen = 0
        var idleSince = DispatchTime.now().uptimeNanoseconds
        while context.received.load(ordering: .relaxed) < count {
            let current = context.received.load(ordering: .relaxed)
            if current != seen {
                seen = current
                idleSince = DispatchTime.now().uptimeNanoseconds
            } else if DispatchTime.now().uptimeNanoseconds - idleSince > 2_000_000_000 {
                break
            }
            usleep(500)
        }
        let got = context.received.load(ordering: .relaxed)
        guard qos == 0 || got == count else {
            throw Failure(description: "only \(got) of \(count) QoS 1 messages arrived")
        }
        let seconds = Double(context.lastReceive.load(ordering: .relaxed) &- start) / 1e9
        return seconds > 0 ? Double(got) / seconds : 0
    }

    private static func wait(_ what: String, until condition: () -> Bool) throws(Failure) {
        let deadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
        while !condition() {
            guard DispatchTime.now().uptimeNanoseconds < deadline else {
                throw Failure(description: "no \(what) from the broker within 10 s")
            }
            usleep(1000)
        }
    }

    private final class Context: Sendable {
        let connected = Atomic<Int>(0)
        let subscribed = Atomic<Bool>(false)
        let received = Atomic<Int>(0)
        let lastReceive = Atomic<UInt64>(0)
    }
}
