import Foundation
import MedLedgerCore
import Testing

// MARK: - Helpers

/// Parses a hex string ("1a 00 0f" or "1a000f") into bytes.
private func cborHex(_ hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    precondition(digits.count % 2 == 0, "odd hex length: \(hex)")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// Formats bytes as lowercase hex.
private func cborHexString(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// Decodes and returns the error code, or `nil` when decoding succeeds.
private func cborRejection(_ bytes: [UInt8], _ limits: CBORLimits = .default) -> CBORError.Code? {
    do {
        _ = try CBOR.decode(bytes, limits: limits)
        return nil
    } catch {
        return error.code
    }
}

/// The same value with every map's entries sorted by encoded key, as decoding an encoding gives.
private func cborCanonical(_ item: CBOR) -> CBOR {
    switch item {
    case .array(let elements):
        return .array(elements.map(cborCanonical))
    case .map(let entries):
        let sorted = entries.map { CBORMapEntry(cborCanonical($0.key), cborCanonical($0.value)) }
            .sorted { $0.key.encoded().lexicographicallyPrecedes($1.key.encoded()) }
        return .map(sorted)
    case .tagged(let tag, let content):
        return .tagged(tag, cborCanonical(content))
    default:
        return item
    }
}

/// A small seeded generator (CBORTestRNG), so failures can be replayed from the printed seed.
private struct CBORTestRNG: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}

/// The seed for the random tests: `CBOR_TEST_SEED` when set, otherwise a fixed one (CI runs
/// are reproducible; set the variable to explore other seeds).
private let cborRandomSeed: UInt64 = {
    if let text = ProcessInfo.processInfo.environment["CBOR_TEST_SEED"], let seed = UInt64(text) {
        return seed
    }
    return 0x5EED_C0DE_2026
}()

// MARK: - A JSON reader that keeps number literals as written

/// A JSON value whose numbers stay as their literal text, so big integers and floats compare exactly.
private indirect enum CBORVectorJSON: Sendable {
    case number(String)
    case string(String)
    case bool(Bool)
    case null
    case array([CBORVectorJSON])
    case object([(key: String, value: CBORVectorJSON)])
}

private struct CBORVectorJSONError: Error {
    let offset: Int
}

private struct CBORVectorJSONReader {
    let bytes: [UInt8]
    var position = 0

    static func parse(_ bytes: [UInt8]) throws -> CBORVectorJSON {
        var reader = CBORVectorJSONReader(bytes: bytes)
        let value = try reader.value()
        reader.skipSpace()
        guard reader.position == bytes.count else {
            throw CBORVectorJSONError(offset: reader.position)
        }
        return value
    }

    mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) {
            position += 1
        }
    }

    mutating func expect(_ literal: String) throws {
        for byte in literal.utf8 {
            guard position < bytes.count, bytes[position] == byte else {
                throw CBORVectorJSONError(offset: position)
            }
            position += 1
        }
    }

    mutating func value() throws -> CBORVectorJSON {
        skipSpace()
        guard position < bytes.count else {
            throw CBORVectorJSONError(offset: position)
        }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            position += 1
            var members: [(key: String, value: CBORVectorJSON)] = []
            skipSpace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipSpace()
                let key = try string()
                skipSpace()
                try expect(":")
                members.append((key, try value()))
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect("}")
                return .object(members)
            }
        case UInt8(ascii: "["):
            position += 1
            var elements: [CBORVectorJSON] = []
            skipSpace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                elements.append(try value())
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect("]")
                return .array(elements)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        default:
            let start = position
            while position < bytes.count, "+-0123456789.eE".utf8.contains(bytes[position]) {
                position += 1
            }
            guard position > start else {
                throw CBORVectorJSONError(offset: position)
            }
            return .number(String(decoding: bytes[start..<position], as: UTF8.self))
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count,
            let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
        else {
            throw CBORVectorJSONError(offset: position)
        }
        position += 4
        return value
    }

    mutating func string() throws -> String {
        try expect("\"")
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flush(_ raw: inout [UInt8], into scalars: inout String.UnicodeScalarView) {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll()
        }
        while true {
            guard position < bytes.count else {
                throw CBORVectorJSONError(offset: position)
            }
            let byte = bytes[position]
            position += 1
            if byte == UInt8(ascii: "\"") {
                flush(&raw, into: &scalars)
                return String(scalars)
            }
            if byte != UInt8(ascii: "\\") {
                raw.append(byte)
                continue
            }
            flush(&raw, into: &scalars)
            guard position < bytes.count else {
                throw CBORVectorJSONError(offset: position)
            }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "n"):
                scalars.append("\n")
            case UInt8(ascii: "t"):
                scalars.append("\t")
            case UInt8(ascii: "r"):
                scalars.append("\r")
            case UInt8(ascii: "b"):
                scalars.append("\u{08}")
            case UInt8(ascii: "f"):
                scalars.append("\u{0C}")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    try expect("\\u")
                    let low = try hex4()
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else {
                    throw CBORVectorJSONError(offset: position)
                }
                scalars.append(scalar)
            default:
                scalars.append(Unicode.Scalar(escape))
            }
        }
    }
}

