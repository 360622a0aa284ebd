/// Why a manager or validator refuses a reading (PROTOCOL.md, "What a manager does with a reading").
public enum RejectionReason: String, Hashable, Sendable, CaseIterable, Codable {
    /// Over 1024 bytes.
    case tooLarge = "too-large"
    /// Does not decode as a signed reading.
    case malformed
    /// The device is not registered on the channel.
    case unknownDevice = "unknown-device"
    /// The device was revoked.
    case revokedDevice = "revoked-device"
    /// The signature does not verify with the device's registered key and algorithm.
    case badSignature = "bad-signature"
    /// The payload's channel is not the channel it came on.
    case wrongChannel = "wrong-channel"
    /// The payload's device is not the kid or the topic's device.
    case wrongDevice = "wrong-device"
    /// (device, seq) was committed already, or seq is below the anti-replay window.
    case replayed
    /// The reading's time is too far ahead of the checker's clock.
    case clockSkew = "clock-skew"
    /// A record's LOINC code is not known on the channel.
    case unknownCode = "unknown-code"
    /// A record's unit is not its code's unit.
    case unitMismatch = "unit-mismatch"
    /// A record's value is outside its kind's plausible range.
    case implausibleValue = "implausible-value"
}

/// A reading refused, with the reason from PROTOCOL.md and a message naming what is wrong.
public struct ReadingRejection: Error, Hashable, Sendable, CustomStringConvertible {
    /// The protocol's reason.
    public var reason: RejectionReason
    /// What exactly is wrong, for a person.
    public var message: String

    /// Makes a rejection.
    public init(_ reason: RejectionReason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    /// `reason: message`.
    public var description: String { "\(reason.rawValue): \(message)" }
}

/// The value of a record: an integer or a floating-point number, as the device encoded it.
public enum ReadingValue: Hashable, Sendable {
    /// An integer value.
    case integer(Int64)
    /// A floating-point value.
    case float(Double)

    /// The value as a Double.
    public var doubleValue: Double {
        switch self {
        case .integer(let value): Double(value)
        case .float(let value): value
        }
    }

    /// The value as CBOR.
    public var cbor: CBOR {
        switch self {
        case .integer(let value): .int(value)
        case .float(let value): .float(value)
        }
    }
}

/// One measurement of a reading: SenML-labelled `{0: code, 1: unit, 2: value}`.
public struct ReadingRecord: Hashable, Sendable {
    /// The LOINC code.
    public var code: String
    /// The UCUM unit.
    public var unit: String
    /// The value.
    public var value: ReadingValue

    /// Makes a record.
    public init(code: String, unit: String, value: ReadingValue) {
        self.code = code
        self.unit = unit
        self.value = value
    }
}

/// The payload of a signed reading (PROTOCOL.md).
public struct Reading: Hashable, Sendable {
    /// The largest encoded signed reading a manager accepts.
    public static let maxEncodedBytes = 1024
    /// The most records one reading may hold.
    public static let maxRecords = 16

    /// The channel id.
    public var channel: String
    /// The device id.
    public var device: String
    /// The device's sequence number, from 1.
    public var seq: UInt64
    /// The device's clock, ms since the Unix epoch.
    public var time: UInt64
    /// 1 to 16 records.
    public var records: [ReadingRecord]

    /// Makes a reading.
    public init(channel: String, device: String, seq: UInt64, time: UInt64, records: [ReadingRecord]) {
        self.channel = channel
        self.device = device
        self.seq = seq
        self.time = time
        self.records = records
    }

    /// The payload map in deterministic encoding.
    public func payloadBytes() -> [UInt8] {
        let records = records.map { record in
            CBOR.map([
                CBORMapEntry(.unsigned(0), .text(record.code)),
                CBORMapEntry(.unsigned(1), .text(record.unit)),
                CBORMapEntry(.unsigned(2), record.value.cbor),
            ])
        }
        return CBOR.map([
            CBORMapEntry(.unsigned(1), .text(channel)),
            CBORMapEntry(.unsigned(2), .text(device)),
            CBORMapEntry(.unsigned(3), .unsigned(seq)),
            CBORMapEntry(.unsigned(4), .unsigned(time)),
            CBORMapEntry(.unsigned(5), .array(records)),
        ]).encoded()
    }

