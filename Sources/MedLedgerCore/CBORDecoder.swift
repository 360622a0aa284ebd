/// Bounds on what `CBOR.decode(_:limits:)` accepts, so hostile input costs bounded time and
/// memory.
public struct CBORLimits: Hashable, Sendable {
    /// The deepest nesting allowed: the top-level item is at depth 1 and each enclosing array,
    /// map or tag adds one. Values above ``depthCeiling`` act as ``depthCeiling``.
    public var maxDepth: Int
    /// The largest input accepted, in bytes.
    public var maxInputBytes: Int
    /// The most data items (every head: integers, strings and their chunks, arrays, maps, tags,
    /// simple values and floats) one input may hold.
    public var maxItems: Int
    /// The longest byte or text string, in bytes (for indefinite-length strings, the total).
    public var maxStringBytes: Int
    /// The most elements of one array or pairs of one map.
    public var maxCollectionCount: Int
    /// Whether input must be in core deterministic encoding (RFC 8949 §4.2.1): shortest-form
    /// arguments, definite lengths, map keys in strictly increasing bytewise order of their
    /// encodings, and floats in their shortest exact form with NaN as `f97e00`.
    public var requireDeterministic: Bool

    /// The hard upper bound on ``maxDepth``. The decoder recurses once per level; at 64 levels its
    /// stack use stays under about 200 KB even in debug builds on 512 KB secondary threads.
    public static let depthCeiling = 64

    /// The defaults: depth 16, 1 MiB of input, 65,536 items, 1 MiB strings, 65,536 elements.
    public static let `default` = CBORLimits()

    /// The defaults with ``requireDeterministic`` set.
    public static let deterministic = CBORLimits(requireDeterministic: true)

    /// Creates limits; every parameter defaults to the value in ``default``.
    ///
    /// - Parameters:
    ///   - maxDepth: The deepest nesting allowed (top level is 1).
    ///   - maxInputBytes: The largest input accepted, in bytes.
    ///   - maxItems: The most data items in one input.
    ///   - maxStringBytes: The longest byte or text string, in bytes.
    ///   - maxCollectionCount: The most elements of one array or pairs of one map.
    ///   - requireDeterministic: Whether input must be in core deterministic encoding.
    public init(
        maxDepth: Int = 16,
        maxInputBytes: Int = 1 << 20,
        maxItems: Int = 65_536,
        maxStringBytes: Int = 1 << 20,
        maxCollectionCount: Int = 65_536,
        requireDeterministic: Bool = false
    ) {
        self.maxDepth = maxDepth
        self.maxInputBytes = maxInputBytes
        self.maxItems = maxItems
        self.maxStringBytes = maxStringBytes
        self.maxCollectionCount = maxCollectionCount
        self.requireDeterministic = requireDeterministic
    }
}

/// Why an input was rejected by the CBOR decoder, and where.
public struct CBORError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of problem.
    public enum Code: String, Hashable, Sendable {
        /// The input ends before the item does (also: empty input).
        case truncated
        /// Bytes remain after the single top-level item.
        case trailingBytes
        /// A head uses additional information 28, 29 or 30.
        case reservedAdditionalInfo
        /// Additional information 31 (indefinite length) on an integer or a tag.
        case invalidIndefiniteLength
        /// A break (`ff`) outside an indefinite-length item, or where a map value is expected.
        case invalidBreak
        /// A chunk of an indefinite-length string has another major type or is itself indefinite.
        case invalidIndefiniteString
        /// A text string (or one of its chunks) is not valid UTF-8.
        case invalidUTF8
        /// A map holds two equal keys.
        case duplicateMapKey
        /// A two-byte simple value (`f8 xx`) below 32.
        case invalidSimpleValue
        /// Nesting deeper than ``CBORLimits/maxDepth``.
        case depthExceeded
        /// More data items than ``CBORLimits/maxItems``.
        case tooManyItems
        /// A string longer than ``CBORLimits/maxStringBytes``.
        case stringTooLong
        /// An array or map larger than ``CBORLimits/maxCollectionCount``.
        case collectionTooLarge
        /// An input longer than ``CBORLimits/maxInputBytes``.
        case inputTooLarge
        /// Well-formed but not in core deterministic encoding, with ``CBORLimits/requireDeterministic``.
        case notDeterministic
    }

    /// The kind of problem.
    public var code: Code
    /// The byte offset in the input (from the start of the given array or slice) of the problem.
    public var offset: Int
    /// A sentence naming what is wrong and where.
    public var message: String

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The kind of problem.
    ///   - offset: The byte offset of the problem.
    ///   - message: A sentence naming what is wrong and where.
    public init(_ code: Code, offset: Int, message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    /// The code, offset and message together.
    public var description: String {
        "CBOR \(code.rawValue) at offset \(offset): \(message)"
    }
}