// MARK: - Exact integer comparison for the vectors

/// The decimal digits of a non-negative big-endian magnitude, optionally plus one.
private func cborDecimalMagnitude(_ bigEndian: [UInt8], plusOne: Bool) -> String {
    var digits: [Int] = []  // little-endian base 10
    func add(_ amount: Int, scale: Int) {
        var carry = amount
        for i in digits.indices {
            let v = digits[i] * scale + carry
            digits[i] = v % 10
            carry = v / 10
        }
        while carry > 0 {
            digits.append(carry % 10)
            carry /= 10
        }
    }
    for byte in bigEndian {
        add(Int(byte), scale: 256)
    }
    if plusOne {
        add(1, scale: 1)
    }
    return digits.isEmpty ? "0" : String(digits.reversed().map { Character(String($0)) })
}

/// The integer an item stands for, in decimal: integers and tag 2/3 bignums; `nil` otherwise.
private func cborIntegerText(_ item: CBOR) -> String? {
    func bigEndian(_ n: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: n >> UInt64(56 - 8 * $0)) }
    }
    switch item {
    case .unsigned(let n):
        return String(n)
    case .negative(let n):
        return "-" + cborDecimalMagnitude(bigEndian(n), plusOne: true)
    case .tagged(2, .bytes(let b)):
        return cborDecimalMagnitude(b, plusOne: false)
    case .tagged(3, .bytes(let b)):
        return "-" + cborDecimalMagnitude(b, plusOne: true)
    default:
        return nil
    }
}

/// Whether a decoded item is the value the vector's JSON gives.
private func cborJSONMatches(_ item: CBOR, _ json: CBORVectorJSON) -> Bool {
    switch json {
    case .number(let literal):
        if literal.contains(where: { ".eE".contains($0) }) {
            guard case .float(let d) = item, let expected = Double(literal) else {
                return false
            }
            return d.bitPattern == expected.bitPattern
        }
        return cborIntegerText(item) == literal
    case .string(let s):
        return item.textValue.map { Array($0.utf8) == Array(s.utf8) } ?? false
    case .bool(let b):
        return item == .bool(b)
    case .null:
        return item == .null
    case .array(let elements):
        guard let array = item.arrayValue, array.count == elements.count else {
            return false
        }
        return zip(array, elements).allSatisfy { cborJSONMatches($0, $1) }
    case .object(let members):
        guard let entries = item.mapValue, entries.count == members.count else {
            return false
        }
        return zip(entries, members).allSatisfy {
            $0.key == .text($1.key) && cborJSONMatches($0.value, $1.value)
        }
    }
}

// MARK: - RFC 8949 Appendix A

/// One example from appendix_a.json.
struct CBORAppendixExample: Sendable, CustomTestStringConvertible {
    let hex: String
    let base64: String
    let roundtrip: Bool
    fileprivate let decoded: CBORVectorJSON?
    let diagnostic: String?

    var testDescription: String { hex }
}

/// Loads `../../Vectors/cbor/appendix_a.json` relative to this file.
private func cborLoadAppendix() throws -> [CBORAppendixExample] {
    let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Vectors/cbor/appendix_a.json")
    let json = try CBORVectorJSONReader.parse(Array(try Data(contentsOf: url)))
    guard case .array(let entries) = json else {
        throw CBORVectorJSONError(offset: 0)
    }
    return try entries.map { entry in
        guard case .object(let members) = entry else {
            throw CBORVectorJSONError(offset: 0)
        }
        func member(_ name: String) -> CBORVectorJSON? {
            members.first { $0.key == name }?.value
        }
        guard case .string(let hex) = member("hex"), case .string(let base64) = member("cbor"),
            case .bool(let roundtrip) = member("roundtrip")
        else {
            throw CBORVectorJSONError(offset: 0)
        }
        var diagnostic: String?
        if case .string(let text) = member("diagnostic") {
            diagnostic = text
        }
        return CBORAppendixExample(
            hex: hex,
            base64: base64,
            roundtrip: roundtrip,
            decoded: member("decoded"),
            diagnostic: diagnostic
        )
    }
}

