/// An MQTT quality of service.
public enum MQTTQoS: Int, Hashable, Sendable, Comparable, CaseIterable {
    /// At most once: no acknowledgement.
    case atMostOnce = 0
    /// At least once: the broker acknowledges with PUBACK; duplicates are possible.
    case atLeastOnce = 1
    /// Exactly once: the four-packet handshake.
    case exactlyOnce = 2

    /// Orders by level.
    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// An MQTT 5 user property: a name and a value, both UTF-8; names may repeat.
public struct MQTTUserProperty: Hashable, Sendable {
    /// The name.
    public var name: String
    /// The value.
    public var value: String

    /// Makes a user property.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// The MQTT 5 properties of a PUBLISH that MedLedger uses. All are ignored on MQTT 3.1.1.
public struct MQTTProperties: Hashable, Sendable {
    /// Where a responder publishes its answer (request/response).
    public var responseTopic: String?
    /// Opaque bytes a responder copies into its answer, so the requester can match it.
    public var correlationData: [UInt8]?
    /// User properties, in order.
    public var userProperties: [MQTTUserProperty]
    /// The payload's MIME type.
    public var contentType: String?
    /// Seconds after which the broker may discard the message if it is not delivered.
    public var messageExpiryInterval: UInt32?

    /// Makes a property set.
    public init(
        responseTopic: String? = nil, correlationData: [UInt8]? = nil, userProperties: [MQTTUserProperty] = [],
        contentType: String? = nil, messageExpiryInterval: UInt32? = nil
    ) {
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.userProperties = userProperties
        self.contentType = contentType
        self.messageExpiryInterval = messageExpiryInterval
    }

    /// No properties.
    public static let none = MQTTProperties()

    /// Whether no property is set.
    public var isEmpty: Bool {
        responseTopic == nil && correlationData == nil && userProperties.isEmpty && contentType == nil
            && messageExpiryInterval == nil
    }
}

/// A message received on a subscription.
///
/// A QoS 1 message has already been acknowledged to the broker when it is handed over
/// (libmosquitto sends PUBACK before the client sees the message): it is safe only once the
/// consumer has persisted it. A consumer that must not lose one keeps a durable session and
/// de-duplicates what the broker sends again after a reconnect.
public struct MQTTMessage: Hashable, Sendable {
    /// The topic it was published on.
    public var topic: String
    /// The payload.
    public var payload: [UInt8]
    /// The quality of service it was delivered with.
    public var qos: MQTTQoS
    /// Whether it was a retained message.
    public var retain: Bool
    /// Its MQTT 5 properties (empty on MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Makes a message.
    public init(
        topic: String, payload: [UInt8], qos: MQTTQoS = .atMostOnce, retain: Bool = false,
        properties: MQTTProperties = .none
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// One subscription: a topic filter and the most QoS wanted on it.
public struct MQTTSubscription: Hashable, Sendable {
    /// The topic filter (`+` and `#` wildcards).
    public var filter: String
    /// The highest QoS to receive with.
    public var qos: MQTTQoS
    /// MQTT 5: do not receive what this client itself publishes.
    public var noLocal: Bool

    /// Makes a subscription.
    public init(_ filter: String, qos: MQTTQoS = .atLeastOnce, noLocal: Bool = false) {
        self.filter = filter
        self.qos = qos
        self.noLocal = noLocal
    }
}
