public import MedLedgerCore

/// A small deterministic pseudo-random generator (SplitMix64), so every run builds the very
/// same channel, keys and readings.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Makes a generator from a seed.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 32 random bytes, for a key.
    public mutating func bytes32() -> [UInt8] {
        (0..<4).flatMap { _ in
            let word = next()
            return (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * UInt64($0))) }
        }
    }
}

/// The kind of sensor a simulated device is, which decides what it measures.
public enum DeviceKind: String, CaseIterable, Sendable {
    /// A blood-pressure cuff: systolic and diastolic, mm[Hg].
    case bloodPressureCuff = "bp-cuff"
    /// A glucometer: capillary glucose, mg/dL.
    case glucometer
    /// A pulse oximeter: SpO2 % and heart rate.
    case pulseOximeter = "pulse-ox"
    /// A heart-rate monitor: heart rate, /min.
    case heartRateMonitor = "hr-monitor"
    /// A thermometer: body temperature, Cel (one decimal).
    case thermometer

    /// Plausible records for one measurement.
    func records(using rng: inout SplitMix64) -> [ReadingRecord] {
        switch self {
        case .bloodPressureCuff:
            let systolic = Int64.random(in: 98...165, using: &rng)
            let diastolic = Int64.random(in: 58...(min(systolic - 25, 105)), using: &rng)
            return [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(systolic)),
                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(diastolic)),
            ]
        case .glucometer:
            return [
                ReadingRecord(code: "41653-7", unit: "mg/dL", value: .integer(Int64.random(in: 68...240, using: &rng)))
            ]
        case .pulseOximeter:
            return [
                ReadingRecord(code: "59408-5", unit: "%", value: .integer(Int64.random(in: 90...100, using: &rng))),
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(Int64.random(in: 52...118, using: &rng))),
            ]
        case .heartRateMonitor:
            return [
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(Int64.random(in: 48...135, using: &rng)))
            ]
        case .thermometer:
            let tenths = Int.random(in: 358...392, using: &rng)
            return [ReadingRecord(code: "8310-5", unit: "Cel", value: .float(Double(tenths) / 10))]
        }
    }
}

/// A simulated device: its id, kind and key.
public struct FixtureDevice: Sendable {
    /// The device id, e.g. `bp-cuff-0042`.
    public let id: String
    /// What it measures.
    public let kind: DeviceKind
    /// Its signing key.
    public let key: PrivateKey
}

/// A channel with a 4-validator council, one manager, one registrar and a fleet of devices, and
/// the blocks that register the devices and carry their readings. Everything is deterministic.
public struct LedgerFixture: Sendable {
    /// The first reading's time: 2025-11-13, ms since the Unix epoch.
    public static let startTime: UInt64 = 1_763_000_000_000
    /// How far apart one device's readings are, ms.
    public static let deviceIntervalMs: UInt64 = 5_000

    /// The channel's genesis.
    public let genesis: Genesis
    /// The council's keys, by validator index.
    public let councilKeys: [PrivateKey]
    /// The registrar's key.
    public let registrarKey: PrivateKey
    /// The fleet.
    public let devices: [FixtureDevice]

    /// Makes a channel and a fleet.
    /// - Parameters:
    ///   - deviceCount: how many devices.
    ///   - algorithm: each device's algorithm, by its index.
    ///   - seed: the seed of every key and value.
    public init(
        deviceCount: Int, algorithm: (Int) -> SignatureAlgorithm = { _ in .ed25519 }, seed: UInt64 = 0x4D65_644C
    ) {
        var rng = SplitMix64(seed: seed)
        func key(_ algorithm: SignatureAlgorithm) -> PrivateKey {
            // Any 32 bytes are an Ed25519 seed; a random P-256 scalar is valid but for a chance of 2^-32.
            while true {
                if let key = try? PrivateKey(algorithm: algorithm, rawBytes: rng.bytes32()) { return key }
            }
        }
        councilKeys = (0..<4).map { _ in key(.ed25519) }
        registrarKey = key(.ed25519)
        let managerKey = key(.ed25519)
        genesis = Genesis(
            channel: "city-hospitals", createdAt: Self.startTime - 86_400_000,
            council: councilKeys.enumerated().map {
                Member(id: "validator-\($0.offset + 1)", publicKey: $0.element.publicKey)
            },
            managers: [Member(id: "manager-st-mary", publicKey: managerKey.publicKey)],
            registrars: [Member(id: "registrar-st-mary", publicKey: registrarKey.publicKey)])
        let kinds = DeviceKind.allCases
        var counters: [DeviceKind: Int] = [:]
        var fleet: [FixtureDevice] = []
        for index in 0..<deviceCount {
            let kind = kinds[index % kinds.count]
            let number = (counters[kind] ?? 0) + 1
            counters[kind] = number
            let suffix = String(number)
            let id = "\(kind.rawValue)-\(String(repeating: "0", count: max(0, 4 - suffix.count)))\(suffix)"
            fleet.append(FixtureDevice(id: id, kind: kind, key: key(algorithm(index))))
        }
        devices = fleet
    }

