public import Logging
import Synchronization

/// Many MQTT connections driven by a few threads: a device fleet of thousands on two cores.
/// Each connection is an ordinary `MQTTClient` (its own client id, credentials, session,
/// publishes with acknowledgements, and `messages`), placed on the fleet's loops in turn.
public final class MQTTFleet: Sendable {
    /// The loops (threads) the fleet's clients run on.
    public let loops: [MQTTEventLoop]
    private let next = Atomic<Int>(0)
    private let logger: Logger

    /// Starts `threads` loops.
    /// - Parameters:
    ///   - threads: how many threads drive the fleet's connections.
    ///   - logger: handed to every client.
    /// - Throws: `MQTTError` when a loop cannot start.
    public init(threads: Int = 1, logger: Logger) throws(MQTTError) {
        var loops: [MQTTEventLoop] = []
        for index in 0..<max(1, threads) { loops.append(try MQTTEventLoop(name: "mqtt-fleet-\(index)")) }
        self.loops = loops
        self.logger = logger
    }

    /// Makes a client on the next loop; it does not connect yet.
    /// - Throws: `MQTTError` for an invalid configuration.
    public func makeClient(configuration: MQTTConfiguration) throws(MQTTError) -> MQTTClient {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count
        return try MQTTClient(configuration: configuration, eventLoop: loops[index], logger: logger)
    }

    /// The number of clients on the fleet's loops.
    public var connectionCount: Int { loops.reduce(0) { $0 + $1.connectionCount } }

    /// Closes every connection and ends the loops.
    public func shutdown() async {
        for loop in loops { await loop.shutdown() }
    }
}
