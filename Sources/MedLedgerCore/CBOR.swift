/// A CBOR data item (RFC 8949).
///
/// Equality and hashing follow the CBOR data model rather than Swift's defaults: text is
/// compared by its UTF-8 bytes (no Unicode normalisation), and floats are compared by bit
/// pattern except that every NaN equals every other NaN, so `0.0 != -0.0` and `NaN == NaN`.
/// Two values are equal exactly when their deterministic encodings are equal, except that
/// `simple(20...23)` share their encodings with `false`, `true`, `null` and `undefined`.
///
/// Operations that walk a value (encoding, comparison, hashing, diagnostic notation) recurse
/// once per nesting level; decoded values are bounded by ``CBORLimits/maxDepth``.
///
/// Only `tagged` is stored indirectly: boxing every case would cost one heap allocation per
/// integer or string and roughly double decoding time.
public enum CBOR: Sendable {
    /// An unsigned integer (major type 0).
    case unsigned(UInt64)
    /// A negative integer (major type 1) whose value is `-1 - n`.
    case negative(UInt64)
    /// A byte string (major type 2); indefinite-length strings decode to their concatenation.
    case bytes([UInt8])
    /// A UTF-8 text string (major type 3); indefinite-length strings decode to their concatenation.
    case text(String)
    /// An array of data items (major type 4).
    case array([CBOR])
    /// A map (major type 5), in the order given or decoded.
    case map([CBORMapEntry])
    /// A tag number and its content (major type 6).
    indirect case tagged(UInt64, CBOR)
    /// A simple value other than `false`, `true`, `null` and `undefined` (0...19 or 32...255).
    case simple(UInt8)
    /// The simple values `false` and `true`.
    case bool(Bool)
    /// The simple value `null`.
    case null
    /// The simple value `undefined`.
    case undefined
    /// A floating-point number; half, single and double precision all decode to this.
    case float(Double)
}

/// One key/value pair of a CBOR map.
public struct CBORMapEntry: Hashable, Sendable {
    /// The key.
    public var key: CBOR
    /// The value.
    public var value: CBOR

    /// Creates a map entry.
    ///
    /// - Parameters:
    ///   - key: The key.
    ///   - value: The value.
    public init(_ key: CBOR, _ value: CBOR) {
        self.key = key
        self.value = value
    }
}

// MARK: - Conveniences

extension CBOR {
    /// Returns the integer `value` as `unsigned` when it is non-negative, `negative` otherwise.
    ///
    /// - Parameter value: The integer.
    public static func int(_ value: Int64) -> CBOR {
        if value >= 0 {
            return .unsigned(UInt64(value))
        }
        return .negative(UInt64(-1 - value))
    }

    /// Creates an integer item, `unsigned` or `negative` according to the sign of `value`.
    ///
    /// - Parameter value: The integer.
    public init(_ value: Int) {
        self = .int(Int64(value))
    }

    /// The value of an `unsigned` item, or `nil` for anything else.
    public var uint64Value: UInt64? {
        if case .unsigned(let n) = self {
            return n
        }
        return nil
    }

    /// The largest unsigned integer any MedLedger message carries (2^63 − 1): seqs, times,
    /// heights, rounds, counts and positions all fit in SQLite's signed 64-bit integers and in
    /// `Int64`, so no conversion on their way from the wire to a store can trap.
    public static let maxWireInteger = UInt64(Int64.max)

    /// The value of an `unsigned` item from 0 to `maxWireInteger`, or `nil` for anything else:
    /// how every MedLedger decoder reads an unsigned field (docs/FORMATS.md, "Integers").
    public var wireUInt: UInt64? {
        if case .unsigned(let n) = self, n <= Self.maxWireInteger {
            return n
        }
        return nil
    }

    /// The value of an `unsigned` or `negative` item, or `nil` when it is another kind of item
    /// or does not fit in `Int64`.
    public var int64Value: Int64? {
        switch self {
        case .unsigned(let n):
            return n <= UInt64(Int64.max) ? Int64(n) : nil
        case .negative(let n):
            return n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        default:
            return nil
        }
    }

    /// The string of a `text` item, or `nil` for anything else.
    public var textValue: String? {
        if case .text(let s) = self {
            return s
        }
        return nil
    }

    /// The bytes of a `bytes` item, or `nil` for anything else.
    public var bytesValue: [UInt8]? {
        if case .bytes(let b) = self {
            return b
        }
        return nil
    }

    /// The elements of an `array` item, or `nil` for anything else.
    public var arrayValue: [CBOR]? {
        if case .array(let a) = self {
            return a
        }
        return nil
    }

    /// The entries of a `map` item, or `nil` for anything else.
    public var mapValue: [CBORMapEntry]? {
        if case .map(let m) = self {
            return m
        }
        return nil
    }

    /// The value of a `bool` item, or `nil` for anything else.
    public var boolValue: Bool? {
        if case .bool(let b) = self {
            return b
        }
        return nil
    }

    /// The value of a `float` item, or an integer item converted (rounding when needed), or `nil`.
    public var doubleValue: Double? {
        switch self {
        case .float(let d):
            return d
        case .unsigned(let n):
            return Double(n)
        case .negative(let n):
            return -1 - Double(n)
        default:
            return nil
        }
    }

    /// The tag number and content of a `tagged` item, or `nil` for anything else.
    public var taggedValue: (tag: UInt64, content: CBOR)? {
        if case .tagged(let tag, let content) = self {
            return (tag, content)
        }
        return nil
    }

