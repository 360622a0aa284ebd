import Crypto
import Foundation

/// How devices and nodes prove who they are to a hospital's broker.
public enum BrokerAuthentication: String, Hashable, Sendable, CaseIterable {
    /// Per-identity client certificates signed by the hospital's CA; the certificate's common
    /// name is the MQTT username (`use_identity_as_username`).
    case certificate
    /// A username and password from a Mosquitto password file, over TLS.
    case password
}

/// A hospital's broker: a TLS listener, authentication, the channel's ACL, persistence.
public struct HospitalBrokerOptions: Hashable, Sendable {
    /// The TLS port.
    public var port: Int
    /// The address the TLS listener binds to.
    public var bindAddress: String
    /// The CA certificate that signed the broker's and the clients' certificates.
    public var caFile: String
    /// The broker's certificate.
    public var certificateFile: String
    /// The broker certificate's key.
    public var keyFile: String
    /// How clients authenticate.
    public var authentication: BrokerAuthentication
    /// The password file (for `.password`).
    public var passwordFile: String?
    /// The ACL file.
    public var aclFile: String
    /// Where the broker keeps its persistence (a directory, ending in `/`).
    public var persistenceDirectory: String
    /// The lowest TLS version the listener accepts (`tlsv1.2` or `tlsv1.3`).
    public var minimumTLSVersion: String
    /// The most QoS 1 messages queued per client above those in flight.
    public var maxQueuedMessages: Int
    /// The packet size and queued bytes per client.
    public var limits: BrokerLimits
    /// A directory of more configuration (bridges), or nil.
    public var includeDirectory: String?

    /// Makes options.
    public init(
        port: Int = 8883, bindAddress: String = "0.0.0.0", caFile: String, certificateFile: String, keyFile: String,
        authentication: BrokerAuthentication = .certificate, passwordFile: String? = nil, aclFile: String,
        persistenceDirectory: String = "/var/lib/mosquitto/", minimumTLSVersion: String = "tlsv1.2",
        maxQueuedMessages: Int = 1_000_000, limits: BrokerLimits = .standard, includeDirectory: String? = nil
    ) {
        self.port = port
        self.bindAddress = bindAddress
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.authentication = authentication
        self.passwordFile = passwordFile
        self.aclFile = aclFile
        self.persistenceDirectory = persistenceDirectory
        self.minimumTLSVersion = minimumTLSVersion
        self.maxQueuedMessages = maxQueuedMessages
        self.limits = limits
        self.includeDirectory = includeDirectory
    }
}

/// One hospital's bridge to another hospital's broker.
public struct BridgeOptions: Hashable, Sendable {
    /// The connection's name (unique on the broker), e.g. `to-hospital-b`.
    public var name: String
    /// The remote broker's addresses, `host:port`, tried in turn.
    public var addresses: [String]
    /// The channel whose topics are carried.
    public var channel: String
    /// The client id the bridge uses on the remote broker (its identity there).
    public var remoteClientID: String
    /// The CA that signed the remote broker's certificate.
    public var caFile: String
    /// The bridge's client certificate (its common name is its identity at the remote broker).
    public var certificateFile: String?
    /// The bridge certificate's key.
    public var keyFile: String?
    /// The username at the remote broker, for password authentication.
    public var remoteUsername: String?
    /// The password at the remote broker.
    public var remotePassword: String?
    /// Whether readings are carried too (when managers of the other hospital take this one's
    /// devices' readings).
    public var carryReadings: Bool
    /// The lowest TLS version (`tlsv1.2` or `tlsv1.3`).
    public var tlsVersion: String
    /// Mosquitto's `restart_timeout`: seconds before reconnecting, `base cap` for a backoff.
    public var restartTimeout: String

    /// Makes options.
    public init(
        name: String, addresses: [String], channel: String, remoteClientID: String, caFile: String,
        certificateFile: String? = nil, keyFile: String? = nil, remoteUsername: String? = nil,
        remotePassword: String? = nil, carryReadings: Bool = false, tlsVersion: String = "tlsv1.2",
        restartTimeout: String = "1 30"
    ) {
        self.restartTimeout = restartTimeout
        self.name = name
        self.addresses = addresses
        self.channel = channel
        self.remoteClientID = remoteClientID
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.remoteUsername = remoteUsername
        self.remotePassword = remotePassword
        self.carryReadings = carryReadings
        self.tlsVersion = tlsVersion
    }
}