private let cborAppendixExamples: [CBORAppendixExample] = (try? cborLoadAppendix()) ?? []

/// Examples whose diagnostic notation shows encoding details our data model drops: an
/// indefinite-length byte string decodes to the concatenation of its chunks.
private let cborDiagnosticOverrides: [String: String] = [
    "5f42010243030405ff": "h'0102030405'"
]

/// Examples that RFC 8949 itself makes ill-formed: `f818` (simple(24)) comes from RFC 7049's
/// appendix, but RFC 8949 §3.3 says two-byte simple values below 32 are not well-formed.
private let cborRejectedExamples: [String: CBORError.Code] = [
    "f818": .invalidSimpleValue
]

@Suite("CBOR RFC 8949 Appendix A")
struct CBORAppendixTests {
    @Test func vectorFileLoads() throws {
        let examples = try cborLoadAppendix()
        #expect(examples.count == 82)
        for example in examples {
            #expect(Data(base64Encoded: example.base64).map(Array.init) == cborHex(example.hex), "\(example.hex)")
            #expect((example.decoded == nil) != (example.diagnostic == nil), "\(example.hex)")
        }
    }

    @Test(arguments: cborAppendixExamples)
    func example(_ example: CBORAppendixExample) throws {
        let bytes = cborHex(example.hex)
        if let code = cborRejectedExamples[example.hex] {
            #expect(cborRejection(bytes) == code)
            return
        }
        let item = try CBOR.decode(bytes)
        if example.roundtrip {
            #expect(cborHexString(item.encoded()) == example.hex)
            #expect(CBOR.isDeterministic(bytes))
        } else {
            #expect(cborRejection(bytes, .deterministic) == .notDeterministic)
        }
        if let decoded = example.decoded {
            #expect(cborJSONMatches(item, decoded), "decoded \(item), expected \(decoded)")
        }
        if let diagnostic = example.diagnostic {
            #expect(item.diagnosticNotation == cborDiagnosticOverrides[example.hex] ?? diagnostic)
        }
    }
}

// MARK: - Deterministic encoding

