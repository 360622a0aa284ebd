public import MedLedgerCore

/// How `fuzz-intake` reads one input: two control bytes, then the COSE payload.
///
/// Byte 0: bits 0-2 the signer (an index into `IntakeFixture.signers`), bits 3-5 the protected
/// header's kid (0-3 the signer's own id, 4 another registered device's, 5 an unregistered id,
/// 6 an id that is not a device id, 7 none), bits 6-7 the alg (`Algorithm`).
/// Byte 1: bit 0 the same bytes are sent twice, bit 1 a second reading derived from the first is
/// sent, bits 2-3 how it is derived (`Derivation`), bit 4 the topic names another device than the
/// signer, bits 5-6 a pending registrar transaction (`Pending`), bit 7 the manager's clock is the
/// payload's own time (else `IntakeFixture.now`).
public struct IntakeInput: Hashable, Sendable {
    /// The protected header's kid.
    public enum KeyID: UInt8, Hashable, Sendable {
        /// The signer's own device id.
        case own = 0
        /// The id of the next signer in the list (a registered device, mostly).
        case other = 4
        /// A valid device id that no transaction registers.
        case unregistered = 5
        /// Bytes that are not a device id.
        case invalid = 6
        /// No kid at all.
        case missing = 7
    }

    /// The protected header's alg.
    public enum Algorithm: UInt8, Hashable, Sendable {
        /// -8 (Ed25519) or -7 (ES256), as `COSESign1.sign` writes it.
        case standard = 0
        /// RFC 9864's fully specified id: -19 or -9.
        case fullySpecified = 1
        /// The other algorithm's id.
        case other = 2
        /// A text alg, which names no algorithm this project verifies.
        case unsupported = 3
    }

    /// How the second reading derives from the first.
    public enum Derivation: UInt8, Hashable, Sendable {
        /// The decoded payload with seq + 1, signed alike.
        case nextSeq = 0
        /// The decoded payload with time + 1 (same seq, other bytes), signed alike.
        case sameSeq = 1
        /// The same payload signed by the next signer, with its own kid and standard alg.
        case otherSigner = 2
        /// The decoded payload with the channel and device set to the fixture's and the
        /// signer's, signed by the signer with its own kid and standard alg.
        case repaired = 3
    }

    /// A registrar transaction pending beside the readings.
    public enum Pending: UInt8, Hashable, Sendable {
        /// None.
        case none = 0
        /// Revokes the signer.
        case revoke = 1
        /// Registers `IntakeFixture.pendingDevice` (signer 5).
        case register = 2
        /// Assigns the signer to another patient.
        case assign = 3
    }

    /// Which entry of `IntakeFixture.signers` signs.
    public var signer: Int
    /// The kid.
    public var keyID: KeyID
    /// The alg.
    public var algorithm: Algorithm
    /// Whether the same bytes are sent twice.
    public var copy: Bool
    /// Whether a second reading is sent.
    public var second: Bool
    /// How the second reading is derived.
    public var derivation: Derivation
    /// Whether the topic names another device than the signer.
    public var otherTopic: Bool
    /// The pending transaction.
    public var pending: Pending
    /// Whether the manager's clock is the payload's time.
    public var clockIsReadingTime: Bool
    /// The COSE payload.
    public var payload: [UInt8]

    /// Makes one.
    public init(
        signer: Int, keyID: KeyID = .own, algorithm: Algorithm = .standard, copy: Bool = false, second: Bool = false,
        derivation: Derivation = .nextSeq, otherTopic: Bool = false, pending: Pending = .none,
        clockIsReadingTime: Bool = false, payload: [UInt8]
    ) {
        self.signer = signer % IntakeFixture.signerCount
        self.keyID = keyID
        self.algorithm = algorithm
        self.copy = copy
        self.second = second
        self.derivation = derivation
        self.otherTopic = otherTopic
        self.pending = pending
        self.clockIsReadingTime = clockIsReadingTime
        self.payload = payload
    }

