extension CBOR {
    /// Returns the item's core deterministic encoding (RFC 8949 §4.2.1).
    ///
    /// See ``encode(into:)`` for the rules applied.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        encode(into: &out)
        return out
    }

    /// Appends the item's core deterministic encoding (RFC 8949 §4.2.1) to `out`.
    ///
    /// Arguments take their shortest form, lengths are always definite, map entries are written
    /// in the bytewise lexicographic order of their encoded keys, and floats use the shortest of
    /// half, single and double precision that holds the value exactly (every NaN is written as
    /// `f97e00`, infinities as half precision).
    ///
    /// Encoding never fails and never traps. Whatever the caller builds is written faithfully,
    /// which can make the output invalid for strict decoders: map entries with equal keys are all
    /// written (sorted, in their given order among themselves), `simple(20...23)` are written as
    /// `false`, `true`, `null` and `undefined`, and `simple(24...31)`, which have no valid
    /// encoding, are written as the two-byte form `f8 xx` that decoders reject.
    ///
    /// - Parameter out: The buffer to append to.
    public func encode(into out: inout [UInt8]) {
        switch self {
        case .unsigned(let n):
            cborAppendHead(0x00, n, to: &out)
        case .negative(let n):
            cborAppendHead(0x20, n, to: &out)
        case .bytes(let b):
            cborAppendHead(0x40, UInt64(b.count), to: &out)
            out.append(contentsOf: b)
        case .text(let s):
            let utf8 = s.utf8
            cborAppendHead(0x60, UInt64(utf8.count), to: &out)
            out.append(contentsOf: utf8)
        case .array(let elements):
            cborAppendHead(0x80, UInt64(elements.count), to: &out)
            for element in elements {
                element.encode(into: &out)
            }
        case .map(let entries):
            cborEncodeMap(entries, into: &out)
        case .tagged(let tag, let content):
            cborAppendHead(0xC0, tag, to: &out)
            content.encode(into: &out)
        case .simple(let v):
            if v < 24 {
                out.append(0xE0 | v)
            } else {
                out.append(0xF8)
                out.append(v)
            }
        case .bool(let b):
            out.append(b ? 0xF5 : 0xF4)
        case .null:
            out.append(0xF6)
        case .undefined:
            out.append(0xF7)
        case .float(let d):
            let (size, bits) = cborPreferredFloat(d)
            switch size {
            case 2:
                out.append(0xF9)
                cborAppendBigEndian(bits, byteCount: 2, to: &out)
            case 4:
                out.append(0xFA)
                cborAppendBigEndian(bits, byteCount: 4, to: &out)
            default:
                out.append(0xFB)
                cborAppendBigEndian(bits, byteCount: 8, to: &out)
            }
        }
    }
}

/// Appends a head: the major type bits `major` (already shifted) and the argument in shortest form.
@inline(__always)
private func cborAppendHead(_ major: UInt8, _ argument: UInt64, to out: inout [UInt8]) {
    if argument < 24 {
        out.append(major | UInt8(argument))
    } else if argument <= 0xFF {
        out.append(major | 24)
        out.append(UInt8(argument))
    } else if argument <= 0xFFFF {
        out.append(major | 25)
        cborAppendBigEndian(argument, byteCount: 2, to: &out)
    } else if argument <= 0xFFFF_FFFF {
        out.append(major | 26)
        cborAppendBigEndian(argument, byteCount: 4, to: &out)
    } else {
        out.append(major | 27)
        cborAppendBigEndian(argument, byteCount: 8, to: &out)
    }
}

/// Appends the low `byteCount` bytes of `value`, most significant first.
@inline(__always)
private func cborAppendBigEndian(_ value: UInt64, byteCount: Int, to out: inout [UInt8]) {
    var shift = (byteCount - 1) * 8
    while shift >= 0 {
        out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        shift -= 8
    }
}

/// Writes a map with its entries ordered by their encoded keys (stable for equal keys).
private func cborEncodeMap(_ entries: [CBORMapEntry], into out: inout [UInt8]) {
    cborAppendHead(0xA0, UInt64(entries.count), to: &out)
    // The common case: keys already in order. Write the pairs, checking each key against the last.
    let regionStart = out.count
    var previousKey = 0..<0
    for (index, entry) in entries.enumerated() {
        let keyStart = out.count
        entry.key.encode(into: &out)
        let key = keyStart..<out.count
        if index > 0 && cborCompareBytes(out, previousKey, key) > 0 {
            out.removeSubrange(regionStart...)
            cborEncodeUnsortedPairs(entries, into: &out)
            return
        }
        previousKey = key
        entry.value.encode(into: &out)
    }
}