/// Who may use a channel's topics on a hospital's broker, by MQTT username.
public struct ChannelACL: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// Device ids: each may publish only its readings and read only its receipts.
    public var devices: [String]
    /// Manager ids.
    public var managers: [String]
    /// Validator (council member) ids.
    public var validators: [String]
    /// Registrar ids.
    public var registrars: [String]
    /// Registered professionals (researchers and clinicians): each may publish its own
    /// transactions and fetch requests to managers, and read only its own receipts and responses.
    public var professionals: [String]
    /// Identities of other hospitals' bridges connecting here.
    public var bridges: [String]
    /// Whether the bridges carry readings.
    public var bridgesCarryReadings: Bool

    /// Makes an ACL.
    public init(
        channel: String, devices: [String] = [], managers: [String] = [], validators: [String] = [],
        registrars: [String] = [], professionals: [String] = [], bridges: [String] = [],
        bridgesCarryReadings: Bool = false
    ) {
        self.channel = channel
        self.devices = devices
        self.managers = managers
        self.validators = validators
        self.registrars = registrars
        self.professionals = professionals
        self.bridges = bridges
        self.bridgesCarryReadings = bridgesCarryReadings
    }

    /// The Mosquitto `acl_file` text: one `user` block per identity, nothing for anyone else.
    public func render() -> String {
        let base = "medledger/v1/\(channel)"
        var lines = [
            "# MedLedger channel \(channel): who may use which topics. Anyone not named here gets nothing.",
            "# Written by `medledger broker config`; regenerate it when devices are registered.",
            "",
        ]
        func block(_ user: String, _ comment: String, _ rules: [String]) {
            lines.append("# \(comment)")
            lines.append("user \(user)")
            lines += rules.map { "topic \($0)" }
            lines.append("")
        }
        for manager in managers {
            block(
                manager, "manager",
                [
                    "read \(base)/readings/#", "write \(base)/receipts/#", "read \(base)/tx/#",
                    "write \(base)/tx/\(manager)", "write \(base)/tx-receipts/#", "read \(base)/fetch/\(manager)",
                    "read \(base)/access-status/\(manager)",
                    "readwrite \(base)/council/#", "read \(base)/commits",
                    "readwrite \(base)/sync/#", "readwrite medledger/v1/_responses/\(manager)",
                    "write medledger/v1/_responses/#",
                ])
        }
        for validator in validators {
            block(
                validator, "validator (council member)",
                [
                    "readwrite \(base)/council/#", "readwrite \(base)/commits", "read \(base)/tx/#",
                    "readwrite \(base)/sync/#", "readwrite medledger/v1/_responses/\(validator)",
                    "write medledger/v1/_responses/#",
                ])
        }
        for registrar in registrars {
            block(
                registrar, "registrar",
                ["write \(base)/tx/\(registrar)", "read \(base)/tx-receipts/\(registrar)"])
        }
        for professional in professionals {
            block(
                professional, "researcher or clinician",
                [
                    "write \(base)/tx/\(professional)", "read \(base)/tx-receipts/\(professional)",
                    "write \(base)/fetch/+", "write \(base)/access-status/+",
                    "read medledger/v1/_responses/\(professional)/#",
                ])
        }
        for bridge in bridges {
            var rules = [
                "readwrite \(base)/tx/#", "readwrite \(base)/council/#", "readwrite \(base)/commits",
                "read \(base)/receipts/#", "readwrite \(base)/tx-receipts/#", "readwrite \(base)/sync/#",
                "readwrite \(base)/fetch/#", "readwrite \(base)/access-status/#",
                "readwrite medledger/v1/_responses/#",
            ]
            if bridgesCarryReadings { rules.append("readwrite \(base)/readings/#") }
            block(bridge, "another hospital's bridge", rules)
        }
        for device in devices {
            block(device, "device", ["write \(base)/readings/\(device)", "read \(base)/receipts/\(device)"])
        }
        return lines.joined(separator: "\n")
    }
}