@Suite("CBOR deterministic encoding")
struct CBOREncodingTests {
    @Test func shortestIntegers() {
        let cases: [(CBOR, String)] = [
            (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"), (65_535, "19ffff"),
            (65_536, "1a00010000"), (4_294_967_295, "1affffffff"), (4_294_967_296, "1b0000000100000000"),
            (.unsigned(.max), "1bffffffffffffffff"), (-1, "20"), (-24, "37"), (-25, "3818"), (-256, "38ff"),
            (-257, "390100"), (.int(.min), "3b7fffffffffffffff"), (.negative(.max), "3bffffffffffffffff"),
            (.tagged(24, 0), "d81800"), (.tagged(.max, 0), "dbffffffffffffffff00"),
            (.simple(19), "f3"), (.simple(32), "f820"), (.simple(255), "f8ff"),
        ]
        for (item, hex) in cases {
            #expect(cborHexString(item.encoded()) == hex, "\(item)")
        }
        #expect(CBOR.bytes(Array(repeating: 7, count: 24)).encoded().prefix(2) == [0x58, 24])
        #expect(CBOR.text(String(repeating: "x", count: 256)).encoded().prefix(3) == [0x79, 1, 0])
        #expect(CBOR.array(Array(repeating: 0, count: 65_536)).encoded().prefix(5) == [0x9A, 0, 1, 0, 0])
    }

    @Test func mapKeysSortBytewise() {
        // RFC 8949 §4.2.1's example order, given scrambled.
        let keys: [CBOR] = [false, [-1], "aa", 100, -1, [100], "z", 10]
        let map = CBOR.map(keys.enumerated().map { CBORMapEntry($1, .int(Int64($0))) })
        let encoded = map.encoded()
        let decoded = try? CBOR.decode(encoded, limits: .deterministic)
        let expected: [CBOR] = [10, 100, -1, "z", "aa", [100], [-1], false]
        #expect(decoded?.mapValue?.map(\.key) == expected)
        #expect(decoded?[intKey: 10] == 7)
        #expect(decoded?[textKey: "aa"] == 2)
        // Already-sorted input encodes identically.
        #expect(CBOR.map(decoded?.mapValue ?? []).encoded() == encoded)
    }

    @Test func nestedMapsSortToo() {
        let item: CBOR = ["b": ["y": 1, "x": 2], "a": [["d": 1, "c": 2]]]
        #expect(cborHexString(item.encoded()) == "a2616181a26163026164016162a2617802617901")
    }

    @Test func duplicateKeysFromCallerAreSortedNotDropped() {
        let item: CBOR = [2: "first", 1: "x", 2: "second"]
        let encoded = item.encoded()
        #expect(cborHexString(encoded) == "a30161780265666972737402667365636f6e64")
        #expect(cborRejection(encoded) == .duplicateMapKey)
    }

    @Test func invalidSimpleValuesEncodeWithoutTrapping() {
        #expect(CBOR.simple(20).encoded() == [0xF4])
        #expect(CBOR.simple(24).encoded() == [0xF8, 24])
        #expect(cborRejection(CBOR.simple(31).encoded()) == .invalidSimpleValue)
    }

    @Test func floatsUseShortestExactForm() {
        let cases: [(Double, String)] = [
            (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.5, "f93e00"), (-4.0, "f9c400"),
            (65_504.0, "f97bff"), (65_520.0, "fa477ff000"), (100_000.0, "fa47c35000"),
            (0x1p-24, "f90001"), (0x1p-25, "fa33000000"), (1023 * 0x1p-24, "f903ff"), (0x1p-14, "f90400"),
            (3.4028234663852886e+38, "fa7f7fffff"), (Double(Float.leastNonzeroMagnitude), "fa00000001"),
            (1.1, "fb3ff199999999999a"), (1e300, "fb7e37e43c8800759c"), (1.0 + 0x1p-52, "fb3ff0000000000001"),
            (.infinity, "f97c00"), (-.infinity, "f9fc00"), (.nan, "f97e00"), (-.nan, "f97e00"),
            (Double(bitPattern: 0x7FF0_0000_0000_0001), "f97e00"), (.leastNonzeroMagnitude, "fb0000000000000001"),
            (.greatestFiniteMagnitude, "fb7fefffffffffffff"),
        ]
        for (value, hex) in cases {
            #expect(cborHexString(CBOR.float(value).encoded()) == hex, "\(value)")
            let decoded = try? CBOR.decode(cborHex(hex), limits: .deterministic)
            #expect(decoded == .float(value), "\(value)")
        }
    }

    @Test func requireDeterministicRejectsEachForm() {
        let nonDeterministic = [
            "1817", "190017", "1a000000ff", "1b00000000ffffffff", "3817", "39001f", "580100", "780161",
            "980100", "b8010000", "d80100", "d9000100", "fa3f800000", "fb3ff0000000000000",
            "fb3ff8000000000000", "fb40f86a0000000000", "f97e01", "f9fe00",
            "fa7fc00000", "fb7ff8000000000000", "fa7f800000", "5fff", "7fff", "9fff", "bfff", "5f4100ff",
            "a202000100", "a26162000100", "a21864000a00", "81a202000100",
        ]
        for hex in nonDeterministic {
            let bytes = cborHex(hex)
            #expect(cborRejection(bytes) == nil, "\(hex) should be well-formed")
            #expect(cborRejection(bytes, .deterministic) == .notDeterministic, "\(hex)")
            #expect(!CBOR.isDeterministic(bytes), "\(hex)")
        }
        #expect(cborRejection(cborHex("a201000100"), .deterministic) == .duplicateMapKey)
        for hex in ["a201000200", "fa47c35000", "f97e00", "f8ff", "c11a514b67b0", "a2616100616200"] {
            #expect(CBOR.isDeterministic(cborHex(hex)), "\(hex)")
        }
    }
}

// MARK: - Rejections

@Suite("CBOR rejections")
struct CBORRejectionTests {
    private func expectAll(_ code: CBORError.Code, _ hexes: [String], limits: CBORLimits = .default) {
        for hex in hexes {
            #expect(cborRejection(cborHex(hex), limits) == code, "\(hex)")
        }
    }

