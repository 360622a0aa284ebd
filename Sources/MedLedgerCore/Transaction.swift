/// What a transaction does to the ledger's registry.
public enum TransactionBody: Hashable, Sendable {
    /// Registers a device with its key, optionally assigned to a pseudonymous patient at once.
    case registerDevice(device: String, key: PublicKey, patient: String?)
    /// Assigns a registered device to a pseudonymous patient (replacing any earlier patient).
    case assignDevice(device: String, patient: String)
    /// Revokes a device: its readings are refused from the next block on, for good.
    case revokeDevice(device: String)

    /// The transaction type's name on the wire.
    public var typeName: String {
        switch self {
        case .registerDevice: "register-device"
        case .assignDevice: "assign-device"
        case .revokeDevice: "revoke-device"
        }
    }

    /// The device the transaction is about.
    public var device: String {
        switch self {
        case .registerDevice(let device, _, _), .assignDevice(let device, _), .revokeDevice(let device): device
        }
    }

    var cbor: CBOR {
        switch self {
        case .registerDevice(let device, let key, let patient):
            var entries = [
                CBORMapEntry(.unsigned(1), .text(device)),
                CBORMapEntry(.unsigned(2), .int(key.algorithm.coseIdentifier)),
                CBORMapEntry(.unsigned(3), .bytes(key.rawBytes)),
            ]
            if let patient { entries.append(CBORMapEntry(.unsigned(4), .text(patient))) }
            return .map(entries)
        case .assignDevice(let device, let patient):
            return .map([CBORMapEntry(.unsigned(1), .text(device)), CBORMapEntry(.unsigned(2), .text(patient))])
        case .revokeDevice(let device):
            return .map([CBORMapEntry(.unsigned(1), .text(device))])
        }
    }
}

/// A transaction's payload (docs/TRANSACTIONS.md): who submits it, where, with which sequence
/// number, and what it does. It travels as a COSE_Sign1 message signed by the submitter.
public struct Transaction: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The submitter's id: a registrar named in genesis.
    public var submitter: String
    /// The submitter's sequence number, from 1, under the same sliding window as readings.
    public var seq: UInt64
    /// The submitter's clock, ms since the Unix epoch.
    public var time: UInt64
    /// What it does.
    public var body: TransactionBody

    /// Makes a transaction.
    public init(channel: String, submitter: String, seq: UInt64, time: UInt64, body: TransactionBody) {
        self.channel = channel
        self.submitter = submitter
        self.seq = seq
        self.time = time
        self.body = body
    }

    /// The payload map in deterministic encoding.
    public func payloadBytes() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .text(channel)),
            CBORMapEntry(.unsigned(2), .text(submitter)),
            CBORMapEntry(.unsigned(3), .unsigned(seq)),
            CBORMapEntry(.unsigned(4), .unsigned(time)),
            CBORMapEntry(.unsigned(5), .text(body.typeName)),
            CBORMapEntry(.unsigned(6), body.cbor),
        ]).encoded()
    }

    /// Decodes a payload map (any valid encoding).
    /// - Parameter payload: the payload bytes.
    /// - Throws: `LedgerFormatError` naming the field that is wrong.
    public init(payload: [UInt8]) throws(LedgerFormatError) {
        let map: CBOR
        do {
            map = try CBOR.decode(payload, limits: .transaction)
        } catch {
            throw LedgerFormatError("transaction payload: \(error)")
        }
        guard let channel = map[intKey: 1]?.textValue, let submitter = map[intKey: 2]?.textValue,
            let seq = map[intKey: 3]?.uint64Value, seq >= 1, let time = map[intKey: 4]?.uint64Value,
            let type = map[intKey: 5]?.textValue, let fields = map[intKey: 6], fields.mapValue != nil
        else {
            throw LedgerFormatError(
                "a transaction is {1: channel, 2: submitter, 3: seq from 1, 4: time, 5: type, 6: body map}")
        }
        guard let device = fields[intKey: 1]?.textValue, Identifiers.isValidNodeID(device) else {
            throw LedgerFormatError("\(type): body key 1 (device) is missing or not a device id")
        }
        let body: TransactionBody
        switch type {
        case "register-device":
            guard let alg = fields[intKey: 2]?.int64Value.flatMap(SignatureAlgorithm.init(coseIdentifier:)),
                let raw = fields[intKey: 3]?.bytesValue
            else { throw LedgerFormatError("register-device: body needs 2 (alg: -8 or -7) and 3 (key bytes)") }
            let key: PublicKey
            do {
                key = try PublicKey(algorithm: alg, rawBytes: raw)
            } catch {
                throw LedgerFormatError("register-device \(device): \(error)")
            }
            var patient: String?
            if let item = fields[intKey: 4] {
                guard let text = item.textValue, Identifiers.isValidNodeID(text) else {
                    throw LedgerFormatError("register-device: body key 4 (patient) is not a pseudonymous id")
                }
                patient = text
            }
            body = .registerDevice(device: device, key: key, patient: patient)
        case "assign-device":
            guard let patient = fields[intKey: 2]?.textValue, Identifiers.isValidNodeID(patient) else {
                throw LedgerFormatError("assign-device: body key 2 (patient) is missing or not a pseudonymous id")
            }
            body = .assignDevice(device: device, patient: patient)
        case "revoke-device":
            body = .revokeDevice(device: device)
        default:
            throw LedgerFormatError("unknown transaction type '\(type)'")
        }
        self.init(channel: channel, submitter: submitter, seq: seq, time: time, body: body)
    }
}

extension CBORLimits {
    /// Limits for a transaction.
    public static let transaction = CBORLimits(
        maxDepth: 8, maxInputBytes: SignedTransaction.maxEncodedBytes, maxItems: 1024,
        maxStringBytes: SignedTransaction.maxEncodedBytes, maxCollectionCount: 256)
}

/// A signed transaction: the exact bytes the submitter sent, and what they say.
public struct SignedTransaction: Hashable, Sendable {
    /// The largest encoded transaction accepted.
    public static let maxEncodedBytes = 16_384

    /// The bytes exactly as signed.
    public let bytes: [UInt8]
    /// The COSE_Sign1 message.
    public let message: COSESign1
    /// The decoded payload.
    public let transaction: Transaction

    /// Decodes a signed transaction (the signature is checked by the ledger rules).
    /// - Parameter bytes: the message as received.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        guard bytes.count <= Self.maxEncodedBytes else {
            throw LedgerFormatError(
                "a transaction of \(bytes.count) bytes is over the limit of \(Self.maxEncodedBytes)")
        }
        do {
            message = try COSESign1(decoding: bytes, limits: .transaction)
        } catch {
            throw LedgerFormatError("transaction: \(error)")
        }
        transaction = try Transaction(payload: message.payload)
        guard let kid = message.keyID, kid == Array(transaction.submitter.utf8) else {
            throw LedgerFormatError("the transaction's kid is not its submitter '\(transaction.submitter)'")
        }
        self.bytes = bytes
    }

    /// Signs a transaction with the submitter's key, the submitter's id as kid.
    /// - Parameters:
    ///   - transaction: the payload.
    ///   - key: the submitter's private key.
    /// - Throws: `KeyError` when signing fails.
    public init(signing transaction: Transaction, with key: PrivateKey) throws(KeyError) {
        message = try COSESign1.sign(
            payload: transaction.payloadBytes(), keyID: Array(transaction.submitter.utf8), key: key)
        bytes = message.encoded()
        self.transaction = transaction
    }
}
