import Foundation
public import MedLedgerCore
public import MedLedgerMQTT

/// How a simulated fleet runs: its devices, their rate, the brokers, the faults, where it keeps
/// its state.
public struct FleetOptions: Sendable {
    /// The number of devices (a loaded fleet file with fewer grows to this many; one with more
    /// keeps its devices and runs the first `devices`).
    public var devices: Int
    /// The devices' signature algorithms (for new devices).
    public var algorithms: AlgorithmMix = .ed25519
    /// Readings per second of each device (a lab analyser reports `DeviceKind.rateDivisor` times
    /// less often).
    public var rate: Double = 1
    /// How long to publish; nil: until `Fleet.stop()`.
    public var duration: Duration?
    /// The seed of everything random: keys and patients of new devices, values, faults, timing.
    public var seed: UInt64 = 1
    /// The brokers, in order: a device moves to the next when its broker is unreachable (the
    /// brokers of a channel are bridged, so readings reach the managers from any of them).
    public var brokers: [MQTTEndpoint]
    /// The channel id.
    public var channel: String
    /// The channel's clock-skew window, ms (a `clock-skew` fault goes beyond it).
    public var skewMs: UInt64 = 300_000
    /// How many managers answer (the genesis's managers): a registration or revocation counts as
    /// applied once this many have sent its committed receipt (or `settleTime` after the first).
    public var managers: Int = 1
    /// The channel's managers and their keys (the genesis's): a `committed` or `rejected` receipt
    /// counts only when one of them signed it (PROTOCOL.md, "Signed receipts"); others are ignored
    /// and counted. nil: receipts are not verified (a fleet given only a channel id, for tests of
    /// the fleet itself against a stand-in manager).
    public var receiptSigners: [Member]?
    /// How long after a transaction's first committed receipt the fleet waits for the other
    /// managers' receipts at most.
    public var settleTime: Duration = .seconds(3)
    /// TLS (nil: plain TCP). A `certificateFile` or `keyFile` containing `{device}` is a per-device
    /// path (the device id is put in its place).
    public var tls: MQTTTLSOptions?
    /// Passwords by MQTT username (a device id, the registrar id); `*` applies to every other user.
    public var passwords: [String: String] = [:]
    /// The MQTT protocol version of the devices.
    public var protocolVersion: MQTTProtocolVersion = .v311
    /// The MQTT keep-alive of the devices, seconds.
    public var keepAlive = 30
    /// What the devices get wrong, by share of readings.
    public var faults: FaultPlan = .none
    /// The share of new devices never registered (their readings must be refused as
    /// `unknown-device`); the fault plan's `unregistered` share, when higher, is used instead.
    public var unregisteredShare: Double = 0
    /// The share of patients with abnormal (but plausible) values.
    public var abnormalShare: Double = 0.1
    /// The share of devices that go offline once during the run (sampling on, sending nothing)
    /// and then deliver their backlog with its old timestamps.
    public var offlineShare: Double = 0
    /// How long an offline period lasts.
    public var offlineDuration: Duration = .seconds(20)
    /// How long a device stays away after an abrupt disconnect (the `disconnect` fault).
    public var disconnectPause: Duration = .seconds(2)
    /// How many more readings a `burst` fault makes at once.
    public var burstSize = 10
    /// How long a device waits for a final receipt before it sends a kept message again.
    public var resendInterval: Duration = .seconds(30)
    /// How long a device pauses after a manager said it was too busy (each `busy` in a row
    /// doubles the pause, with jitter, up to the resend interval), then sends its store again.
    public var busyRetry: Duration = .seconds(1)
    /// The most messages a device keeps unanswered (well below the 1024-wide anti-replay window).
    public var storeCapacity = 256
    /// Where the fleet keeps its files: `fleet.json` (devices) and `seqs` (the seq reservations).
    public var stateDirectory: String
    /// The fleet file, if not `stateDirectory/fleet.json`.
    public var fleetFile: String?
    /// The prefix of new device ids (default: `sim-` and four random hex digits, so that two fleets
    /// on one channel never share ids).
    public var devicePrefix: String?
    /// Seqs reserved at a time.
    public var seqChunk = 100
    /// Threads that drive the devices' MQTT connections.
    public var eventLoopThreads = 2
    /// Connections opened at once while the fleet starts.
    public var connectConcurrency = 256
    /// The longest wait, after publishing ends, for the receipts still outstanding.
    public var drainTime: Duration = .seconds(30)
    /// The scheduler's tick, ms.
    public var tickMs: UInt64 = 20