    /// Reads a fuzzer input (missing control bytes read as 0).
    public init(_ bytes: [UInt8]) {
        let first = bytes.first ?? 0
        let second = bytes.count > 1 ? bytes[1] : 0
        let kid = (first >> 3) & 7
        self.init(
            signer: Int(first & 7), keyID: kid < 4 ? .own : KeyID(rawValue: kid)!,
            algorithm: Algorithm(rawValue: first >> 6)!, copy: second & 1 != 0, second: second & 2 != 0,
            derivation: Derivation(rawValue: (second >> 2) & 3)!, otherTopic: second & 0x10 != 0,
            pending: Pending(rawValue: (second >> 5) & 3)!, clockIsReadingTime: second & 0x80 != 0,
            payload: Array(bytes.dropFirst(2)))
    }

    /// The input as the fuzzer reads it.
    public var encoded: [UInt8] {
        let first = UInt8(signer) | keyID.rawValue << 3 | algorithm.rawValue << 6
        var second: UInt8 = (copy ? 1 : 0) | (self.second ? 2 : 0) | derivation.rawValue << 2
        second |= (otherTopic ? 0x10 : 0) | pending.rawValue << 5 | (clockIsReadingTime ? 0x80 : 0)
        return [first, second] + payload
    }
}

/// `fuzz-intake`'s channel: a genesis with deterministic keys (four validators, one manager, one
/// registrar) and the state at height 1, whose block registers the devices (Ed25519 and one
/// ES256), revokes one, and commits three readings so that two replay windows are not empty.
public struct IntakeFixture: Sendable {
    /// A device key that may sign readings.
    public struct Signer: Sendable {
        /// The device id.
        public let id: String
        /// The device's key.
        public let key: PrivateKey
    }

    /// How many signers there are (a power of two: the control byte picks one with 3 bits).
    public static let signerCount = 8
    /// The index of the device that only a pending transaction registers.
    public static let pendingDevice = 5
    /// The index of the device block 1 revokes.
    public static let revokedDevice = 4
    /// The index of the device no transaction registers.
    public static let strangerDevice = 6
    /// The channel id.
    public static let channel = "fuzz-intake"
    /// When the channel was made.
    public static let createdAt: UInt64 = 1_700_000_000_000
    /// The registrar's id.
    public static let registrar = "registrar-1"
    /// The patient `Pending.assign` assigns the signer to.
    public static let otherPatient = "patient-z"

    /// The genesis.
    public let genesis: Genesis
    /// The validators' keys, in council order.
    public let validatorKeys: [PrivateKey]
    /// The manager's id.
    public let manager: String
    /// The registrar's key.
    public let registrarKey: PrivateKey
    /// The devices that sign (see `Signer`'s indices above).
    public let signers: [Signer]
    /// The state at height 1.
    public let state: LedgerState
    /// The manager's clock, unless the input asks for the reading's time: a day after genesis.
    public let now: UInt64 = Self.createdAt + 86_400_000

