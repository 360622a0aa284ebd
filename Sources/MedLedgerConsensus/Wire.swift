import MedLedgerCore

/// The ceilings every council message is checked against when it is decoded, so that hostile
/// input can't push a height or round to where arithmetic on it would overflow.
public enum ConsensusBounds {
    /// The highest height a message may name (2^62).
    public static let maxHeight: UInt64 = 1 << 62
    /// The highest round a message may name (2^32).
    public static let maxRound: UInt64 = 1 << 32
    /// The highest validator or manager index a message may name.
    public static let maxIndex: UInt64 = (1 << 16) - 1
    /// The longest signature accepted (Ed25519 and ES256 signatures have 64 bytes).
    public static let maxSignatureBytes = 256
}

/// Strict reading of the integer-keyed deterministic CBOR maps the council exchanges.
struct WireMap {
    let what: String
    private var entries: [UInt64: CBOR] = [:]

    /// Decodes `bytes` as one deterministic CBOR map with unsigned keys, all in `required` or `optional`.
    static func decode(
        _ bytes: [UInt8], what: String, limits: CBORLimits, required: Set<UInt64>, optional: Set<UInt64> = []
    ) throws(ConsensusError) -> WireMap {
        var limits = limits
        limits.requireDeterministic = true
        let item: CBOR
        do {
            item = try CBOR.decode(bytes, limits: limits)
        } catch {
            throw ConsensusError(.malformed, "\(what): \(error)")
        }
        return try WireMap(item, what: what, required: required, optional: optional)
    }

    /// Reads a CBOR item as such a map.
    init(_ item: CBOR, what: String, required: Set<UInt64>, optional: Set<UInt64> = []) throws(ConsensusError) {
        self.what = what
        guard let map = item.mapValue else { throw ConsensusError(.malformed, "\(what) is not a CBOR map") }
        for entry in map {
            guard let key = entry.key.wireUInt, required.contains(key) || optional.contains(key) else {
                throw ConsensusError(.malformed, "\(what) has an unexpected key \(entry.key)")
            }
            entries[key] = entry.value
        }
        for key in required.sorted() where entries[key] == nil {
            throw ConsensusError(.malformed, "\(what) lacks key \(key)")
        }
    }

    func value(_ key: UInt64) throws(ConsensusError) -> CBOR {
        guard let value = entries[key] else { throw ConsensusError(.malformed, "\(what) lacks key \(key)") }
        return value
    }

    func has(_ key: UInt64) -> Bool { entries[key] != nil }

    func text(_ key: UInt64) throws(ConsensusError) -> String {
        guard let text = try value(key).textValue else {
            throw ConsensusError(.malformed, "\(what): key \(key) is not a text string")
        }
        return text
    }

    func bytes(_ key: UInt64) throws(ConsensusError) -> [UInt8] {
        guard let bytes = try value(key).bytesValue else {
            throw ConsensusError(.malformed, "\(what): key \(key) is not a byte string")
        }
        return bytes
    }

    /// An unsigned integer up to `max` (at most 2^63-1, as every MedLedger integer:
    /// docs/FORMATS.md); a larger one is `outOfRange`.
    func unsigned(_ key: UInt64, max: UInt64 = CBOR.maxWireInteger) throws(ConsensusError) -> UInt64 {
        guard let number = try value(key).uint64Value else {
            throw ConsensusError(.malformed, "\(what): key \(key) is not an unsigned integer")
        }
        guard number <= min(max, CBOR.maxWireInteger) else {
            throw ConsensusError(.outOfRange, "\(what): key \(key) is above \(min(max, CBOR.maxWireInteger))")
        }
        return number
    }

    /// An unsigned integer or null.
    func optionalUnsigned(_ key: UInt64, max: UInt64 = CBOR.maxWireInteger) throws(ConsensusError) -> UInt64? {
        if try value(key) == .null { return nil }
        return try unsigned(key, max: max)
    }

    func hash(_ key: UInt64) throws(ConsensusError) -> Hash256 {
        guard let hash = Hash256(bytes: try bytes(key)) else {
            throw ConsensusError(.malformed, "\(what): key \(key) is not a 32-byte hash")
        }
        return hash
    }

    /// A 32-byte hash or null.
    func optionalHash(_ key: UInt64) throws(ConsensusError) -> Hash256? {
        if try value(key) == .null { return nil }
        return try hash(key)
    }

    func array(_ key: UInt64) throws(ConsensusError) -> [CBOR] {
        guard let items = try value(key).arrayValue else {
            throw ConsensusError(.malformed, "\(what): key \(key) is not an array")
        }
        return items
    }

    func channel(_ key: UInt64) throws(ConsensusError) -> String {
        let channel = try text(key)
        guard channel.utf8.count <= 32 else { throw ConsensusError(.malformed, "\(what): the channel id is too long") }
        return channel
    }

    func signature(_ key: UInt64) throws(ConsensusError) -> [UInt8] {
        let signature = try bytes(key)
        guard signature.count <= ConsensusBounds.maxSignatureBytes else {
            throw ConsensusError(.malformed, "\(what): the signature has \(signature.count) bytes")
        }
        return signature
    }
}
