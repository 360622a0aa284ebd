/// A broker address: a host name or IP address and a TCP port.
public struct MQTTEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// The host name or IP address.
    public var host: String
    /// The TCP port.
    public var port: Int

    /// Makes an endpoint.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`.
    public var description: String { "\(host):\(port)" }
}

/// The MQTT protocol version a client speaks.
public enum MQTTProtocolVersion: Hashable, Sendable {
    /// MQTT 3.1.1.
    case v311
    /// MQTT 5.
    case v5
}

/// TLS settings of a client.
public struct MQTTTLSOptions: Hashable, Sendable {
    /// The lowest TLS version accepted.
    public enum Version: String, Hashable, Sendable {
        /// TLS 1.2 or 1.3.
        case tls12 = "tlsv1.2"
        /// TLS 1.3 only.
        case tls13 = "tlsv1.3"
    }

    /// The PEM file of the certificate authorities that sign the broker's certificate.
    public var caFile: String?
    /// A directory of CA certificates (hashed names, as `openssl rehash` makes), instead of or with `caFile`.
    public var caPath: String?
    /// The client's certificate (PEM), for brokers that authenticate clients by certificate.
    public var certificateFile: String?
    /// The client certificate's private key (PEM, unencrypted).
    public var keyFile: String?
    /// The lowest TLS version accepted.
    public var minimumVersion: Version
    /// Whether the broker's certificate must name the host connected to. Only turn off for tests.
    public var verifyHostname: Bool
    /// OpenSSL cipher list for TLS 1.2, or nil for OpenSSL's default.
    public var ciphers: String?

    /// Makes TLS settings.
    public init(
        caFile: String? = nil, caPath: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
        minimumVersion: Version = .tls12, verifyHostname: Bool = true, ciphers: String? = nil
    ) {
        self.caFile = caFile
        self.caPath = caPath
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.minimumVersion = minimumVersion
        self.verifyHostname = verifyHostname
        self.ciphers = ciphers
    }
}

/// How a client reconnects after it lost its connection: exponential backoff between `minimum`
/// and `maximum`, each delay shortened by a random fraction of up to `jitter` (0...1) so that a
/// fleet that lost its broker at once does not come back at once.
public struct MQTTReconnectPolicy: Hashable, Sendable {
    /// Whether to reconnect at all.
    public var enabled: Bool
    /// The first delay.
    public var minimumDelay: Duration
    /// The longest delay.
    public var maximumDelay: Duration
    /// The fraction (0...1) of each delay that is random.
    public var jitter: Double

    /// Makes a policy.
    public init(
        enabled: Bool = true, minimumDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(30),
        jitter: Double = 0.5
    ) {
        self.enabled = enabled
        self.minimumDelay = minimumDelay
        self.maximumDelay = maximumDelay
        self.jitter = min(max(jitter, 0), 1)
    }

    /// Never reconnect.
    public static let never = MQTTReconnectPolicy(enabled: false)

    /// The delay before attempt `attempt` (0 for the first retry), with `random` in 0..<1.
    public func delay(attempt: Int, random: Double) -> Duration {
        let base = minimumDelay * Double(1 << UInt64(min(max(attempt, 0), 30)))
        let capped = min(base, maximumDelay)
        return capped * (1 - jitter * random)
    }
}

/// Everything an `MQTTClient` needs to know to connect.
public struct MQTTConfiguration: Hashable, Sendable {
    /// The brokers to connect to, in order: when one cannot be reached the client tries the next.
    public var endpoints: [MQTTEndpoint]
    /// The client id (for a device: its device id). Must be unique on the broker.
    public var clientID: String
    /// The protocol version.
    public var protocolVersion: MQTTProtocolVersion
    /// Whether the broker should discard any session it kept for this client id when it connects.
    /// Set it to false, with a `sessionExpiry`, for a durable subscriber.
    public var cleanStart: Bool
    /// MQTT 5: how long the broker keeps the session after a disconnect, seconds
    /// (`UInt32.max`: for ever). On 3.1.1 the broker's own setting applies.
    public var sessionExpiry: UInt32?
    /// Keepalive interval, seconds.
    public var keepAlive: Int
    /// The user name (for a device: its device id), if the broker wants one.
    public var username: String?
    /// The password.
    public var password: String?
    /// TLS settings, or nil for plain TCP.
    public var tls: MQTTTLSOptions?
    /// The most QoS 1 and 2 messages in flight (sent, not yet acknowledged) at once; more are
    /// queued in the client. 0 would mean no limit, which is pathologically slow in libmosquitto 2.0.
    public var maxInflight: Int
    /// How the client reconnects.
    public var reconnect: MQTTReconnectPolicy
    /// How long a connection attempt may take before it counts as failed.
    public var connectTimeout: Duration
    /// How many received messages the client holds for the consumer of `messages` before it stops
    /// reading the socket (the broker queues meanwhile); it reads again when the consumer has
    /// taken half. The read under way when the limit is reached may still bring up to
    /// `2 × maxInflight + 1024` more, which are kept, so the buffer never holds more than
    /// `receiveBufferCapacity + 2 × maxInflight + 1024`. A message past that would be dropped and
    /// counted in `droppedMessages` (and logged), never silently.
    public var receiveBufferCapacity: Int
    /// The topic prefix under which `request` listens for responses; the client id is appended.
    public var responseTopicPrefix: String
    /// Received messages whose topic starts with one of these go to the consumer before any other
    /// message already buffered (a node's council messages never wait behind a flood of readings
    /// in its buffer). Empty: strictly in order of arrival.
    public var priorityTopicPrefixes: [String] = []