    @Test func truncated() {
        expectAll(
            .truncated,
            [
                "", "18", "1901", "1a000000", "1b00000000000000", "38", "6261", "4201", "8201", "a101", "a1",
                "5f4100", "7f", "9f01", "bf0102", "c1", "f900", "fa000000", "fb00", "f8", "5b8000000000000000",
                "5bffffffffffffffff", "7b8000000000000000", "9b8000000000000000", "bb4000000000000000",
                "bbffffffffffffffff", "9a0000ffff", "5f5a000000ff", "d8",
            ]
        )
    }

    @Test func trailingBytes() {
        expectAll(.trailingBytes, ["0000", "80ff", "a000", "6161ff", "f6f6"])
        #expect(
            throws: CBORError(.trailingBytes, offset: 1, message: "1 byte(s) follow the item that ends at offset 1")
        ) {
            try CBOR.decode([0, 0])
        }
    }

    @Test func reservedAdditionalInfo() {
        expectAll(
            .reservedAdditionalInfo,
            ["1c", "1d", "1e", "3c", "5d", "7e", "9c", "bd", "dc", "fc", "fd", "fe", "811c", "a1011e"]
        )
        do {
            _ = try CBOR.decode(cborHex("8301021c"))
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .reservedAdditionalInfo)
            #expect(error.offset == 3)
            #expect(error.message.contains("offset 3"))
            #expect(error.description.contains("reservedAdditionalInfo"))
        }
    }

    @Test func indefiniteLengthOnIntegersAndTags() {
        expectAll(.invalidIndefiniteLength, ["1f", "3f", "df", "811f"])
    }

    @Test func invalidBreak() {
        expectAll(.invalidBreak, ["ff", "81ff", "a101ff", "bf01ff", "82ff00", "c1ff", "9f81ffff"])
    }

    @Test func invalidIndefiniteString() {
        expectAll(
            .invalidIndefiniteString,
            ["5f6161ff", "7f4100ff", "5f5fffff", "7f7fffff", "7f01ff", "5f1cff", "5f80ff", "7f5f41ffff"]
        )
    }

    @Test func invalidUTF8() {
        expectAll(
            .invalidUTF8,
            [
                "61ff", "6180", "62c080", "63eda080", "64f4908080", "62e6b0", "61c3", "61fe",
                "7f61c361a4ff", "7f6161628080ff", "8161ff", "a161ff00",
            ]
        )
        #expect(cborRejection(cborHex("63efbfbf")) == nil)  // U+FFFF is a valid scalar value
        #expect(cborRejection(cborHex("7f62c3a4ff")) == nil)
    }

    @Test func duplicateMapKey() {
        var big: [UInt8] = [0xB8, 40]
        for i in 0..<40 {
            big += [0x18, UInt8(i < 39 ? 24 + i : 30), 0]
        }
        expectAll(
            .duplicateMapKey,
            [
                "a201000100", "a20100180100", "a2f93c0000fa3f80000000", "a26161007f6161ff00",
                "bf01000100ff", "a28201020082010200", "a2c10100c10100", cborHexString(big),
            ]
        )
        // Different values, even if similar, are not duplicates.
        for hex in ["a20100f93c0000", "a262c3a9006365cc8100", "a2f9000000f9800000", "a2c10100c20100"] {
            #expect(cborRejection(cborHex(hex)) == nil, "\(hex)")
        }
        big[big.count - 2] = 200
        #expect(cborRejection(big) == nil)
    }

    @Test func invalidSimpleValue() throws {
        expectAll(.invalidSimpleValue, ["f800", "f813", "f814", "f817", "f818", "f81f", "81f810"])
        #expect(try CBOR.decode([0xF8, 0x20]) == .simple(32))
    }

    @Test func depthExceeded() {
        let nested = { (depth: Int, inner: UInt8) in [UInt8](repeating: 0x81, count: depth) + [inner] }
        #expect(cborRejection(nested(15, 0)) == nil)  // 15 arrays, integer at depth 16
        #expect(cborRejection(nested(16, 0)) == .depthExceeded)
        #expect(cborRejection(nested(100_000, 0)) == .depthExceeded)
        #expect(cborRejection([UInt8](repeating: 0xC1, count: 16) + [0]) == .depthExceeded)
        #expect(cborRejection([UInt8](repeating: 0x9F, count: 100_000)) == .depthExceeded)
        #expect(cborRejection([UInt8](repeating: 0xA1, count: 100_000)) == .depthExceeded)
        let huge = CBORLimits(maxDepth: .max)
        #expect(cborRejection(nested(CBORLimits.depthCeiling - 1, 0), huge) == nil)
        #expect(cborRejection(nested(CBORLimits.depthCeiling, 0), huge) == .depthExceeded)
        #expect(cborRejection([0], CBORLimits(maxDepth: 0)) == .depthExceeded)
    }

    @Test func tooManyItems() {
        let limits = CBORLimits(maxItems: 3)
        expectAll(.tooManyItems, ["83010203", "a101820102", "5f410041004100ff", "c1c1c100"], limits: limits)
        #expect(cborRejection(cborHex("820102"), limits) == nil)
        #expect(cborRejection([0x9A, 0, 1, 0, 0] + [UInt8](repeating: 0, count: 65_536)) == .tooManyItems)
    }

    @Test func stringTooLong() {
        let limits = CBORLimits(maxStringBytes: 4)
        expectAll(.stringTooLong, ["450102030405", "656162636465", "5f43010203420405ff"], limits: limits)
        expectAll(.stringTooLong, ["7f63616263626465ff"], limits: limits)
        #expect(cborRejection(cborHex("5f420102420304ff"), limits) == nil)
        #expect(cborRejection(cborHex("6461626364"), limits) == nil)
        #expect(cborRejection(cborHex("40"), CBORLimits(maxStringBytes: -1)) == .stringTooLong)
    }

    @Test func collectionTooLarge() {
        let limits = CBORLimits(maxCollectionCount: 2)
        expectAll(
            .collectionTooLarge,
            ["83010203", "a3010002000300", "9f010203ff", "bf010002000300ff"],
            limits: limits
        )
        #expect(cborRejection(cborHex("a201000200"), limits) == nil)
        #expect(cborRejection(cborHex("9f0102ff"), limits) == nil)
    }

    @Test func inputTooLarge() {
        #expect(cborRejection(cborHex("43010203"), CBORLimits(maxInputBytes: 3)) == .inputTooLarge)
        #expect(cborRejection(cborHex("420102"), CBORLimits(maxInputBytes: 3)) == nil)
        #expect(cborRejection([UInt8](repeating: 0, count: (1 << 20) + 1)) == .inputTooLarge)
    }

    @Test func hostileLengthsFailFast() {
        for prefix: UInt8 in [0x5B, 0x7B, 0x9B, 0xBB] {
            for length: UInt64 in [1 << 63, .max, 1 << 62, 1 << 32] {
                var bytes = [prefix]
                for i in (0..<8).reversed() {
                    bytes.append(UInt8(truncatingIfNeeded: length >> UInt64(8 * i)))
                }
                #expect(cborRejection(bytes + [0, 0, 0]) == .truncated)
            }
        }
    }
}