extension CBOR {
    /// Decodes exactly one data item that spans all of `bytes`.
    ///
    /// Every well-formed item is accepted unless ``CBORLimits/requireDeterministic`` is set:
    /// non-shortest arguments, indefinite-length strings, arrays and maps (strings decode to
    /// their concatenation), and any tag number (tag content is not checked). Duplicate map keys,
    /// invalid UTF-8, two-byte simple values below 32 and everything past `limits` are rejected.
    ///
    /// - Parameters:
    ///   - bytes: The encoded item.
    ///   - limits: The bounds to enforce.
    /// - Throws: A ``CBORError`` naming the first problem found.
    public static func decode(_ bytes: [UInt8], limits: CBORLimits = .default) throws(CBORError) -> CBOR {
        try bytes.withUnsafeBufferPointer { (buffer) throws(CBORError) -> CBOR in
            try decodeWhole(buffer, limits: limits)
        }
    }

    /// Decodes exactly one data item that spans all of `bytes`; offsets in errors count from
    /// the slice's first byte.
    ///
    /// - Parameters:
    ///   - bytes: The encoded item.
    ///   - limits: The bounds to enforce.
    /// - Throws: A ``CBORError`` naming the first problem found.
    public static func decode(_ bytes: ArraySlice<UInt8>, limits: CBORLimits = .default) throws(CBORError) -> CBOR {
        try bytes.withUnsafeBufferPointer { (buffer) throws(CBORError) -> CBOR in
            try decodeWhole(buffer, limits: limits)
        }
    }

    /// Decodes the first data item of `bytes`, ignoring what follows it.
    ///
    /// ``CBORLimits/maxInputBytes`` applies to the whole of `bytes`.
    ///
    /// - Parameters:
    ///   - bytes: Input starting with an encoded item.
    ///   - limits: The bounds to enforce.
    /// - Returns: The item and the number of bytes it occupies.
    /// - Throws: A ``CBORError`` naming the first problem found.
    public static func decodePrefix(
        _ bytes: ArraySlice<UInt8>,
        limits: CBORLimits = .default
    ) throws(CBORError) -> (item: CBOR, length: Int) {
        try bytes.withUnsafeBufferPointer { (buffer) throws(CBORError) -> (item: CBOR, length: Int) in
            var reader = try CBORByteReader(buffer, limits: limits)
            let item = try reader.decodeItem(depth: 1)
            return (item, reader.position)
        }
    }

    /// Returns whether `bytes` is one well-formed item in core deterministic encoding within the
    /// default limits.
    ///
    /// - Parameter bytes: The encoded item.
    public static func isDeterministic(_ bytes: [UInt8]) -> Bool {
        (try? decode(bytes, limits: .deterministic)) != nil
    }

    private static func decodeWhole(
        _ buffer: UnsafeBufferPointer<UInt8>,
        limits: CBORLimits
    ) throws(CBORError) -> CBOR {
        var reader = try CBORByteReader(buffer, limits: limits)
        let item = try reader.decodeItem(depth: 1)
        if reader.position != buffer.count {
            throw CBORError(
                .trailingBytes,
                offset: reader.position,
                message:
                    "\(buffer.count - reader.position) byte(s) follow the item that ends at offset \(reader.position)"
            )
        }
        return item
    }
}

/// The decoder's state: a cursor over the input and the budgets left.
private struct CBORByteReader {
    let buffer: UnsafeBufferPointer<UInt8>
    var position = 0
    var itemsLeft: Int
    let maxDepth: Int
    let maxStringBytes: Int
    let maxCollectionCount: Int
    let deterministic: Bool

