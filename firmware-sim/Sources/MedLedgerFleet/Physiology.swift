public import MedLedgerCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// What is unusual about a simulated patient: the conditions that move their values out of the
/// normal range while keeping them physically plausible.
public struct Conditions: OptionSet, Hashable, Sendable {
    /// The raw bits.
    public let rawValue: UInt8
    /// Makes a set from its bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// High blood pressure.
    public static let hypertension = Conditions(rawValue: 1 << 0)
    /// High glucose with larger meal peaks.
    public static let diabetes = Conditions(rawValue: 1 << 1)
    /// Fast heart rate.
    public static let tachycardia = Conditions(rawValue: 1 << 2)
    /// Low oxygen saturation.
    public static let hypoxaemia = Conditions(rawValue: 1 << 3)
    /// Fever.
    public static let fever = Conditions(rawValue: 1 << 4)
    /// Raised liver enzymes (AST, ALT).
    public static let liverDisease = Conditions(rawValue: 1 << 5)
    /// High total cholesterol.
    public static let hypercholesterolaemia = Conditions(rawValue: 1 << 6)

    static let all: [Conditions] = [
        .hypertension, .diabetes, .tachycardia, .hypoxaemia, .fever, .liverDisease, .hypercholesterolaemia,
    ]
}

/// A pseudonymous patient's physiology: baselines and conditions from which a device's readings
/// are drawn, with a daily rhythm, meal peaks and noise.
public struct PatientProfile: Hashable, Sendable {
    /// The pseudonymous patient id (never a name).
    public var id: String
    /// The patient's conditions (empty for most).
    public var conditions: Conditions
    /// Baseline systolic pressure, mm[Hg].
    public var systolic: Double
    /// Baseline diastolic pressure, mm[Hg].
    public var diastolic: Double
    /// Fasting glucose, mg/dL.
    public var fastingGlucose: Double
    /// Height of a meal's glucose peak above fasting, mg/dL.
    public var mealPeak: Double
    /// Resting heart rate, /min.
    public var heartRate: Double
    /// Oxygen saturation, %.
    public var saturation: Double
    /// Body temperature, Cel.
    public var temperature: Double
    /// Total cholesterol, mg/dL.
    public var cholesterol: Double
    /// AST, U/L.
    public var ast: Double
    /// ALT, U/L.
    public var alt: Double

    /// A patient drawn at random: normal baselines with individual spread, and with probability
    /// `abnormalShare` one or two conditions.
    /// - Parameters:
    ///   - id: the pseudonymous id.
    ///   - abnormalShare: the share of patients with abnormal (but plausible) values, 0...1.
    ///   - random: the source of randomness.
    public init(id: String, abnormalShare: Double, random: inout SeededRandom) {
        self.id = id
        var conditions: Conditions = []
        if Double.random(in: 0..<1, using: &random) < abnormalShare {
            conditions.insert(Conditions.all.randomElement(using: &random)!)
            if Bool.random(using: &random) { conditions.insert(Conditions.all.randomElement(using: &random)!) }
        }
        self.conditions = conditions
        func spread(_ mean: Double, _ deviation: Double) -> Double {
            mean + deviation * Gaussian.sample(using: &random)
        }
        systolic = spread(conditions.contains(.hypertension) ? 158 : 118, 8)
        diastolic = spread(conditions.contains(.hypertension) ? 98 : 76, 5)
        fastingGlucose = spread(conditions.contains(.diabetes) ? 150 : 88, 6)
        mealPeak = spread(conditions.contains(.diabetes) ? 120 : 40, 8)
        heartRate = spread(conditions.contains(.tachycardia) ? 112 : 70, 6)
        saturation = spread(conditions.contains(.hypoxaemia) ? 89 : 97.5, 0.8)
        temperature = spread(conditions.contains(.fever) ? 38.6 : 36.8, 0.2)
        cholesterol = spread(conditions.contains(.hypercholesterolaemia) ? 275 : 185, 15)
        ast = spread(conditions.contains(.liverDisease) ? 140 : 24, 5)
        alt = spread(conditions.contains(.liverDisease) ? 180 : 22, 5)
    }

    /// The hour of the UTC day of a time, as a fraction (0..<24).
    static func hourOfDay(_ time: UInt64) -> Double { Double(time % 86_400_000) / 3_600_000 }

    /// The daily rhythm: +1 at mid-afternoon, -1 at the small hours.
    static func rhythm(_ time: UInt64) -> Double { sin(2 * Double.pi * (hourOfDay(time) - 9) / 24) }

    /// Systolic and diastolic pressure at a time: a daily rhythm (lower at night) and noise.
    public func bloodPressure(at time: UInt64, random: inout SeededRandom) -> (systolic: Int64, diastolic: Int64) {
        let rhythm = Self.rhythm(time)
        let s = systolic * (1 + 0.07 * rhythm) + 5 * Gaussian.sample(using: &random)
        let d = diastolic * (1 + 0.06 * rhythm) + 3 * Gaussian.sample(using: &random)
        return (Int64(s.rounded()), Int64(min(d, s - 15).rounded()))
    }