// MARK: - Model, accessors, literals, diagnostic notation

@Suite("CBOR model")
struct CBORModelTests {
    @Test func accessors() {
        let item: CBOR = [1: "one", -2: h([0xA1]), "k": [1.5, true, nil], 3: .unsigned(.max)]
        #expect(item[intKey: 1]?.textValue == "one")
        #expect(item[intKey: -2]?.bytesValue == [0xA1])
        #expect(item[textKey: "k"]?.arrayValue == [.float(1.5), .bool(true), .null])
        #expect(item[textKey: "k"]?.arrayValue?[1].boolValue == true)
        #expect(item[intKey: 3]?.uint64Value == .max)
        #expect(item[intKey: 3]?.int64Value == nil)
        #expect(item[intKey: 4] == nil)
        #expect(item[textKey: "missing"] == nil)
        #expect(CBOR.int(.min).int64Value == .min)
        #expect(CBOR.negative(UInt64(Int64.max)).int64Value == .min)
        #expect(CBOR.negative(UInt64(Int64.max) + 1).int64Value == nil)
        #expect(CBOR(-5) == .negative(4))
        #expect(CBOR(7).int64Value == 7)
        #expect(CBOR(-3).doubleValue == -3.0)
        #expect(CBOR.float(2.5).doubleValue == 2.5)
        #expect(CBOR.text("x").doubleValue == nil)
        #expect(CBOR.tagged(1, 5).taggedValue?.tag == 1)
        #expect(item.mapValue?.count == 4)
        #expect(CBOR.null.mapValue == nil)
        #expect(CBOR.text("x")[intKey: 1] == nil)
    }

