import Foundation
import MedLedgerCore

/// One committed reading to export, wherever it came from (the store, or a verified fetch).
struct ExportedReading {
    var height: UInt64
    var position: Int
    var device: String
    var seq: UInt64
    var time: UInt64
    var patient: String?
    var bytes: [UInt8]
    var reading: Reading
}

/// FHIR R4 export: a Bundle (type collection) of Observation resources, one per reading (a blood
/// pressure reading is one Observation, LOINC 85354-9, with its systolic and diastolic values as
/// components; every other record is an Observation of its own). Codes are LOINC, units UCUM, the
/// subject is the pseudonymous patient, the device is referenced by identifier, and the identifier
/// names the device and seq.
enum FHIRExport {
    static let loinc = "http://loinc.org"
    static let ucum = "http://unitsofmeasure.org"
    static let categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
    static let systolic = "8480-6"
    static let diastolic = "8462-4"
    /// Kinds that are vital signs; the others are laboratory results.
    static let vitalSigns: Set<String> = ["8480-6", "8462-4", "8867-4", "59408-5", "8310-5"]

    static func bundle(_ readings: [ExportedReading], channel: String, kinds: KindTable) -> [String: Any] {
        var entries: [[String: Any]] = []
        for exported in readings {
            var made = observations(exported, channel: channel, kinds: kinds)
            if made.count == 1 {
                // One Observation for the reading: its identifier is the reading's own, device/seq.
                made[0].1["identifier"] = [
                    ["system": "urn:medledger:\(channel):reading", "value": "\(exported.device)/\(exported.seq)"]
                ]
            }
            for (suffix, observation) in made {
                entries.append([
                    "fullUrl": "urn:uuid:\(uuid("\(channel)/\(exported.height)/\(exported.position)/\(suffix)"))",
                    "resource": observation,
                ])
            }
        }
        return ["resourceType": "Bundle", "type": "collection", "total": entries.count, "entry": entries]
    }

    /// The Observations of one reading, each with a suffix that makes its id unique.
    static func observations(_ exported: ExportedReading, channel: String, kinds: KindTable) -> [(
        String, [String: Any]
    )] {
        let records = exported.reading.records
        var out: [(String, [String: Any])] = []
        var rest = Array(records.enumerated())
        if let s = records.firstIndex(where: { $0.code == systolic }),
            let d = records.firstIndex(where: { $0.code == diastolic })
        {
            var observation = base(exported, channel: channel, id: "bp", category: "vital-signs")
            observation["code"] = concept(code: "85354-9", text: "Blood pressure panel")
            observation["component"] = [s, d].map { index -> [String: Any] in
                let record = records[index]
                return [
                    "code": concept(code: record.code, text: kinds[record.code]?.name),
                    "valueQuantity": quantity(record),
                ]
            }
            out.append(("bp", observation))
            rest.removeAll { $0.offset == s || $0.offset == d }
        }
        for (index, record) in rest {
            let suffix = "r\(index)"
            var observation = base(
                exported, channel: channel, id: suffix,
                category: vitalSigns.contains(record.code) ? "vital-signs" : "laboratory")
            observation["code"] = concept(code: record.code, text: kinds[record.code]?.name)
            observation["valueQuantity"] = quantity(record)
            out.append((suffix, observation))
        }
        return out
    }

    static func base(_ exported: ExportedReading, channel: String, id: String, category: String) -> [String: Any] {
        var observation: [String: Any] = [
            "resourceType": "Observation",
            "id": "\(channel)-\(exported.height)-\(exported.position)-\(id)",
            "identifier": [
                [
                    "system": "urn:medledger:\(channel):reading",
                    "value": "\(exported.device)/\(exported.seq)\(id == "bp" ? "" : "/\(id)")",
                ]
            ],
            "status": "final",
            "category": [["coding": [["system": categorySystem, "code": category]]]],
            "effectiveDateTime": dateTime(exported.time),
            "device": [
                "identifier": ["system": "urn:medledger:\(channel):device", "value": exported.device],
                "display": exported.device,
            ],
        ]
        if let patient = exported.patient {
            var subject: [String: Any] = [
                "type": "Patient",
                "identifier": ["system": "urn:medledger:\(channel):patient", "value": patient],
            ]
            if isFHIRID(patient) { subject["reference"] = "Patient/\(patient)" }
            observation["subject"] = subject
        }
        return observation
    }

    static func concept(code: String, text: String?) -> [String: Any] {
        var concept: [String: Any] = ["coding": [["system": loinc, "code": code]]]
        if let text { concept["text"] = text }
        return concept
    }

    static func quantity(_ record: ReadingRecord) -> [String: Any] {
        let value: Any =
            switch record.value {
            case .integer(let int): int
            case .float(let double): double
            }
        return ["value": value, "unit": record.unit, "system": ucum, "code": record.unit]
    }

    /// `2023-11-14T22:13:20.000Z` (FHIR dateTime, UTC, with milliseconds).
    static func dateTime(_ ms: UInt64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// FHIR ids are `[A-Za-z0-9\-\.]{1,64}`; pseudonyms may also hold `_`.
    static func isFHIRID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D
                    || $0 == 0x2E
            }
    }

    /// A name-based UUID (RFC 9562 version 8) from SHA-256 of a name: the same reading always gets
    /// the same fullUrl.
    static func uuid(_ name: String) -> String {
        var bytes = Array(Hash256.sha256(Array(name.utf8)).bytes.prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = Hex.encode(bytes)
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { range in
            String(
                hex[
                    hex.index(
                        hex.startIndex, offsetBy: range.lowerBound)..<hex.index(
                            hex.startIndex, offsetBy: range.upperBound)])
        }
        return parts.joined(separator: "-")
    }
}

/// Writes readings as JSON, CSV or FHIR, for `query readings` and `access verify`.
enum ReadingOutput {
    static func csv(_ readings: [ExportedReading]) -> String {
        var lines = ["height,position,device,seq,time,patient,code,unit,value"]
        for exported in readings {
            for record in exported.reading.records {
                let fields = [
                    "\(exported.height)", "\(exported.position)", exported.device, "\(exported.seq)",
                    "\(exported.time)",
                    exported.patient ?? "", record.code, record.unit, ReadingJSON.text(record.value),
                ]
                lines.append(fields.map(csvField).joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n")
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func jsonItem(_ exported: ExportedReading) -> [String: Any] {
        var item = ReadingJSON.object(exported.reading)
        item["height"] = exported.height
        item["position"] = exported.position
        item["patient"] = exported.patient ?? NSNull()
        item["cose"] = Hex.encode(exported.bytes)
        return item
    }
}
