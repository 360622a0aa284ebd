/// A kind of measurement a channel knows: its LOINC code, UCUM unit and plausible range.
public struct MeasurementKind: Hashable, Sendable, Codable {
    /// The LOINC code, e.g. `8480-6`.
    public var code: String
    /// The UCUM unit the value must be given in, e.g. `mm[Hg]`.
    public var unit: String
    /// A short name for people.
    public var name: String
    /// The lowest physically plausible value (inclusive).
    public var minimum: Double
    /// The highest physically plausible value (inclusive).
    public var maximum: Double

    /// Makes a kind.
    public init(code: String, unit: String, name: String, minimum: Double, maximum: Double) {
        self.code = code
        self.unit = unit
        self.name = name
        self.minimum = minimum
        self.maximum = maximum
    }

    /// Whether a value is within the plausible range. NaN and infinities never are.
    /// - Parameter value: the measured value.
    public func isPlausible(_ value: Double) -> Bool {
        value.isFinite && value >= minimum && value <= maximum
    }
}

extension MeasurementKind {
    /// The kinds every deployment knows (PROTOCOL.md), with their plausible ranges.
    ///
    /// The ranges are physical limits of what a working sensor can report about a living
    /// person, not clinical reference ranges: a value outside them is a sensor fault.
    public static let standard: [MeasurementKind] = [
        MeasurementKind(code: "8480-6", unit: "mm[Hg]", name: "systolic blood pressure", minimum: 20, maximum: 300),
        MeasurementKind(code: "8462-4", unit: "mm[Hg]", name: "diastolic blood pressure", minimum: 10, maximum: 200),
        MeasurementKind(code: "2339-0", unit: "mg/dL", name: "glucose, blood (mass)", minimum: 10, maximum: 1500),
        MeasurementKind(code: "15074-8", unit: "mmol/L", name: "glucose, blood (moles)", minimum: 0.5, maximum: 85),
        MeasurementKind(
            code: "41653-7", unit: "mg/dL", name: "glucose, capillary, glucometer", minimum: 10, maximum: 1500),
        MeasurementKind(code: "2093-3", unit: "mg/dL", name: "cholesterol, total", minimum: 20, maximum: 1000),
        MeasurementKind(code: "1920-8", unit: "U/L", name: "AST", minimum: 0, maximum: 20000),
        MeasurementKind(code: "1742-6", unit: "U/L", name: "ALT", minimum: 0, maximum: 20000),
        MeasurementKind(code: "8867-4", unit: "/min", name: "heart rate", minimum: 10, maximum: 350),
        MeasurementKind(code: "59408-5", unit: "%", name: "oxygen saturation (SpO2)", minimum: 30, maximum: 100),
        MeasurementKind(code: "8310-5", unit: "Cel", name: "body temperature", minimum: 20, maximum: 45),
    ]
}

/// The kinds a channel knows, by LOINC code.
public struct KindTable: Hashable, Sendable {
    /// The kinds by code.
    public let byCode: [String: MeasurementKind]

    /// Makes a table of the standard kinds plus a channel's own (a channel's kind replaces a
    /// standard one with the same code).
    /// - Parameter extra: the channel's additional kinds.
    public init(extra: [MeasurementKind] = []) {
        var table: [String: MeasurementKind] = [:]
        for kind in MeasurementKind.standard + extra { table[kind.code] = kind }
        byCode = table
    }

    /// The kind with a code, if the channel knows it.
    public subscript(code: String) -> MeasurementKind? { byCode[code] }
}