    private func h(_ bytes: [UInt8]) -> CBOR {
        .bytes(bytes)
    }

    @Test func equalityFollowsTheDataModel() {
        #expect(CBOR.float(.nan) == .float(-.nan))
        #expect(CBOR.float(0.0) != .float(-0.0))
        #expect(CBOR.unsigned(1) != .float(1.0))
        #expect(CBOR.text("\u{E9}") != .text("e\u{301}"))  // no Unicode normalisation
        #expect(Set<CBOR>([.float(.nan), .float(.nan), .text("\u{E9}"), .text("e\u{301}")]).count == 3)
        #expect(CBOR.map([CBORMapEntry(1, 2)]) == [1: 2])
    }

    @Test func diagnosticNotation() {
        let cases: [(CBOR, String)] = [
            ([1: .bytes([0xA1]), "a": [1, -2.5]], "{1: h'a1', \"a\": [1, -2.5]}"),
            (.negative(.max), "-18446744073709551616"),
            (.int(.min), "-9223372036854775808"),
            (.text("a\"b\\c\n\u{1}\u{E9}"), "\"a\\\"b\\\\c\\n\\u0001\u{E9}\""),
            (.tagged(1, 1_363_896_240), "1(1363896240)"),
            (.simple(16), "simple(16)"),
            ([.undefined, nil, true, false], "[undefined, null, true, false]"),
            (.float(.infinity), "Infinity"), (.float(-.infinity), "-Infinity"), (.float(.nan), "NaN"),
            (.float(1e300), "1.0e+300"), (.float(0x1p-24), "5.960464477539063e-8"),
            (.float(0x1p-14), "0.00006103515625"), (.float(100_000), "100000.0"), (.float(-0.0), "-0.0"),
            (.float(1e21), "1.0e+21"), (.float(1e20), "100000000000000000000.0"), (.float(1.5e-7), "0.00000015"),
            (.float(1e-8), "1.0e-8"), (.float(-123.456), "-123.456"), (.float(.leastNonzeroMagnitude), "5.0e-324"),
            (.bytes([]), "h''"), (.map([]), "{}"), (.array([]), "[]"),
        ]
        for (item, expected) in cases {
            #expect(item.diagnosticNotation == expected)
            #expect(item.description == expected)
        }
    }

    @Test func sliceAndPrefixDecoding() throws {
        let bytes = cborHex("ff83010203ff")
        #expect(try CBOR.decode(bytes[1..<5]) == [1, 2, 3])
        do {
            _ = try CBOR.decode(bytes[1...])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .trailingBytes)
            #expect(error.offset == 4)  // counted from the slice's start
        }
        let prefix = try CBOR.decodePrefix(bytes[1...])
        #expect(prefix.item == [1, 2, 3])
        #expect(prefix.length == 4)
    }
}

// MARK: - Random properties

/// Builds a random item no deeper than `depth` more levels.
private func cborRandomItem(_ rng: inout CBORTestRNG, depth: Int) -> CBOR {
    switch rng.below(depth > 0 ? 12 : 9) {
    case 0:
        return .unsigned(rng.next() >> UInt64(rng.below(64)))
    case 1:
        return .negative(rng.next() >> UInt64(rng.below(64)))
    case 2:
        return .bytes((0..<rng.below(rng.below(8) == 0 ? 300 : 30)).map { _ in UInt8.random(in: 0...255, using: &rng) })
    case 3:
        let pools: [ClosedRange<UInt32>] = [
            0x20...0x7E, 0...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF,
        ]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<rng.below(20) {
            let pool = pools[rng.below(pools.count)]
            scalars.append(Unicode.Scalar(UInt32.random(in: pool, using: &rng))!)
        }
        return .text(String(scalars))
    case 4:
        let specials: [Double] = [0, -0.0, .infinity, -.infinity, .nan, 1.5, 65_504, 0x1p-24, .leastNonzeroMagnitude]
        switch rng.below(4) {
        case 0:
            return .float(specials[rng.below(specials.count)])
        case 1:
            return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))))
        case 2:
            return .float(Double(Int16(truncatingIfNeeded: rng.next())) * 0x1p-10)
        default:
            return .float(Double(bitPattern: rng.next()))
        }
    case 5:
        let value = UInt8(truncatingIfNeeded: rng.next())
        return .simple(value < 20 || value >= 32 ? value : value + 100)
    case 6:
        return .bool(rng.below(2) == 0)
    case 7:
        return rng.below(2) == 0 ? .null : .undefined
    case 8:
        return .int(Int64(truncatingIfNeeded: rng.next()) >> Int64(rng.below(64)))
    case 9:
        return .array((0..<rng.below(6)).map { _ in cborRandomItem(&rng, depth: depth - 1) })
    case 10:
        var seen = Set<CBOR>()
        var entries: [CBORMapEntry] = []
        for _ in 0..<rng.below(6) {
            let key = cborRandomItem(&rng, depth: depth - 1)
            if seen.insert(key).inserted {
                entries.append(CBORMapEntry(key, cborRandomItem(&rng, depth: depth - 1)))
            }
        }
        return .map(entries)
    default:
        return .tagged(rng.next() >> UInt64(rng.below(64)), cborRandomItem(&rng, depth: depth - 1))
    }
}