/// What a broker bounds for every client, so that no client can make it hold without limit: the
/// largest packet it takes (a larger one ends the sender's connection) and the bytes it queues
/// for a client that does not read (beyond them, QoS 1 messages to that client are dropped; a
/// node that falls so far behind catches up from its peers).
public struct BrokerLimits: Hashable, Sendable {
    /// `max_packet_size`, bytes.
    public var maxPacketBytes: Int
    /// `max_queued_bytes`, bytes per client.
    public var maxQueuedBytes: Int

    /// Limits as given.
    public init(maxPacketBytes: Int, maxQueuedBytes: Int) {
        self.maxPacketBytes = maxPacketBytes
        self.maxQueuedBytes = maxQueuedBytes
    }

    /// The limits for a channel whose largest message is `largestMessage` bytes (a sync response
    /// of its largest blocks: `SyncResponse.maxEncodedBytes`): packets up to that and 64 KiB more
    /// (topic and properties), rounded up to a MiB; queues of 64 such messages, 256 MiB at least.
    public init(largestMessage: Int) {
        let mib = 1 << 20
        let packet = (max(largestMessage, 0) + (64 << 10) + mib - 1) / mib * mib
        self.init(maxPacketBytes: packet, maxQueuedBytes: max(256 * mib, packet * 64))
    }

    /// The limits for the default blocks (1 MiB): 9 MiB packets, 576 MiB queued per client.
    public static let standard = BrokerLimits(largestMessage: 4 * ((1 << 20) * 2 + (64 << 10)))
}

/// The Mosquitto configurations MedLedger deploys.
public enum BrokerConfigs {
    /// The local development broker: loopback, anonymous, queues large enough that QoS 1 is not
    /// dropped in normal use (Mosquitto's default of 1000 queued messages per client drops them).
    public static func dev(
        port: Int = 1883, maxQueuedMessages: Int = 1_000_000, limits: BrokerLimits = .standard
    ) -> String {
        """
        # MedLedger development broker: loopback only, anonymous, for a local devnet.
        # Not for a hospital: anyone on this machine may publish and subscribe to anything.
        per_listener_settings false
        listener \(port) 127.0.0.1
        allow_anonymous true
        # Mosquitto's default (1000 queued messages per client) silently drops QoS 1 messages to a
        # slow or offline subscriber; bytes queued per client and the packet size are bounded by
        # what the channel's largest message needs (a sync response of its largest blocks).
        max_queued_messages \(maxQueuedMessages)
        max_queued_bytes \(limits.maxQueuedBytes)
        max_packet_size \(limits.maxPacketBytes)
        max_inflight_messages 1000
        persistent_client_expiration 1d
        set_tcp_nodelay true
        max_connections -1
        persistence false
        log_type error
        log_type warning
        log_type notice
        connection_messages false

        """
    }

    /// A hospital's broker: TLS only, authenticated clients, the channel's ACL, persistence on.
    public static func hospital(_ options: HospitalBrokerOptions) -> String {
        var text = """
            # MedLedger hospital broker: TLS, authenticated devices and nodes, the channel's ACL.
            per_listener_settings false
            allow_anonymous false
            acl_file \(options.aclFile)

            listener \(options.port) \(options.bindAddress)
            cafile \(options.caFile)
            certfile \(options.certificateFile)
            keyfile \(options.keyFile)
            tls_version \(options.minimumTLSVersion)

            """
        switch options.authentication {
        case .certificate:
            text += """
                # Every client presents a certificate signed by the CA; its common name is its MQTT
                # username (a device id or node id), which the ACL names.
                require_certificate true
                use_identity_as_username true

                """
        case .password:
            text += """
                # Clients log in with a username (device id or node id) and password over TLS.
                require_certificate false
                password_file \(options.passwordFile ?? "/etc/mosquitto/medledger/passwd")

                """
        }
        text += """

            # QoS 1 is never silently dropped in normal use: Mosquitto's default queue of 1000
            # messages per client would drop them for a slow or offline subscriber. Bytes queued
            # per client and the packet size are bounded by what the channel's largest message
            # needs (a sync response of its largest blocks); a larger packet ends its connection.
            max_queued_messages \(options.maxQueuedMessages)
            max_queued_bytes \(options.limits.maxQueuedBytes)
            max_packet_size \(options.limits.maxPacketBytes)
            max_inflight_messages 1000
            # Sessions of clients that are gone for good end after a week.
            persistent_client_expiration 7d
            set_tcp_nodelay true
            max_connections -1

            # Sessions, queued messages and retained commits survive a restart.
            persistence true
            persistence_location \(options.persistenceDirectory)
            autosave_interval 60
            autosave_on_changes false

            log_dest syslog
            log_type error
            log_type warning
            log_type notice
            connection_messages true

            """
        if let include = options.includeDirectory {
            text += "\n# Bridges to other hospitals.\ninclude_dir \(include)\n"
        }
        return text
    }