    init(_ buffer: UnsafeBufferPointer<UInt8>, limits: CBORLimits) throws(CBORError) {
        if buffer.count > limits.maxInputBytes {
            throw CBORError(
                .inputTooLarge,
                offset: 0,
                message: "input of \(buffer.count) bytes exceeds the limit of \(limits.maxInputBytes)"
            )
        }
        self.buffer = buffer
        itemsLeft = max(limits.maxItems, 0)
        maxDepth = min(limits.maxDepth, CBORLimits.depthCeiling)
        maxStringBytes = limits.maxStringBytes
        maxCollectionCount = limits.maxCollectionCount
        deterministic = limits.requireDeterministic
    }

    var remaining: Int { buffer.count - position }

    /// Decodes one item at `position`; `depth` is its nesting depth (top level 1).
    mutating func decodeItem(depth: Int) throws(CBORError) -> CBOR {
        // Kept small, with the work and the error messages in other functions, because its
        // frame is paid once per nesting level.
        let start = position
        if depth > maxDepth {
            throw depthError(depth: depth, start: start)
        }
        guard position < buffer.count else {
            throw missingItemError(start: start)
        }
        let initial = buffer[position]
        position += 1
        try countItem(at: start)
        let info = initial & 0x1F
        switch initial >> 5 {
        case 0:
            return .unsigned(try argument(info, major: 0, start: start))
        case 1:
            return .negative(try argument(info, major: 1, start: start))
        case 2:
            return .bytes(try byteString(info, start: start))
        case 3:
            return .text(try textString(info, start: start))
        case 4:
            return .array(try array(info, start: start, depth: depth))
        case 5:
            return .map(try map(info, start: start, depth: depth))
        case 6:
            let tag = try argument(info, major: 6, start: start)
            return .tagged(tag, try decodeItem(depth: depth + 1))
        default:
            return try simpleOrFloat(info, start: start)
        }
    }

    private func missingItemError(start: Int) -> CBORError {
        CBORError(.truncated, offset: start, message: "input ends at offset \(start) where an item is expected")
    }

    private func depthError(depth: Int, start: Int) -> CBORError {
        CBORError(
            .depthExceeded,
            offset: start,
            message: "item at offset \(start) is nested \(depth) deep, past the limit of \(maxDepth)"
        )
    }

    private mutating func byteString(_ info: UInt8, start: Int) throws(CBORError) -> [UInt8] {
        if info == 31 {
            return try indefiniteString(major: 2, start: start)
        }
        let length = try argument(info, major: 2, start: start)
        let count = try stringLength(length, start: start)
        let bytes = Array(UnsafeBufferPointer(rebasing: buffer[position..<position + count]))
        position += count
        return bytes
    }

    private mutating func textString(_ info: UInt8, start: Int) throws(CBORError) -> String {
        if info == 31 {
            return String(decoding: try indefiniteString(major: 3, start: start), as: UTF8.self)
        }
        let length = try argument(info, major: 3, start: start)
        let count = try stringLength(length, start: start)
        let text = try utf8String(position..<position + count, start: start)
        position += count
        return text
    }