    /// Builds the channel and applies block 1 (traps if that fails: the fixture is wrong).
    public init() {
        func key(_ algorithm: SignatureAlgorithm, _ seed: UInt8) -> PrivateKey {
            var bytes = [UInt8](repeating: seed, count: 32)
            bytes[0] = algorithm == .ed25519 ? 1 : 2
            return try! PrivateKey(algorithm: algorithm, rawBytes: bytes)
        }
        let validatorKeys = (0..<4).map { key(.ed25519, 100 + UInt8($0)) }
        let managerKey = key(.ed25519, 200)
        let registrarKey = key(.ed25519, 210)
        let manager = "manager-1"
        let genesis = Genesis(
            channel: Self.channel, createdAt: Self.createdAt,
            council: validatorKeys.enumerated().map {
                Member(id: "validator-\($0.offset + 1)", publicKey: $0.element.publicKey)
            },
            managers: [Member(id: manager, publicKey: managerKey.publicKey)],
            registrars: [Member(id: Self.registrar, publicKey: registrarKey.publicKey)])
        try! genesis.validate()
        let signers = [
            Signer(id: "bp-cuff-0001", key: key(.ed25519, 1)),
            Signer(id: "glucometer-0002", key: key(.es256, 2)),
            Signer(id: "thermometer-0003", key: key(.ed25519, 3)),
            Signer(id: "pulse-ox-0004", key: key(.ed25519, 4)),
            Signer(id: "retired-0005", key: key(.ed25519, 5)),
            Signer(id: "pending-0006", key: key(.ed25519, 6)),
            Signer(id: "stranger-0007", key: key(.ed25519, 7)),
            Signer(id: "ecg.ward_2", key: key(.ed25519, 8)),
        ]
        precondition(signers.count == Self.signerCount)

        var transactions: [SignedTransaction] = []
        func registrar(_ body: TransactionBody) {
            transactions.append(
                try! SignedTransaction(
                    signing: Transaction(
                        channel: Self.channel, submitter: Self.registrar, seq: UInt64(transactions.count + 1),
                        time: Self.createdAt, body: body),
                    with: registrarKey))
        }
        for (index, signer) in signers.enumerated()
        where index != Self.pendingDevice && index != Self.strangerDevice {
            registrar(
                .registerDevice(
                    device: signer.id, key: signer.key.publicKey, patient: index % 2 == 0 ? "patient-\(index)" : nil))
        }
        registrar(.revokeDevice(device: signers[Self.revokedDevice].id))
        func reading(_ signer: Int, seq: UInt64, _ records: [ReadingRecord]) -> SignedReading {
            try! SignedReading(
                signing: Reading(
                    channel: Self.channel, device: signers[signer].id, seq: seq, time: Self.createdAt + 500,
                    records: records),
                with: signers[signer].key)
        }
        let pressure = [
            ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(120)),
            ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(80)),
        ]
        let heart = [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(60))]
        let readings = [
            reading(0, seq: 5, pressure), reading(0, seq: 1000, pressure),
            reading(7, seq: CBOR.maxWireInteger, heart),
        ]
        let genesisState = LedgerState(genesis: genesis)
        let block = Block(
            extending: genesisState, time: Self.createdAt + 1000, proposer: manager,
            body: BlockBody(readings: readings.map(\.bytes), transactions: transactions.map(\.bytes)))
        do {
            state = try genesisState.applying(block)
        } catch {
            fatalError("fuzz-intake's block 1 does not apply: \(error)")
        }
        self.genesis = genesis
        self.validatorKeys = validatorKeys
        self.manager = manager
        self.registrarKey = registrarKey
        self.signers = signers
    }

    /// A registrar transaction after block 1's (seq 100 onwards).
    public func transaction(_ body: TransactionBody, seq: UInt64 = 100) -> SignedTransaction {
        try! SignedTransaction(
            signing: Transaction(
                channel: Self.channel, submitter: Self.registrar, seq: seq, time: now, body: body),
            with: registrarKey)
    }

    /// Signs a payload as the input says: the signer's key always signs validly, whatever the
    /// protected header names as kid and alg.
    public func sign(
        payload: [UInt8], signer index: Int, keyID: IntakeInput.KeyID, algorithm: IntakeInput.Algorithm
    ) -> [UInt8] {
        let signer = signers[index]
        let kid: [UInt8]? =
            switch keyID {
            case .own: Array(signer.id.utf8)
            case .other: Array(signers[(index + 1) % signers.count].id.utf8)
            case .unregistered: Array("nobody-0099".utf8)
            case .invalid: Array("not a device".utf8)
            case .missing: nil
            }
        let ed25519 = signer.key.algorithm == .ed25519
        let alg: CBOR
        switch algorithm {
        case .standard:
            return try! COSESign1.sign(payload: payload, keyID: kid, key: signer.key).encoded()
        case .fullySpecified: alg = .int(ed25519 ? -19 : -9)
        case .other: alg = .int(ed25519 ? -7 : -8)
        case .unsupported: alg = .text(ed25519 ? "EdDSA" : "ES256")
        }
        var header = [CBORMapEntry(.unsigned(1), alg)]
        if let kid { header.append(CBORMapEntry(.unsigned(4), .bytes(kid))) }
        let unsigned = COSESign1(protectedHeader: .map(header), payload: payload, signature: [])
        let signature = try! signer.key.signature(for: unsigned.toBeSigned())
        return COSESign1(protectedHeader: .map(header), payload: payload, signature: signature).encoded()
    }

    /// The council's certificate of a header, by the first 2f+1 validators.
    public func certificate(for header: BlockHeader) -> CommitCertificate {
        try! CommitCertificate.signing(
            header: header, keys: Array(validatorKeys.enumerated().prefix(genesis.quorum)))
    }
}