    /// The manager that proposes every block.
    public var proposer: String { genesis.managers[0].id }

    /// The signed register-device transactions of the whole fleet, each device assigned to a
    /// pseudonymous patient.
    public func registrations() -> [[UInt8]] {
        devices.enumerated().map { index, device in
            let transaction = Transaction(
                channel: genesis.channel, submitter: genesis.registrars[0].id, seq: UInt64(index + 1),
                time: Self.startTime - 60_000 + UInt64(index),
                body: .registerDevice(
                    device: device.id, key: device.key.publicKey, patient: "patient-\(0x1000_0000 + index * 7919)"))
            // Signing with a valid key does not fail.
            return try! SignedTransaction(signing: transaction, with: registrarKey).bytes
        }
    }

    /// Block 1: every device's registration, no readings.
    /// - Parameter state: the state at genesis.
    public func registrationBlock(on state: LedgerState) -> Block {
        Block(
            extending: state, time: Self.startTime - 30_000, proposer: proposer,
            body: BlockBody(readings: [], transactions: registrations()))
    }

    /// The payload of the reading with a global index: readings arrive round-robin over the
    /// fleet, so reading `g` is device `g % count`'s reading number `g / count + 1`.
    /// - Parameter index: the global index, from 0.
    public func reading(_ index: Int) -> Reading {
        let deviceIndex = index % devices.count
        let round = index / devices.count
        let device = devices[deviceIndex]
        var rng = SplitMix64(seed: UInt64(index) &* 0x2545_F491_4F6C_DD1D ^ 0xA5A5)
        let jitter = UInt64.random(in: 0..<900, using: &rng)
        let time =
            Self.startTime + UInt64(round) * Self.deviceIntervalMs + UInt64(deviceIndex) * 9 + jitter
        return Reading(
            channel: genesis.channel, device: device.id, seq: UInt64(round + 1), time: time,
            records: device.kind.records(using: &rng))
    }

    /// The signed bytes of the reading with a global index.
    /// - Parameter index: the global index, from 0.
    public func signedReading(_ index: Int) -> [UInt8] {
        let reading = reading(index)
        // Signing with a valid key does not fail.
        return try! SignedReading(signing: reading, with: devices[index % devices.count].key).bytes
    }

    /// A body of readings with consecutive global indexes.
    /// - Parameter range: the global indexes.
    public func readingBody(_ range: Range<Int>) -> BlockBody {
        BlockBody(readings: range.map(signedReading), transactions: [])
    }

    /// The block of readings that extends a state, timed just after its newest reading.
    /// - Parameters:
    ///   - state: the state the block extends.
    ///   - body: its readings.
    public func block(extending state: LedgerState, body: BlockBody) -> Block {
        var newest: UInt64 = 0
        for bytes in body.readings {
            if let signed = try? SignedReading(decoding: bytes) { newest = max(newest, signed.reading.time) }
        }
        return Block(extending: state, time: newest + 150, proposer: proposer, body: body)
    }

    /// A commit certificate signed by the first 2f+1 validators (3 of 4).
    /// - Parameter header: the header to certify.
    public func certificate(for header: BlockHeader) -> CommitCertificate {
        let keys = (0..<genesis.quorum).map { ($0, councilKeys[$0]) }
        // Signing with valid keys does not fail.
        return try! CommitCertificate.signing(header: header, keys: keys)
    }

    /// The state after block 1 (the registrations), and that block.
    public func registeredState() -> (state: LedgerState, block: Block) {
        let genesisState = LedgerState(genesis: genesis)
        let block = registrationBlock(on: genesisState)
        do {
            return (try genesisState.applying(block), block)
        } catch {
            fatalError("the registration block breaks a rule: \(error)")
        }
    }
}