    /// Looks up the first entry of a map whose key is the integer `intKey`; `nil` when there is
    /// none or this item is not a map.
    ///
    /// - Parameter intKey: The integer key.
    public subscript(intKey intKey: Int64) -> CBOR? {
        guard case .map(let entries) = self else {
            return nil
        }
        let key = CBOR.int(intKey)
        for entry in entries where entry.key == key {
            return entry.value
        }
        return nil
    }

    /// Looks up the first entry of a map whose key is the text `textKey` (compared by UTF-8
    /// bytes); `nil` when there is none or this item is not a map.
    ///
    /// - Parameter textKey: The text key.
    public subscript(textKey textKey: String) -> CBOR? {
        guard case .map(let entries) = self else {
            return nil
        }
        for entry in entries {
            if case .text(let s) = entry.key, cborUTF8Equal(s, textKey) {
                return entry.value
            }
        }
        return nil
    }
}

// MARK: - Literals

extension CBOR: ExpressibleByIntegerLiteral {
    /// Creates an integer item from a literal.
    ///
    /// - Parameter value: The literal's value.
    public init(integerLiteral value: Int64) {
        self = .int(value)
    }
}

extension CBOR: ExpressibleByFloatLiteral {
    /// Creates a `float` item from a literal.
    ///
    /// - Parameter value: The literal's value.
    public init(floatLiteral value: Double) {
        self = .float(value)
    }
}

extension CBOR: ExpressibleByStringLiteral {
    /// Creates a `text` item from a literal.
    ///
    /// - Parameter value: The literal's value.
    public init(stringLiteral value: String) {
        self = .text(value)
    }
}

extension CBOR: ExpressibleByBooleanLiteral {
    /// Creates a `bool` item from a literal.
    ///
    /// - Parameter value: The literal's value.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension CBOR: ExpressibleByNilLiteral {
    /// Creates `null` from the `nil` literal.
    ///
    /// - Parameter nilLiteral: Unused.
    public init(nilLiteral: ()) {
        self = .null
    }
}

extension CBOR: ExpressibleByArrayLiteral {
    /// Creates an `array` item from a literal.
    ///
    /// - Parameter elements: The elements.
    public init(arrayLiteral elements: CBOR...) {
        self = .array(elements)
    }
}

extension CBOR: ExpressibleByDictionaryLiteral {
    /// Creates a `map` item from a literal, keeping the literal's order (duplicates are kept too).
    ///
    /// - Parameter elements: The key/value pairs.
    public init(dictionaryLiteral elements: (CBOR, CBOR)...) {
        self = .map(elements.map { CBORMapEntry($0.0, $0.1) })
    }
}

// MARK: - Equality and hashing

extension CBOR: Hashable {
    /// Returns whether two items are the same CBOR value (see the type's documentation).
    ///
    /// - Parameters:
    ///   - lhs: An item.
    ///   - rhs: Another item.
    public static func == (lhs: CBOR, rhs: CBOR) -> Bool {
        switch (lhs, rhs) {
        case (.unsigned(let a), .unsigned(let b)):
            return a == b
        case (.negative(let a), .negative(let b)):
            return a == b
        case (.bytes(let a), .bytes(let b)):
            return a == b
        case (.text(let a), .text(let b)):
            return cborUTF8Equal(a, b)
        case (.array(let a), .array(let b)):
            return a == b
        case (.map(let a), .map(let b)):
            return a == b
        case (.tagged(let ta, let ca), .tagged(let tb, let cb)):
            return ta == tb && ca == cb
        case (.simple(let a), .simple(let b)):
            return a == b
        case (.bool(let a), .bool(let b)):
            return a == b
        case (.null, .null), (.undefined, .undefined):
            return true
        case (.float(let a), .float(let b)):
            return a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
        default:
            return false
        }
    }

    /// Hashes the item consistently with `==`.
    ///
    /// - Parameter hasher: The hasher to feed.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .unsigned(let n):
            hasher.combine(0 as UInt8)
            hasher.combine(n)
        case .negative(let n):
            hasher.combine(1 as UInt8)
            hasher.combine(n)
        case .bytes(let b):
            hasher.combine(2 as UInt8)
            hasher.combine(b)
        case .text(let s):
            hasher.combine(3 as UInt8)
            var text = s
            text.withUTF8 { utf8 in
                hasher.combine(utf8.count)
                hasher.combine(bytes: UnsafeRawBufferPointer(utf8))
            }
        case .array(let a):
            hasher.combine(4 as UInt8)
            hasher.combine(a)
        case .map(let m):
            hasher.combine(5 as UInt8)
            hasher.combine(m)
        case .tagged(let tag, let content):
            hasher.combine(6 as UInt8)
            hasher.combine(tag)
            content.hash(into: &hasher)
        case .simple(let v):
            hasher.combine(7 as UInt8)
            hasher.combine(v)
        case .bool(let b):
            hasher.combine(8 as UInt8)
            hasher.combine(b)
        case .null:
            hasher.combine(9 as UInt8)
        case .undefined:
            hasher.combine(10 as UInt8)
        case .float(let d):
            hasher.combine(11 as UInt8)
            hasher.combine(d.isNaN ? Double.nan.bitPattern : d.bitPattern)
        }
    }
}

/// Compares two strings by their UTF-8 bytes, without Unicode canonical equivalence.
func cborUTF8Equal(_ a: String, _ b: String) -> Bool {
    let au = a.utf8
    let bu = b.utf8
    guard au.count == bu.count else {
        return false
    }
    let fast = au.withContiguousStorageIfAvailable { ab in
        bu.withContiguousStorageIfAvailable { bb in
            ab.elementsEqual(bb)
        }
    }
    if let fast, let result = fast {
        return result
    }
    return au.elementsEqual(bu)
}