extension Seeds {
    /// `fuzz-intake`'s inputs: valid payloads of each signer (and the control bytes that make
    /// them pass), payloads with edge seqs and times, records with edge values, and the options
    /// (copy, second reading, pending transactions, the other kids and algs).
    public static func intakeInputs() -> [[UInt8]] {
        let channel = IntakeFixture.channel
        let time = IntakeFixture.createdAt + 3_600_000
        let ids = [
            "bp-cuff-0001", "glucometer-0002", "thermometer-0003", "pulse-ox-0004", "retired-0005",
            "pending-0006", "stranger-0007", "ecg.ward_2",
        ]
        let pressure = [
            ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(128)),
            ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(84)),
        ]
        let recordsBySigner: [[ReadingRecord]] = [
            pressure,
            [ReadingRecord(code: "41653-7", unit: "mg/dL", value: .integer(104))],
            [ReadingRecord(code: "8310-5", unit: "Cel", value: .float(36.6))],
            [
                ReadingRecord(code: "59408-5", unit: "%", value: .integer(97)),
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(72)),
            ],
            [ReadingRecord(code: "1920-8", unit: "U/L", value: .integer(0))],
            [ReadingRecord(code: "15074-8", unit: "mmol/L", value: .float(5.5))],
            [ReadingRecord(code: "2093-3", unit: "mg/dL", value: .float(180.25))],
            [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(61))],
        ]
        func payload(_ signer: Int, seq: UInt64 = 7, time: UInt64 = time, records: [ReadingRecord]? = nil) -> [UInt8] {
            Reading(
                channel: channel, device: ids[signer], seq: seq, time: time, records: records ?? recordsBySigner[signer]
            ).payloadBytes()
        }
        var inputs: [IntakeInput] = []

        // Each signer, as a device sends it; the pending device with its registration pending.
        for signer in 0..<IntakeFixture.signerCount {
            inputs.append(
                IntakeInput(
                    signer: signer, pending: signer == IntakeFixture.pendingDevice ? .register : .none,
                    payload: payload(signer)))
        }
        // Edge seqs and times (the clock follows the reading's time for the times).
        let edges: [UInt64] = [0, 1, 1 << 31, 1 << 53, UInt64(Int64.max), 1 << 63, UInt64.max]
        for edge in edges {
            inputs.append(IntakeInput(signer: 0, payload: payload(0, seq: edge)))
            inputs.append(IntakeInput(signer: 2, clockIsReadingTime: true, payload: payload(2, time: edge)))
        }
        inputs.append(IntakeInput(signer: 1, payload: payload(1, seq: 1000, time: 0)))
        inputs.append(IntakeInput(signer: 0, payload: payload(0, seq: 1000)))  // committed in block 1
        inputs.append(IntakeInput(signer: 0, payload: payload(0, seq: 2024)))  // slides the window past 1000
        inputs.append(IntakeInput(signer: 3, payload: payload(3, time: time + 86_400_000 + 300_000)))
        inputs.append(IntakeInput(signer: 3, payload: payload(3, time: time + 86_400_000 + 300_001)))

        // Records with edge values: range bounds, just outside, integer and float extremes.
        let edgeValues: [(String, String, ReadingValue)] = [
            ("8480-6", "mm[Hg]", .integer(20)), ("8480-6", "mm[Hg]", .integer(300)),
            ("8480-6", "mm[Hg]", .integer(19)), ("8480-6", "mm[Hg]", .integer(301)),
            ("8480-6", "mm[Hg]", .float(300.00000000000006)), ("8480-6", "mm[Hg]", .float(19.999999999999996)),
            ("8480-6", "mm[Hg]", .integer(Int64.max)), ("8480-6", "mm[Hg]", .integer(Int64.min)),
            ("8480-6", "mm[Hg]", .integer(-1)), ("8480-6", "mm[Hg]", .integer(0)),
            ("1920-8", "U/L", .float(-0.0)), ("1920-8", "U/L", .float(0.0)), ("1920-8", "U/L", .integer(20000)),
            ("1920-8", "U/L", .float(.leastNonzeroMagnitude)), ("1920-8", "U/L", .float(-.leastNonzeroMagnitude)),
            ("8480-6", "mm[Hg]", .float(.nan)), ("8480-6", "mm[Hg]", .float(.infinity)),
            ("8480-6", "mm[Hg]", .float(-.infinity)), ("8480-6", "mm[Hg]", .float(.greatestFiniteMagnitude)),
            ("8480-6", "mm[Hg]", .float(1e300)), ("59408-5", "%", .float(100)), ("59408-5", "%", .float(30)),
            ("8480-6", "mmHg", .integer(120)), ("0000-0", "mm[Hg]", .integer(120)), ("", "", .integer(0)),
        ]
        for (code, unit, value) in edgeValues {
            let record = ReadingRecord(code: code, unit: unit, value: value)
            inputs.append(IntakeInput(signer: 0, payload: payload(0, records: [record])))
        }
        // Sixteen records (the most), and seventeen.
        let many = (0..<16).map { ReadingRecord(code: "2093-3", unit: "mg/dL", value: .float(Double($0) + 20.25)) }
        inputs.append(IntakeInput(signer: 2, payload: payload(2, records: many)))
        inputs.append(IntakeInput(signer: 2, payload: payload(2, records: many + many.prefix(1))))

        // The options: a copy, second readings, the topic, pending transactions, kids and algs.
        inputs.append(IntakeInput(signer: 0, copy: true, payload: payload(0)))
        for derivation in [IntakeInput.Derivation.nextSeq, .sameSeq, .otherSigner, .repaired] {
            inputs.append(IntakeInput(signer: 0, copy: true, second: true, derivation: derivation, payload: payload(0)))
            inputs.append(IntakeInput(signer: 1, second: true, derivation: derivation, payload: payload(1)))
        }
        inputs.append(IntakeInput(signer: 0, otherTopic: true, payload: payload(0)))
        for pending in [IntakeInput.Pending.revoke, .register, .assign] {
            inputs.append(IntakeInput(signer: 0, second: true, pending: pending, payload: payload(0)))
            inputs.append(IntakeInput(signer: 1, pending: pending, payload: payload(1)))
        }
        inputs.append(
            IntakeInput(signer: 5, second: true, derivation: .sameSeq, pending: .register, payload: payload(5)))
        for keyID in [IntakeInput.KeyID.other, .unregistered, .invalid, .missing] {
            inputs.append(IntakeInput(signer: 0, keyID: keyID, payload: payload(0)))
        }
        for algorithm in [IntakeInput.Algorithm.fullySpecified, .other, .unsupported] {
            inputs.append(IntakeInput(signer: 0, algorithm: algorithm, payload: payload(0)))
            inputs.append(IntakeInput(signer: 1, algorithm: algorithm, payload: payload(1)))
        }
        // Not a reading at all: empty, and a payload that is not a map.
        inputs.append(IntakeInput(signer: 0, payload: []))
        inputs.append(IntakeInput(signer: 0, payload: [0x80]))
        return inputs.map(\.encoded)
    }
}
