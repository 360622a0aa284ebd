import ArgumentParser
import Foundation
import MedLedgerCore

struct ReadingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reading", abstract: "Sign and inspect signed readings (COSE_Sign1).",
        subcommands: [Sign.self, Inspect.self])

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a reading described in JSON, as a device does.",
            discussion: """
                The JSON: {"channel": "c", "device": "d", "seq": 1, "time": 1700000000000,
                "records": [{"code": "8480-6", "unit": "mm[Hg]", "value": 120}]}. A value written with a
                fraction or exponent is encoded as a float, otherwise as an integer.
                """)

        @Option(help: "The JSON description of the reading ('-' for standard input).")
        var json: String
        @Option(help: "The device's private key (PEM).")
        var key: String
        @Option(help: "Where to write the signed reading; without it, its hex goes to standard output.")
        var out: String?

        func run() throws {
            let text: [UInt8] =
                json == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : try Files.read(json, what: "JSON")
            let reading = try ReadingJSON.parse(text)
            let signed = try SignedReading(signing: reading, with: try Files.privateKey(key))
            if let out {
                try Files.write(signed.bytes, to: out)
            } else {
                print(Hex.encode(signed.bytes))
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a signed reading, print it as JSON, and check it.",
            discussion: """
                FILE holds the COSE_Sign1 bytes, or their hex. Checks the structure (PROTOCOL.md rule 1), that the
                payload's device is the kid, the records against the standard kinds, and, with --public-key, the
                signature. Exits 1 with the reason when the reading is bad.
                """)

        @Argument(help: "The file holding the signed reading (binary or hex).")
        var file: String
        @Option(help: "The device's public key (PEM) to verify the signature with.")
        var publicKey: String?

        func run() throws {
            var bytes = try Files.read(file, what: "reading")
            let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
            if !text.isEmpty, let decoded = Hex.decode(text) { bytes = decoded }
            let signed: SignedReading
            do {
                signed = try SignedReading(decoding: bytes)
            } catch {
                print("rejected: \(error)")
                throw ExitCode(1)
            }
            var problems: [ReadingRejection] = []
            var signature = "not checked (no --public-key)"
            if let publicKey {
                let key = try Files.publicKey(publicKey)
                do {
                    try signed.message.verify(with: key)
                    signature = "valid"
                } catch {
                    signature = "invalid: \(error)"
                    problems.append(ReadingRejection(.badSignature, "\(error)"))
                }
            }
            if signed.reading.device != signed.keyID {
                problems.append(
                    ReadingRejection(
                        .wrongDevice, "payload device '\(signed.reading.device)' is not kid '\(signed.keyID)'"))
            }
            let kinds = KindTable()
            for (index, record) in signed.reading.records.enumerated() {
                if let kind = kinds[record.code] {
                    if kind.unit != record.unit {
                        problems.append(
                            ReadingRejection(.unitMismatch, "record \(index): \(record.code) is in \(kind.unit)"))
                    } else if !kind.isPlausible(record.value.doubleValue) {
                        problems.append(
                            ReadingRejection(.implausibleValue, "record \(index): \(record.value.doubleValue)"))
                    }
                } else {
                    problems.append(
                        ReadingRejection(.unknownCode, "record \(index): code \(record.code) is not standard"))
                }
            }
            print(try JSONOutput.string(ReadingJSON.object(signed, signature: signature)))
            if let first = problems.first {
                print("rejected: \(first)")
                throw ExitCode(1)
            }
        }
    }
}

/// The JSON form of readings, for people and scripts.
enum ReadingJSON {
    static func parse(_ bytes: [UInt8]) throws -> Reading {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw ToolError("the reading description is not a JSON object")
        }
        guard let channel = object["channel"] as? String, let device = object["device"] as? String,
            let seq = (object["seq"] as? NSNumber)?.uint64Value, let time = (object["time"] as? NSNumber)?.uint64Value,
            let items = object["records"] as? [[String: Any]]
        else { throw ToolError("the reading needs channel, device, seq, time and records") }
        guard (1...CBOR.maxWireInteger).contains(seq), time <= CBOR.maxWireInteger else {
            throw ToolError("seq must be from 1 to 2^63-1 and time at most 2^63-1 (docs/PROTOCOL.md)")
        }
        let records = try items.enumerated().map { index, item in
            guard let code = item["code"] as? String, let unit = item["unit"] as? String,
                let number = item["value"] as? NSNumber
            else { throw ToolError("record \(index) needs code, unit and a numeric value") }
            let isInteger = !["d", "f"].contains(String(cString: number.objCType))
            return ReadingRecord(
                code: code, unit: unit, value: isInteger ? .integer(number.int64Value) : .float(number.doubleValue))
        }
        return Reading(channel: channel, device: device, seq: seq, time: time, records: records)
    }

    static func object(_ signed: SignedReading, signature: String) -> [String: Any] {
        var object = object(signed.reading)
        object["size"] = signed.bytes.count
        object["tagged"] = signed.message.isTagged
        object["protected"] = [
            "alg": signed.message.algorithmIdentifier?.int64Value.map { $0 as Any } ?? "none",
            "kid": signed.keyID,
        ]
        object["signature"] = signature
        object["signatureHex"] = Hex.encode(signed.message.signature)
        return object
    }

    static func object(_ reading: Reading) -> [String: Any] {
        [
            "channel": reading.channel,
            "device": reading.device,
            "seq": reading.seq,
            "time": reading.time,
            "records": reading.records.map { record -> [String: Any] in
                let value: Any =
                    switch record.value {
                    case .integer(let int): int
                    case .float(let double): double
                    }
                return ["code": record.code, "unit": record.unit, "value": value]
            },
        ]
    }

    static func text(_ value: ReadingValue) -> String {
        switch value {
        case .integer(let int): "\(int)"
        case .float(let double): "\(double)"
        }
    }
}