    /// Capillary glucose at a time: fasting level plus peaks after breakfast, lunch and dinner.
    public func glucose(at time: UInt64, random: inout SeededRandom) -> Int64 {
        let hour = Self.hourOfDay(time)
        var value = fastingGlucose
        for meal in [7.5, 12.5, 19.0] {
            // A peak about 45 minutes after the meal, decaying over the next two hours.
            var since = hour - meal
            if since < 0 { since += 24 }
            let tau = 0.75
            value += mealPeak * (since / tau) * exp(1 - since / tau)
        }
        return Int64((value + 4 * Gaussian.sample(using: &random)).rounded())
    }

    /// Heart rate at a time, /min.
    public func pulse(at time: UInt64, random: inout SeededRandom) -> Int64 {
        Int64((heartRate * (1 + 0.08 * Self.rhythm(time)) + 3 * Gaussian.sample(using: &random)).rounded())
    }

    /// Oxygen saturation, %, never above 100.
    public func spO2(random: inout SeededRandom) -> Int64 {
        Int64(min(100, (saturation + 0.7 * Gaussian.sample(using: &random)).rounded()))
    }

    /// Body temperature at a time, Cel, to a tenth of a degree.
    public func bodyTemperature(at time: UInt64, random: inout SeededRandom) -> Double {
        ((temperature + 0.25 * Self.rhythm(time) + 0.1 * Gaussian.sample(using: &random)) * 10).rounded() / 10
    }

    /// A lab panel: total cholesterol, AST, ALT.
    public func labPanel(random: inout SeededRandom) -> (cholesterol: Int64, ast: Int64, alt: Int64) {
        (
            Int64((cholesterol + 6 * Gaussian.sample(using: &random)).rounded()),
            Int64(max(3, ast + 3 * Gaussian.sample(using: &random)).rounded()),
            Int64(max(3, alt + 3 * Gaussian.sample(using: &random)).rounded())
        )
    }
}

/// Standard normal samples (Box–Muller).
enum Gaussian {
    static func sample(using random: inout SeededRandom) -> Double {
        let u1 = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &random)
        let u2 = Double.random(in: 0..<1, using: &random)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// The kind of sensor a simulated device is, and what one of its readings holds.
public enum DeviceKind: String, Hashable, Sendable, CaseIterable, Codable {
    /// A blood-pressure cuff: systolic, diastolic and pulse.
    case bloodPressureCuff = "bp-cuff"
    /// A glucometer: capillary glucose.
    case glucometer
    /// A pulse oximeter: SpO2 and pulse.
    case pulseOximeter = "oximeter"
    /// A thermometer: body temperature.
    case thermometer
    /// A lab analyser: total cholesterol, AST and ALT, reported rarely.
    case labAnalyser = "lab"

    /// How much less often than the fleet's rate this kind reports (a lab analyser reports a
    /// patient's panel rarely).
    public var rateDivisor: Double { self == .labAnalyser ? 50 : 1 }

    /// The kind of the n-th device of a fleet: mostly cuffs and glucometers, some oximeters and
    /// thermometers, a few lab analysers.
    public static func forDevice(_ number: Int) -> DeviceKind {
        switch number % 20 {
        case 0..<8: .bloodPressureCuff
        case 8..<13: .glucometer
        case 13..<16: .pulseOximeter
        case 16..<19: .thermometer
        default: .labAnalyser
        }
    }

    /// The records of one reading of this kind for a patient at a time.
    public func records(for patient: PatientProfile, at time: UInt64, random: inout SeededRandom) -> [ReadingRecord] {
        switch self {
        case .bloodPressureCuff:
            let pressure = patient.bloodPressure(at: time, random: &random)
            return [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(pressure.systolic)),
                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(pressure.diastolic)),
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(patient.pulse(at: time, random: &random))),
            ]
        case .glucometer:
            return [
                ReadingRecord(
                    code: "41653-7", unit: "mg/dL", value: .integer(patient.glucose(at: time, random: &random)))
            ]
        case .pulseOximeter:
            return [
                ReadingRecord(code: "59408-5", unit: "%", value: .integer(patient.spO2(random: &random))),
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(patient.pulse(at: time, random: &random))),
            ]
        case .thermometer:
            return [
                ReadingRecord(
                    code: "8310-5", unit: "Cel", value: .float(patient.bodyTemperature(at: time, random: &random)))
            ]
        case .labAnalyser:
            let panel = patient.labPanel(random: &random)
            return [
                ReadingRecord(code: "2093-3", unit: "mg/dL", value: .integer(panel.cholesterol)),
                ReadingRecord(code: "1920-8", unit: "U/L", value: .integer(panel.ast)),
                ReadingRecord(code: "1742-6", unit: "U/L", value: .integer(panel.alt)),
            ]
        }
    }
}