    private mutating func array(_ info: UInt8, start: Int, depth: Int) throws(CBORError) -> [CBOR] {
        if info == 31 {
            return try indefiniteArray(start: start, depth: depth)
        }
        let length = try argument(info, major: 4, start: start)
        let count = try collectionCount(length, minimumItemBytes: 1, start: start)
        var elements: [CBOR] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            elements.append(try decodeItem(depth: depth + 1))
        }
        return elements
    }

    private mutating func map(_ info: UInt8, start: Int, depth: Int) throws(CBORError) -> [CBORMapEntry] {
        if info == 31 {
            return try indefiniteMap(start: start, depth: depth)
        }
        let length = try argument(info, major: 5, start: start)
        let count = try collectionCount(length, minimumItemBytes: 2, start: start)
        var entries: [CBORMapEntry] = []
        entries.reserveCapacity(count)
        var keys = CBORKeyTracker()
        for _ in 0..<count {
            let keyStart = position
            let key = try decodeItem(depth: depth + 1)
            try checkKey(key, keyStart: keyStart, entries: entries, keys: &keys)
            entries.append(CBORMapEntry(key, try decodeItem(depth: depth + 1)))
        }
        return entries
    }

    private mutating func countItem(at start: Int) throws(CBORError) {
        itemsLeft -= 1
        if itemsLeft < 0 {
            throw CBORError(.tooManyItems, offset: start, message: "item at offset \(start) exceeds the item limit")
        }
    }

    /// Reads `count` bytes after the initial byte, big-endian, checking they are there.
    @inline(__always)
    private mutating func readBigEndian(_ count: Int, start: Int, what: String) throws(CBORError) -> UInt64 {
        guard remaining >= count else {
            throw CBORError(
                .truncated,
                offset: start,
                message: "\(what) at offset \(start) needs \(count) more byte(s), \(remaining) remain"
            )
        }
        var value: UInt64 = 0
        for i in 0..<count {
            value = value << 8 | UInt64(buffer[position + i])
        }
        position += count
        return value
    }

    /// Reads the argument of a head whose additional information is `info` (not 31 for strings
    /// and collections, which handle indefinite lengths before calling this).
    @inline(__always)
    private mutating func argument(_ info: UInt8, major: UInt8, start: Int) throws(CBORError) -> UInt64 {
        if info < 24 {
            return UInt64(info)
        }
        let value: UInt64
        let shortestBound: UInt64
        switch info {
        case 24:
            value = try readBigEndian(1, start: start, what: "1-byte argument")
            shortestBound = 24
        case 25:
            value = try readBigEndian(2, start: start, what: "2-byte argument")
            shortestBound = 0x100
        case 26:
            value = try readBigEndian(4, start: start, what: "4-byte argument")
            shortestBound = 0x1_0000
        case 27:
            value = try readBigEndian(8, start: start, what: "8-byte argument")
            shortestBound = 0x1_0000_0000
        case 31:
            throw CBORError(
                .invalidIndefiniteLength,
                offset: start,
                message: "major type \(major) at offset \(start) cannot have an indefinite length"
            )
        default:
            throw CBORError(
                .reservedAdditionalInfo,
                offset: start,
                message: "head at offset \(start) uses reserved additional information \(info)"
            )
        }
        if deterministic && value < shortestBound {
            throw CBORError(
                .notDeterministic,
                offset: start,
                message: "argument \(value) at offset \(start) is not in its shortest form"
            )
        }
        return value
    }

    /// Checks a definite string length against the input left and the limit.
    @inline(__always)
    private func stringLength(_ length: UInt64, start: Int) throws(CBORError) -> Int {
        guard length <= UInt64(remaining) else {
            throw CBORError(
                .truncated,
                offset: start,
                message: "string of \(length) bytes at offset \(start) runs past the end (\(remaining) bytes remain)"
            )
        }
        let count = Int(length)
        if count > maxStringBytes {
            throw CBORError(
                .stringTooLong,
                offset: start,
                message: "string of \(count) bytes at offset \(start) exceeds the limit of \(maxStringBytes)"
            )
        }
        return count
    }

    /// Checks a definite array or map size against the input left and the limit.
    @inline(__always)
    private func collectionCount(_ count: UInt64, minimumItemBytes: Int, start: Int) throws(CBORError) -> Int {
        guard count <= UInt64(remaining / minimumItemBytes) else {
            throw CBORError(
                .truncated,
                offset: start,
                message: "\(minimumItemBytes == 1 ? "array" : "map") of \(count) at offset \(start) "
                    + "cannot fit in the \(remaining) bytes that remain"
            )
        }
        let n = Int(count)
        if n > maxCollectionCount {
            throw CBORError(
                .collectionTooLarge,
                offset: start,
                message: "\(minimumItemBytes == 1 ? "array" : "map") of \(n) at offset \(start) "
                    + "exceeds the limit of \(maxCollectionCount)"
            )
        }
        return n
    }

    /// Validates the UTF-8 in `range` and returns it as a string.
    @inline(__always)
    private func utf8String(_ range: Range<Int>, start: Int) throws(CBORError) -> String {
        if range.isEmpty {
            return ""
        }
        let bytes = UnsafeBufferPointer(rebasing: buffer[range])
        guard cborIsValidUTF8(bytes) else {
            throw CBORError(.invalidUTF8, offset: start, message: "text string at offset \(start) is not valid UTF-8")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func notDeterministic(_ what: String, start: Int) -> CBORError {
        CBORError(
            .notDeterministic, offset: start,
            message: "\(what) at offset \(start) is not allowed in deterministic encoding")
    }

    /// Reads the chunks of an indefinite-length byte (major 2) or text (major 3) string.
    private mutating func indefiniteString(major: UInt8, start: Int) throws(CBORError) -> [UInt8] {
        if deterministic {
            throw notDeterministic("indefinite-length string", start: start)
        }
        let kind = major == 2 ? "byte" : "text"
        var result: [UInt8] = []
        while true {
            let chunkStart = position
            guard position < buffer.count else {
                throw CBORError(
                    .truncated,
                    offset: chunkStart,
                    message: "indefinite-length \(kind) string from offset \(start) has no break"
                )
            }
            let initial = buffer[position]
            if initial == 0xFF {
                position += 1
                return result
            }
            if initial >> 5 != major || initial & 0x1F == 31 {
                throw CBORError(
                    .invalidIndefiniteString,
                    offset: chunkStart,
                    message: "chunk at offset \(chunkStart) of the indefinite-length \(kind) string from offset "
                        + "\(start) is not a definite-length \(kind) string"
                )
            }
            position += 1
            try countItem(at: chunkStart)
            let length = try argument(initial & 0x1F, major: major, start: chunkStart)
            let count = try stringLength(length, start: chunkStart)
            if count > maxStringBytes - result.count {
                throw CBORError(
                    .stringTooLong,
                    offset: chunkStart,
                    message: "indefinite-length \(kind) string from offset \(start) exceeds the limit of "
                        + "\(maxStringBytes) bytes at the chunk at offset \(chunkStart)"
                )
            }
            let chunk = UnsafeBufferPointer(rebasing: buffer[position..<position + count])
            if major == 3 && !cborIsValidUTF8(chunk) {
                throw CBORError(
                    .invalidUTF8,
                    offset: chunkStart,
                    message: "text chunk at offset \(chunkStart) is not valid UTF-8"
                )
            }
            result.append(contentsOf: chunk)
            position += count
        }
    }

    private mutating func indefiniteArray(start: Int, depth: Int) throws(CBORError) -> [CBOR] {
        if deterministic {
            throw notDeterministic("indefinite-length array", start: start)
        }
        var elements: [CBOR] = []
        while true {
            guard position < buffer.count else {
                throw CBORError(
                    .truncated,
                    offset: position,
                    message: "indefinite-length array from offset \(start) has no break"
                )
            }
            if buffer[position] == 0xFF {
                position += 1
                return elements
            }
            if elements.count >= maxCollectionCount {
                throw CBORError(
                    .collectionTooLarge,
                    offset: position,
                    message: "indefinite-length array from offset \(start) exceeds the limit of \(maxCollectionCount)"
                )
            }
            elements.append(try decodeItem(depth: depth + 1))
        }
    }

    private mutating func indefiniteMap(start: Int, depth: Int) throws(CBORError) -> [CBORMapEntry] {
        if deterministic {
            throw notDeterministic("indefinite-length map", start: start)
        }
        var entries: [CBORMapEntry] = []
        var keys = CBORKeyTracker()
        while true {
            guard position < buffer.count else {
                throw CBORError(
                    .truncated,
                    offset: position,
                    message: "indefinite-length map from offset \(start) has no break"
                )
            }
            if buffer[position] == 0xFF {
                position += 1
                return entries
            }
            if entries.count >= maxCollectionCount {
                throw CBORError(
                    .collectionTooLarge,
                    offset: position,
                    message: "indefinite-length map from offset \(start) exceeds the limit of \(maxCollectionCount)"
                )
            }
            let keyStart = position
            let key = try decodeItem(depth: depth + 1)
            try checkKey(key, keyStart: keyStart, entries: entries, keys: &keys)
            entries.append(CBORMapEntry(key, try decodeItem(depth: depth + 1)))
        }
    }

    /// Rejects a key equal to an earlier one, or (deterministic) not above the previous key.
    @inline(__always)
    private func checkKey(
        _ key: CBOR,
        keyStart: Int,
        entries: [CBORMapEntry],
        keys: inout CBORKeyTracker
    ) throws(CBORError) {
        let keyRange = keyStart..<position
        defer { keys.previous = keyRange }
        let duplicate: Bool
        if deterministic {
            // Keys are themselves deterministic, so equal values have equal encodings.
            guard let previous = keys.previous else {
                return
            }
            let order = cborCompareBytes(buffer, previous, keyRange)
            if order > 0 {
                throw CBORError(
                    .notDeterministic,
                    offset: keyStart,
                    message:
                        "map key at offset \(keyStart) sorts before the previous key at offset \(previous.lowerBound)"
                )
            }
            duplicate = order == 0
        } else if let inserted = keys.seen?.insert(key).inserted {
            duplicate = !inserted
        } else if entries.count < 16 {
            duplicate = entries.contains { $0.key == key }
        } else {
            var seen = Set<CBOR>(minimumCapacity: entries.count * 2)
            for entry in entries {
                seen.insert(entry.key)
            }
            duplicate = !seen.insert(key).inserted
            keys.seen = seen
        }
        if duplicate {
            throw CBORError(
                .duplicateMapKey, offset: keyStart, message: "map key at offset \(keyStart) repeats an earlier key")
        }
    }

    /// Decodes major type 7: simple values, floats, and the misplaced break.
    private mutating func simpleOrFloat(_ info: UInt8, start: Int) throws(CBORError) -> CBOR {
        switch info {
        case 0..<20:
            return .simple(info)
        case 20:
            return .bool(false)
        case 21:
            return .bool(true)
        case 22:
            return .null
        case 23:
            return .undefined
        case 24:
            let value = UInt8(try readBigEndian(1, start: start, what: "simple value"))
            if value < 32 {
                throw CBORError(
                    .invalidSimpleValue,
                    offset: start,
                    message: "two-byte simple value \(value) at offset \(start) is below 32"
                )
            }
            return .simple(value)
        case 25:
            let bits = try readBigEndian(2, start: start, what: "half-precision float")
            return try float(cborDoubleFromHalf(UInt16(bits)), size: 2, bits: bits, start: start)
        case 26:
            let bits = try readBigEndian(4, start: start, what: "single-precision float")
            return try float(Double(Float(bitPattern: UInt32(bits))), size: 4, bits: bits, start: start)
        case 27:
            let bits = try readBigEndian(8, start: start, what: "double-precision float")
            return try float(Double(bitPattern: bits), size: 8, bits: bits, start: start)
        case 31:
            throw CBORError(
                .invalidBreak,
                offset: start,
                message: "break at offset \(start) is not inside an indefinite-length item, or stands for a map value"
            )
        default:
            throw CBORError(
                .reservedAdditionalInfo,
                offset: start,
                message: "head at offset \(start) uses reserved additional information \(info)"
            )
        }
    }

    @inline(__always)
    private func float(_ value: Double, size: Int, bits: UInt64, start: Int) throws(CBORError) -> CBOR {
        if deterministic {
            let preferred = cborPreferredFloat(value)
            if preferred.size != size || preferred.bits != bits {
                throw CBORError(
                    .notDeterministic,
                    offset: start,
                    message: "float at offset \(start) is not in its shortest exact form"
                )
            }
        }
        return .float(value)
    }
}

/// Returns whether `bytes` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF).
private func cborIsValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    let count = bytes.count
    var i = 0
    while i < count {
        let lead = bytes[i]
        if lead < 0x80 {
            i += 1
            continue
        }
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF:
            length = 2
        case 0xE0:
            length = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF:
            length = 3
        case 0xED:
            length = 3
            high = 0x9F
        case 0xF0:
            length = 4
            low = 0x90
        case 0xF1...0xF3:
            length = 4
        case 0xF4:
            length = 4
            high = 0x8F
        default:
            return false
        }
        guard count - i >= length else {
            return false
        }
        let second = bytes[i + 1]
        guard second >= low && second <= high else {
            return false
        }
        var j = 2
        while j < length {
            guard bytes[i + j] & 0xC0 == 0x80 else {
                return false
            }
            j += 1
        }
        i += length
    }
    return true
}

/// What a map decoder remembers about the keys seen so far.
private struct CBORKeyTracker {
    /// The encoded range of the previous key (used when deterministic).
    var previous: Range<Int>?
    /// The keys so far, once the map is too big for linear search.
    var seen: Set<CBOR>?
}