    /// Options for a channel.
    /// - Parameters:
    ///   - devices: the number of devices.
    ///   - brokers: the brokers, in order of preference.
    ///   - channel: the channel id.
    ///   - stateDirectory: where the fleet keeps its files.
    public init(devices: Int, brokers: [MQTTEndpoint], channel: String, stateDirectory: String) {
        self.devices = devices
        self.brokers = brokers
        self.channel = channel
        self.stateDirectory = stateDirectory
    }

    /// Options for a channel's genesis (its id, skew window and number of managers).
    /// - Parameters:
    ///   - devices: the number of devices.
    ///   - brokers: the brokers, in order of preference.
    ///   - genesis: the channel's genesis.
    ///   - stateDirectory: where the fleet keeps its files.
    public init(devices: Int, brokers: [MQTTEndpoint], genesis: Genesis, stateDirectory: String) {
        self.init(devices: devices, brokers: brokers, channel: genesis.channel, stateDirectory: stateDirectory)
        skewMs = genesis.skewMs
        managers = max(1, genesis.managers.count)
        receiptSigners = genesis.managers
    }

    /// The fleet file's path.
    public var fleetFilePath: String { fleetFile ?? "\(stateDirectory)/fleet.json" }

    /// The seq reservations' path.
    public var reservationsPath: String { "\(stateDirectory)/seqs" }

    /// Checks the options and names the first one that is wrong.
    /// - Throws: `FleetError.Code.badOption`.
    public func validate() throws(FleetError) {
        func bad(_ message: String) -> FleetError { FleetError(.badOption, message) }
        guard devices >= 0 else { throw bad("the number of devices must not be negative") }
        guard rate > 0, rate.isFinite else { throw bad("the rate must be a positive number of readings per second") }
        guard !brokers.isEmpty else { throw bad("no broker is given") }
        for broker in brokers where broker.host.isEmpty || !(1...65535).contains(broker.port) {
            throw bad("broker '\(broker)' is not HOST:PORT")
        }
        guard Identifiers.isValidChannelID(channel) else { throw bad("'\(channel)' is not a channel id") }
        for (name, share) in [
            ("unregistered share", unregisteredShare), ("abnormal share", abnormalShare),
            ("offline share", offlineShare),
        ] where !(0...1).contains(share) {
            throw bad("the \(name) must be in 0...1, not \(share)")
        }
        if let prefix = devicePrefix, !Identifiers.isValidNodeID(prefix + "-0") || prefix.utf8.count > 48 {
            throw bad("'\(prefix)' cannot start device ids")
        }
        guard storeCapacity >= 1, storeCapacity <= 1000 else {
            throw bad("the store capacity must be 1...1000 (below the 1024-wide anti-replay window)")
        }
        guard seqChunk >= 1 else { throw bad("the seq chunk must be at least 1") }
        guard eventLoopThreads >= 1 else { throw bad("at least one event-loop thread is needed") }
        guard burstSize >= 0, managers >= 1, connectConcurrency >= 1, tickMs >= 1 else {
            throw bad("burst size, managers, connect concurrency and tick must be positive")
        }
        if let duration, duration < .zero { throw bad("the duration must not be negative") }
    }

    /// The MQTT configuration of one device (or the registrar).
    func mqtt(clientID: String, username: String) -> MQTTConfiguration {
        var tls = self.tls
        if var options = tls {
            options.certificateFile = options.certificateFile?.replacingDevice(with: username)
            options.keyFile = options.keyFile?.replacingDevice(with: username)
            tls = options
        }
        return MQTTConfiguration(
            endpoints: brokers, clientID: clientID, protocolVersion: protocolVersion, cleanStart: true,
            keepAlive: keepAlive, username: username, password: passwords[username] ?? passwords["*"], tls: tls,
            maxInflight: 32,
            reconnect: MQTTReconnectPolicy(minimumDelay: .milliseconds(250), maximumDelay: .seconds(4), jitter: 0.5),
            connectTimeout: .seconds(5), receiveBufferCapacity: 64)
    }
}

extension String {
    fileprivate func replacingDevice(with id: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.range(of: "{device}") {
            result += rest[..<range.lowerBound]
            result += id
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