    /// Decodes a payload map (any valid encoding).
    /// - Parameter payload: the payload bytes of the COSE message.
    /// - Throws: a `.malformed` rejection naming the field that is wrong.
    public init(payload: [UInt8]) throws(ReadingRejection) {
        let map: CBOR
        do {
            map = try CBOR.decode(payload, limits: .reading)
        } catch {
            throw ReadingRejection(.malformed, "the payload is not CBOR: \(error)")
        }
        guard map.mapValue != nil else { throw ReadingRejection(.malformed, "the payload is not a map") }
        guard let channel = map[intKey: 1]?.textValue else {
            throw ReadingRejection(.malformed, "key 1 (channel) is missing or not text")
        }
        guard let device = map[intKey: 2]?.textValue else {
            throw ReadingRejection(.malformed, "key 2 (device) is missing or not text")
        }
        guard let seq = map[intKey: 3]?.wireUInt, seq >= 1 else {
            throw ReadingRejection(.malformed, "key 3 (seq) is missing or not an unsigned integer from 1 to 2^63-1")
        }
        guard let time = map[intKey: 4]?.wireUInt else {
            throw ReadingRejection(.malformed, "key 4 (time) is missing or not an unsigned integer up to 2^63-1")
        }
        guard let items = map[intKey: 5]?.arrayValue, (1...Self.maxRecords).contains(items.count) else {
            throw ReadingRejection(.malformed, "key 5 (records) is missing or not an array of 1 to 16 maps")
        }
        var records: [ReadingRecord] = []
        records.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            guard item.mapValue != nil, let code = item[intKey: 0]?.textValue, let unit = item[intKey: 1]?.textValue
            else {
                throw ReadingRejection(.malformed, "record \(index) lacks a text code (0) or unit (1)")
            }
            let value: ReadingValue
            switch item[intKey: 2] {
            case .unsigned(let raw)?:
                guard let int = Int64(exactly: raw) else {
                    throw ReadingRejection(.malformed, "record \(index): the value is out of range")
                }
                value = .integer(int)
            case .negative(let raw)?:
                guard raw < UInt64(Int64.max) else {
                    throw ReadingRejection(.malformed, "record \(index): the value is out of range")
                }
                value = .integer(-1 - Int64(raw))
            case .float(let double)?:
                value = .float(double)
            default:
                throw ReadingRejection(.malformed, "record \(index): the value (2) is missing or not a number")
            }
            records.append(ReadingRecord(code: code, unit: unit, value: value))
        }
        self.init(channel: channel, device: device, seq: seq, time: time, records: records)
    }
}

extension CBORLimits {
    /// Limits for a signed reading or its payload: nothing in a reading needs more.
    public static let reading = CBORLimits(
        maxDepth: 6, maxInputBytes: Reading.maxEncodedBytes, maxItems: 256, maxStringBytes: Reading.maxEncodedBytes,
        maxCollectionCount: 32)
}

/// A signed reading: the exact bytes the device sent, and what they say.
public struct SignedReading: Hashable, Sendable {
    /// The bytes exactly as the device signed and sent them.
    public let bytes: [UInt8]
    /// The COSE_Sign1 message.
    public let message: COSESign1
    /// The decoded payload.
    public let reading: Reading
    /// The device id the message names as its kid.
    public let keyID: String

    /// Decodes a signed reading: PROTOCOL.md's rule 1 (size and structure). The signature and
    /// the ledger rules are checked by `ReadingRules`.
    /// - Parameter bytes: the message as received.
    /// - Throws: a `.tooLarge` or `.malformed` rejection.
    public init(decoding bytes: [UInt8]) throws(ReadingRejection) {
        guard bytes.count <= Reading.maxEncodedBytes else {
            throw ReadingRejection(.tooLarge, "\(bytes.count) bytes, over the limit of \(Reading.maxEncodedBytes)")
        }
        let message: COSESign1
        do {
            message = try COSESign1(decoding: bytes, limits: .reading)
        } catch {
            throw ReadingRejection(.malformed, "not a COSE_Sign1 message: \(error)")
        }
        guard message.protectedHeader[intKey: 1] != nil else {
            throw ReadingRejection(.malformed, "the protected header names no algorithm (1)")
        }
        guard let kid = message.protectedHeader[intKey: 4]?.bytesValue,
            let keyID = String(validating: kid, as: UTF8.self), Identifiers.isValidNodeID(keyID)
        else {
            throw ReadingRejection(.malformed, "the protected header's kid (4) is missing or not a device id")
        }
        self.bytes = bytes
        self.message = message
        self.keyID = keyID
        self.reading = try Reading(payload: message.payload)
    }

    /// Signs a reading as a device does: protected `{1: alg, 4: kid}` with the device id as kid.
    /// - Parameters:
    ///   - reading: the payload.
    ///   - key: the device's private key.
    /// - Throws: `KeyError` when signing fails.
    public init(signing reading: Reading, with key: PrivateKey) throws(KeyError) {
        let message = try COSESign1.sign(payload: reading.payloadBytes(), keyID: Array(reading.device.utf8), key: key)
        self.bytes = message.encoded()
        self.message = message
        self.reading = reading
        self.keyID = reading.device
    }

    /// The bytes the signature covers.
    public var toBeSigned: [UInt8] {
        COSESign1.sigStructure(protectedBytes: message.protectedBytes, payload: message.payload)
    }
}

/// The syntax of names in the protocol.
public enum Identifiers {
    /// Whether a channel id is `[a-z0-9-]{1,32}`.
    /// - Parameter id: the candidate id.
    public static func isValidChannelID(_ id: String) -> Bool {
        let utf8 = id.utf8
        return (1...32).contains(utf8.count)
            && utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }

    /// Whether a device or node id is `[A-Za-z0-9._-]{1,64}`.
    /// - Parameter id: the candidate id.
    public static func isValidNodeID(_ id: String) -> Bool {
        let utf8 = id.utf8
        return (1...64).contains(utf8.count)
            && utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39)
                    || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D
            }
    }
}