    /// A bridge from this hospital's broker to another's: MQTT 5, TLS, a durable session
    /// (`cleansession false`, so messages published during a cut are delivered after it), and the
    /// channel's shared topics in both directions. MQTT 5 bridges subscribe with no-local, so a
    /// message is never sent back where it came from; bridges must form a tree (a hub, or a
    /// chain), never a cycle, or a message would go round it.
    public static func bridge(_ options: BridgeOptions) -> String {
        let base = "medledger/v1/\(options.channel)"
        var text = """
            # Bridge \(options.name): this hospital's broker to another hospital's (channel \(options.channel)).
            connection \(options.name)
            address \(options.addresses.joined(separator: " "))
            bridge_protocol_version mqttv50
            remote_clientid \(options.remoteClientID)
            cleansession false
            local_cleansession false
            try_private true
            notifications false
            restart_timeout \(options.restartTimeout)
            keepalive_interval 30
            bridge_cafile \(options.caFile)
            bridge_tls_version \(options.tlsVersion)
            bridge_insecure false

            """
        if let certificate = options.certificateFile, let key = options.keyFile {
            text += "bridge_certfile \(certificate)\nbridge_keyfile \(key)\n"
        }
        if let username = options.remoteUsername {
            text += "remote_username \(username)\n"
            if let password = options.remotePassword { text += "remote_password \(password)\n" }
        }
        text += """
            topic \(base)/tx/# both 1
            topic \(base)/council/# both 1
            topic \(base)/commits both 1
            topic \(base)/receipts/# in 1
            topic \(base)/sync/# both 1
            topic \(base)/tx-receipts/# both 1
            topic \(base)/fetch/# both 1
            topic \(base)/access-status/# both 1
            topic medledger/v1/_responses/# both 1

            """
        if options.carryReadings { text += "topic \(base)/readings/# both 1\n" }
        return text
    }
}

/// Entries of a Mosquitto password file (`mosquitto_passwd`'s format: PBKDF2-SHA512, 101
/// iterations, `$7$`).
public enum PasswordFile {
    /// One line, `user:$7$101$salt$hash`.
    /// - Parameters:
    ///   - user: the username.
    ///   - password: the password.
    ///   - salt: 12 random bytes (made when nil).
    public static func entry(user: String, password: String, salt: [UInt8]? = nil) -> String {
        let salt = salt ?? (0..<12).map { _ in UInt8.random(in: 0...255) }
        let hash = pbkdf2SHA512(password: Array(password.utf8), salt: salt, iterations: 101, length: 64)
        return "\(user):$7$101$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// A random password: 24 characters from letters and digits.
    public static func randomPassword() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        return String((0..<24).map { _ in alphabet.randomElement()! })
    }

    static func pbkdf2SHA512(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var output: [UInt8] = []
        var block: UInt32 = 1
        while output.count < length {
            var u = Array(
                HMAC<SHA512>.authenticationCode(
                    for: salt + withUnsafeBytes(of: block.bigEndian, Array.init), using: key))
            var t = u
            for _ in 1..<iterations {
                u = Array(HMAC<SHA512>.authenticationCode(for: u, using: key))
                for index in t.indices { t[index] ^= u[index] }
            }
            output += t
            block += 1
        }
        return Array(output.prefix(length))
    }
}