    /// Makes a configuration with one broker.
    public init(
        host: String = "127.0.0.1", port: Int = 1883, clientID: String, protocolVersion: MQTTProtocolVersion = .v5,
        cleanStart: Bool = true, sessionExpiry: UInt32? = nil, keepAlive: Int = 30, username: String? = nil,
        password: String? = nil, tls: MQTTTLSOptions? = nil, maxInflight: Int = 500,
        reconnect: MQTTReconnectPolicy = MQTTReconnectPolicy(), connectTimeout: Duration = .seconds(10),
        receiveBufferCapacity: Int = 10_000, responseTopicPrefix: String = "medledger/v1/_responses"
    ) {
        self.init(
            endpoints: [MQTTEndpoint(host: host, port: port)], clientID: clientID, protocolVersion: protocolVersion,
            cleanStart: cleanStart, sessionExpiry: sessionExpiry, keepAlive: keepAlive, username: username,
            password: password, tls: tls, maxInflight: maxInflight, reconnect: reconnect,
            connectTimeout: connectTimeout, receiveBufferCapacity: receiveBufferCapacity,
            responseTopicPrefix: responseTopicPrefix)
    }

    /// Makes a configuration with a list of brokers to fail over between.
    public init(
        endpoints: [MQTTEndpoint], clientID: String, protocolVersion: MQTTProtocolVersion = .v5,
        cleanStart: Bool = true, sessionExpiry: UInt32? = nil, keepAlive: Int = 30, username: String? = nil,
        password: String? = nil, tls: MQTTTLSOptions? = nil, maxInflight: Int = 500,
        reconnect: MQTTReconnectPolicy = MQTTReconnectPolicy(), connectTimeout: Duration = .seconds(10),
        receiveBufferCapacity: Int = 10_000, responseTopicPrefix: String = "medledger/v1/_responses"
    ) {
        self.endpoints = endpoints
        self.clientID = clientID
        self.protocolVersion = protocolVersion
        self.cleanStart = cleanStart
        self.sessionExpiry = sessionExpiry
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.tls = tls
        self.maxInflight = maxInflight
        self.reconnect = reconnect
        self.connectTimeout = connectTimeout
        self.receiveBufferCapacity = receiveBufferCapacity
        self.responseTopicPrefix = responseTopicPrefix
    }

    /// The first endpoint's host.
    public var host: String { endpoints.first?.host ?? "" }
    /// The first endpoint's port.
    public var port: Int { endpoints.first?.port ?? 0 }

    /// Checks the values libmosquitto would refuse later, and names the first one that is wrong.
    public func validate() throws(MQTTError) {
        guard !endpoints.isEmpty else { throw MQTTError(.invalidArgument, "no broker endpoint is configured") }
        for endpoint in endpoints {
            guard !endpoint.host.isEmpty, (1...65535).contains(endpoint.port) else {
                throw MQTTError(.invalidArgument, "broker endpoint '\(endpoint)' is not a host and a port 1...65535")
            }
        }
        guard !clientID.isEmpty, clientID.utf8.count <= 65535 else {
            throw MQTTError(.invalidArgument, "the client id must not be empty")
        }
        guard (5...65535).contains(keepAlive) else {
            throw MQTTError(.invalidArgument, "keepAlive must be 5...65535 seconds, not \(keepAlive)")
        }
        guard (1...65535).contains(maxInflight) else {
            throw MQTTError(.invalidArgument, "maxInflight must be 1...65535, not \(maxInflight)")
        }
        guard receiveBufferCapacity >= 1 else {
            throw MQTTError(.invalidArgument, "receiveBufferCapacity must be at least 1")
        }
        guard reconnect.minimumDelay > .zero, reconnect.maximumDelay >= reconnect.minimumDelay else {
            throw MQTTError(.invalidArgument, "reconnect delays must be positive, minimum <= maximum")
        }
        if password != nil && username == nil {
            throw MQTTError(.invalidArgument, "a password needs a username")
        }
        if let tls {
            if (tls.certificateFile == nil) != (tls.keyFile == nil) {
                throw MQTTError(.invalidArgument, "a client certificate needs its key file, and a key its certificate")
            }
            if tls.caFile == nil && tls.caPath == nil {
                throw MQTTError(.invalidArgument, "TLS needs caFile or caPath to check the broker's certificate")
            }
        }
    }
}
