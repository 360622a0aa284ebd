extension CBOR: CustomStringConvertible {
    /// The item in diagnostic notation (RFC 8949 §8), as ``diagnosticNotation``.
    public var description: String {
        diagnosticNotation
    }

    /// The item in diagnostic notation (RFC 8949 §8), for example `{1: h'a1', "a": [1, -2.5]}`.
    ///
    /// Integers are decimal, byte strings `h'…'` in lowercase hex, text strings JSON-quoted, tags
    /// `1(1363896240)`, simple values `simple(16)`, and floats as RFC 8949 Appendix A writes them:
    /// the shortest digits that round-trip, always with a fraction or exponent (`1.0`, `1.0e+300`,
    /// `0.00006103515625`, `5.960464477539063e-8`), or `Infinity`, `-Infinity`, `NaN`.
    public var diagnosticNotation: String {
        var out = ""
        writeDiagnostic(to: &out)
        return out
    }

    private func writeDiagnostic(to out: inout String) {
        switch self {
        case .unsigned(let n):
            out += String(n)
        case .negative(let n):
            out += n == UInt64.max ? "-18446744073709551616" : "-" + String(n + 1)
        case .bytes(let bytes):
            out += "h'"
            let digits: [Character] = Array("0123456789abcdef")
            for byte in bytes {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            }
            out += "'"
        case .text(let text):
            cborWriteQuoted(text, to: &out)
        case .array(let elements):
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 {
                    out += ", "
                }
                element.writeDiagnostic(to: &out)
            }
            out += "]"
        case .map(let entries):
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 {
                    out += ", "
                }
                entry.key.writeDiagnostic(to: &out)
                out += ": "
                entry.value.writeDiagnostic(to: &out)
            }
            out += "}"
        case .tagged(let tag, let content):
            out += String(tag) + "("
            content.writeDiagnostic(to: &out)
            out += ")"
        case .simple(let value):
            out += "simple(\(value))"
        case .bool(let value):
            out += value ? "true" : "false"
        case .null:
            out += "null"
        case .undefined:
            out += "undefined"
        case .float(let value):
            out += cborDiagnosticFloat(value)
        }
    }
}

/// Writes `text` as a JSON string literal: quotes, backslashes and control characters escaped.
private func cborWriteQuoted(_ text: String, to out: inout String) {
    out += "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"":
            out += "\\\""
        case "\\":
            out += "\\\\"
        case "\n":
            out += "\\n"
        case "\r":
            out += "\\r"
        case "\t":
            out += "\\t"
        case "\u{08}":
            out += "\\b"
        case "\u{0C}":
            out += "\\f"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    out += "\""
}

/// Formats a float as RFC 8949 Appendix A does: shortest round-trip digits, plain decimal for
/// magnitudes from 1e-7 up to 1e21, scientific otherwise, and always a fraction or exponent.
func cborDiagnosticFloat(_ value: Double) -> String {
    if value.isNaN {
        return "NaN"
    }
    if value.isInfinite {
        return value < 0 ? "-Infinity" : "Infinity"
    }
    let sign = value.sign == .minus ? "-" : ""
    // Swift's description gives the shortest digits that round-trip, in one of the forms
    // "123.45", "1e+300" or "1.5e-08"; take it apart into digits and a decimal point position.
    let text = value.magnitude.description
    let parts = text.split(separator: "e", maxSplits: 1)
    let mantissa = parts[0]
    let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    let pieces = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    let integerDigits = pieces[0]
    let fractionDigits = pieces.count > 1 ? pieces[1] : ""
    var digits = Array(integerDigits + fractionDigits)
    // The decimal point sits after `point` digits of `digits`.
    var point = integerDigits.count + exponent
    while let first = digits.first, first == "0" {
        digits.removeFirst()
        point -= 1
    }
    while let last = digits.last, last == "0" {
        digits.removeLast()
    }
    if digits.isEmpty {
        return sign + "0.0"
    }
    let scientificExponent = point - 1
    if scientificExponent >= -7 && scientificExponent < 21 {
        if point <= 0 {
            return sign + "0." + String(repeating: "0", count: -point) + String(digits)
        }
        if point >= digits.count {
            return sign + String(digits) + String(repeating: "0", count: point - digits.count) + ".0"
        }
        return sign + String(digits[..<point]) + "." + String(digits[point...])
    }
    let fraction = digits.count > 1 ? String(digits[1...]) : "0"
    let exponentSign = scientificExponent < 0 ? "-" : "+"
    return sign + String(digits[0]) + "." + fraction + "e" + exponentSign + String(scientificExponent.magnitude)
}