@Suite("CBOR random properties")
struct CBORPropertyTests {
    @Test func randomValuesRoundTrip() {
        var rng = CBORTestRNG(state: cborRandomSeed)
        for iteration in 0..<3_000 {
            let item = cborRandomItem(&rng, depth: 4)
            let encoded = item.encoded()
            let context = "seed \(cborRandomSeed) iteration \(iteration): \(item)"
            do {
                let decoded = try CBOR.decode(encoded, limits: .deterministic)
                #expect(decoded == cborCanonical(item), "\(context)")
                #expect(decoded.encoded() == encoded, "\(context)")
            } catch {
                Issue.record("\(error) — \(context)")
                return
            }
        }
    }

    @Test func randomBytesNeverCrash() {
        var rng = CBORTestRNG(state: cborRandomSeed ^ 0x5555)
        let interesting: [UInt8] = [0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x5F, 0x7F, 0x9F, 0xBF, 0xFF, 0xF8, 0xF9, 0xFB, 0x61]
        var accepted = 0
        for _ in 0..<20_000 {
            let bytes = (0..<rng.below(24)).map { _ in
                rng.below(3) == 0 ? interesting[rng.below(interesting.count)] : UInt8(truncatingIfNeeded: rng.next())
            }
            if checkArbitraryInput(bytes, seedNote: "seed \(cborRandomSeed ^ 0x5555) input \(cborHexString(bytes))") {
                accepted += 1
            }
        }
        #expect(accepted > 0)
    }

    @Test func mutatedEncodingsNeverCrash() {
        var rng = CBORTestRNG(state: cborRandomSeed ^ 0xAAAA)
        for _ in 0..<10_000 {
            var bytes = cborRandomItem(&rng, depth: 3).encoded()
            for _ in 0...rng.below(3) {
                let index = bytes.isEmpty ? 0 : rng.below(bytes.count)
                switch rng.below(5) {
                case 0 where !bytes.isEmpty:
                    bytes[index] = UInt8(truncatingIfNeeded: rng.next())
                case 1 where !bytes.isEmpty:
                    bytes[index] ^= 1 << UInt8(rng.below(8))
                case 2 where !bytes.isEmpty:
                    bytes.remove(at: index)
                case 3:
                    bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: index)
                default:
                    bytes.removeLast(rng.below(bytes.count + 1))
                }
            }
            checkArbitraryInput(bytes, seedNote: "seed \(cborRandomSeed ^ 0xAAAA) input \(cborHexString(bytes))")
        }
    }

    /// Decodes arbitrary bytes; whatever decodes must re-encode and decode to the same value, and
    /// an input accepted as deterministic must be exactly its own re-encoding.
    @discardableResult
    private func checkArbitraryInput(_ bytes: [UInt8], seedNote: String) -> Bool {
        guard let item = try? CBOR.decode(bytes) else {
            #expect(!CBOR.isDeterministic(bytes), "\(seedNote)")
            return false
        }
        _ = item.diagnosticNotation
        let reencoded = item.encoded()
        #expect((try? CBOR.decode(reencoded, limits: .deterministic)) == cborCanonical(item), "\(seedNote)")
        if CBOR.isDeterministic(bytes) {
            #expect(reencoded == bytes, "\(seedNote)")
        }
        return true
    }
}