/// Writes the pairs of a map whose keys are out of order: each pair is encoded, then the written
/// pairs are reordered by key bytes (equal keys keep their given order).
private func cborEncodeUnsortedPairs(_ entries: [CBORMapEntry], into out: inout [UInt8]) {
    var pairs: [UInt8] = []
    var spans: [(keyStart: Int, keyEnd: Int, end: Int)] = []
    spans.reserveCapacity(entries.count)
    for entry in entries {
        let keyStart = pairs.count
        entry.key.encode(into: &pairs)
        let keyEnd = pairs.count
        entry.value.encode(into: &pairs)
        spans.append((keyStart, keyEnd, pairs.count))
    }
    let order = spans.indices.sorted { i, j in
        let c = cborCompareBytes(pairs, spans[i].keyStart..<spans[i].keyEnd, spans[j].keyStart..<spans[j].keyEnd)
        return c != 0 ? c < 0 : i < j
    }
    out.reserveCapacity(out.count + pairs.count)
    for i in order {
        out.append(contentsOf: pairs[spans[i].keyStart..<spans[i].end])
    }
}

/// Compares two ranges of `bytes` in bytewise lexicographic order: negative, zero or positive.
func cborCompareBytes(_ bytes: [UInt8], _ a: Range<Int>, _ b: Range<Int>) -> Int {
    bytes.withUnsafeBufferPointer { buffer in
        cborCompareBytes(buffer, a, b)
    }
}

/// Compares two ranges of `buffer` in bytewise lexicographic order: negative, zero or positive.
@inline(__always)
func cborCompareBytes(_ buffer: UnsafeBufferPointer<UInt8>, _ a: Range<Int>, _ b: Range<Int>) -> Int {
    let common = min(a.count, b.count)
    var i = 0
    while i < common {
        let x = buffer[a.lowerBound + i]
        let y = buffer[b.lowerBound + i]
        if x != y {
            return x < y ? -1 : 1
        }
        i += 1
    }
    return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
}

/// The preferred (shortest exact) encoding of a float: its size in bytes (2, 4 or 8) and bits.
func cborPreferredFloat(_ d: Double) -> (size: Int, bits: UInt64) {
    if d.isNaN {
        return (2, 0x7E00)
    }
    if let half = cborHalfBits(exactly: d) {
        return (2, UInt64(half))
    }
    let single = Float(d)
    if Double(single) == d {
        return (4, UInt64(single.bitPattern))
    }
    return (8, d.bitPattern)
}

/// The IEEE 754 half-precision bits of a non-NaN `d` when it is exactly representable, else `nil`.
private func cborHalfBits(exactly d: Double) -> UInt16? {
    let sign: UInt16 = d.sign == .minus ? 0x8000 : 0
    let magnitude = d.magnitude
    if magnitude.isInfinite {
        return sign | 0x7C00
    }
    if magnitude == 0 {
        return sign
    }
    let exponent = magnitude.exponent
    if exponent > 15 || exponent < -24 {
        return nil
    }
    let fraction = magnitude.significandBitPattern
    if exponent >= -14 {
        // A normal half: 10 fraction bits, so the double's low 42 fraction bits must be zero.
        guard fraction & ((1 << 42) - 1) == 0 else {
            return nil
        }
        return sign | UInt16(exponent + 15) << 10 | UInt16(fraction >> 42)
    }
    // A subnormal half: k * 2^-24 with k below 1024. The double is (2^52 + fraction) * 2^(exponent - 52),
    // so k is that significand shifted right by 28 - exponent, if no set bits are lost.
    let significand = (1 << 52) | fraction
    let shift = UInt64(28 - exponent)
    guard significand & ((1 << shift) - 1) == 0 else {
        return nil
    }
    return sign | UInt16(significand >> shift)
}

/// Converts IEEE 754 half-precision bits to a `Double` (exactly; NaN payloads are kept).
func cborDoubleFromHalf(_ bits: UInt16) -> Double {
    let negative = bits & 0x8000 != 0
    let exponent = Int(bits >> 10) & 0x1F
    let fraction = UInt64(bits & 0x3FF)
    let magnitude: Double
    if exponent == 0 {
        magnitude = Double(fraction) * 0x1p-24
    } else if exponent == 0x1F {
        magnitude = Double(bitPattern: 0x7FF0_0000_0000_0000 | fraction << 42)
    } else {
        magnitude = Double(bitPattern: UInt64(exponent - 15 + 1023) << 52 | fraction << 42)
    }
    return negative ? -magnitude : magnitude
}
