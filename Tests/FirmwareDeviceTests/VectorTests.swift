import Foundation
import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// The firmware test vectors (firmware-sim/vectors) are exactly what MedLedgerCore makes, and
/// they verify; the C device's unit test checks its encoder against the same files.
@Suite("Firmware test vectors")
struct VectorTests {
    static let ed25519File = FirmwareVectors.directory.appendingPathComponent("reading-ed25519.json")
    static let es256File = FirmwareVectors.directory.appendingPathComponent("reading-es256.json")
    static let receiptsFile = FirmwareVectors.directory.appendingPathComponent("receipts.json")
    static let writing = ProcessInfo.processInfo.environment["MEDLEDGER_WRITE_VECTORS"] == "1"

    static func loadCases(_ url: URL) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        return try #require(object?["cases"] as? [[String: Any]], "\(url.path) has no cases")
    }

    static func hex(_ item: [String: Any], _ key: String) throws -> [UInt8] {
        try #require((item[key] as? String).flatMap { Hex.decode($0) }, "\(item["name"] ?? "?"): \(key) is not hex")
    }

    @Test func theEd25519FileIsWhatMedLedgerCoreMakes() throws {
        let rendered = try FirmwareVectors.renderReadings(
            FirmwareVectors.ed25519Cases, description: FirmwareVectors.ed25519Description)
        if Self.writing { try rendered.write(to: Self.ed25519File, atomically: true, encoding: .utf8) }
        let stored = try String(contentsOf: Self.ed25519File, encoding: .utf8)
        #expect(stored == rendered, "firmware-sim/vectors/reading-ed25519.json differs from what MedLedgerCore makes")
    }

    @Test func theES256FileMatchesExceptForItsRandomSignature() throws {
        var kept: [String: [UInt8]] = [:]
        if let cases = try? Self.loadCases(Self.es256File) {
            for item in cases {
                if let name = item["name"] as? String { kept[name] = try Self.hex(item, "signatureHex") }
            }
        }
        if Self.writing && kept.isEmpty {
            let fresh = try FirmwareVectors.renderReadings(
                [FirmwareVectors.es256Case], description: FirmwareVectors.es256Description)
            try fresh.write(to: Self.es256File, atomically: true, encoding: .utf8)
            return try theES256FileMatchesExceptForItsRandomSignature()
        }
        let rendered = try FirmwareVectors.renderReadings(
            [FirmwareVectors.es256Case], description: FirmwareVectors.es256Description, signatures: kept)
        if Self.writing { try rendered.write(to: Self.es256File, atomically: true, encoding: .utf8) }
        let stored = try String(contentsOf: Self.es256File, encoding: .utf8)
        #expect(stored == rendered, "firmware-sim/vectors/reading-es256.json differs from what MedLedgerCore makes")
    }

    @Test func theReceiptsFileIsWhatMedLedgerCoreMakes() throws {
        let rendered = FirmwareVectors.renderReceipts()
        if Self.writing { try rendered.write(to: Self.receiptsFile, atomically: true, encoding: .utf8) }
        let stored = try String(contentsOf: Self.receiptsFile, encoding: .utf8)
        #expect(stored == rendered, "firmware-sim/vectors/receipts.json differs from what MedLedgerCore makes")
    }

    static let signedReceiptsFile = FirmwareVectors.directory.appendingPathComponent("signed-receipts.json")

    @Test func theSignedReceiptsFileIsWhatMedLedgerCoreMakes() throws {
        let rendered = try FirmwareVectors.renderSignedReceipts()
        if Self.writing { try rendered.write(to: Self.signedReceiptsFile, atomically: true, encoding: .utf8) }
        let stored = try String(contentsOf: Self.signedReceiptsFile, encoding: .utf8)
        #expect(stored == rendered, "firmware-sim/vectors/signed-receipts.json differs from what MedLedgerCore makes")
    }

    /// Independently of the rendering: each signed-receipt vector is trusted or refused, for its
    /// reason, by the managers the file names.
    @Test func signedReceiptVectorsAreTrustedOrRefusedAsTheySay() throws {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.signedReceiptsFile)) as? [String: Any]
        let topic = try #require(object?["topic"] as? String)
        let managers = try #require(object?["managers"] as? [[String: Any]]).map { item in
            Member(
                id: item["id"] as? String ?? "",
                publicKey: try PublicKey(algorithm: .ed25519, rawBytes: try Self.hex(item, "publicKeyHex")))
        }
        let cases = try Self.loadCases(Self.signedReceiptsFile)
        #expect(cases.count >= 8)
        for item in cases {
            let name = item["name"] as? String ?? "?"
            let bytes = try Self.hex(item, "hex")
            do {
                let opened = try Receipt.open(bytes, topic: topic, managers: managers)
                #expect(item["trusted"] as? Bool == true, "\(name) was trusted")
                #expect(
                    opened.receipt.seq == item["seq"] as? UInt64
                        && opened.receipt.statusName == item["status"] as? String)
            } catch {
                #expect(item["trusted"] as? Bool == false, "\(name): \(error)")
                #expect(error.code.rawValue == item["why"] as? String, "\(name): \(error)")
            }
        }
    }

    /// Independently of the rendering: every reading vector decodes, names its device as kid,
    /// verifies with its public key (raw and PEM), and its parts are the message's parts.
    @Test(arguments: [ed25519File, es256File])
    func everyReadingVectorDecodesAndVerifies(_ url: URL) throws {
        let cases = try Self.loadCases(url)
        #expect(!cases.isEmpty)
        for item in cases {
            let name = item["name"] as? String ?? "?"
            let alg = try #require(item["alg"] as? Int)
            let algorithm = try #require(SignatureAlgorithm(coseIdentifier: Int64(alg)))
            let key = try PublicKey(algorithm: algorithm, rawBytes: try Self.hex(item, "publicKeyHex"))
            #expect(try PublicKey(pem: try #require(item["publicKeyPEM"] as? String)) == key, "\(name)")
            let privateKey = try PrivateKey(pem: try #require(item["privateKeyPEM"] as? String))
            #expect(privateKey.publicKey == key, "\(name)")
            #expect(
                try PrivateKey(algorithm: algorithm, rawBytes: try Self.hex(item, "privateKeyHex")).publicKey == key)

            let signed = try SignedReading(decoding: try Self.hex(item, "coseHex"))
            try signed.message.verify(with: key)
            #expect(signed.keyID == signed.reading.device, "\(name)")
            #expect(signed.message.protectedBytes == (try Self.hex(item, "protectedHex")), "\(name)")
            #expect(signed.message.payload == (try Self.hex(item, "payloadHex")), "\(name)")
            #expect(signed.toBeSigned == (try Self.hex(item, "sigStructureHex")), "\(name)")
            #expect(signed.message.signature == (try Self.hex(item, "signatureHex")), "\(name)")
            #expect(signed.message.isTagged)
            #expect(signed.reading.payloadBytes() == signed.message.payload, "\(name): payload is not deterministic")

            let json = try #require(item["reading"] as? [String: Any])
            #expect(json["seq"] as? UInt64 == signed.reading.seq)
            #expect(json["device"] as? String == signed.reading.device)
            let records = try #require(json["records"] as? [[String: Any]])
            #expect(records.count == signed.reading.records.count)
            for (record, decoded) in zip(records, signed.reading.records) {
                #expect(record["code"] as? String == decoded.code)
                #expect(try Self.hex(record, "valueCBORHex") == decoded.value.cbor.encoded())
            }
        }
    }

    /// `medledger reading sign`, given a vector's key and reading, writes the vector's bytes.
    @Test func theToolSignsTheEd25519VectorsByteForByte() throws {
        let directory = try TemporaryDirectory("vectors")
        defer { directory.remove() }
        for item in try Self.loadCases(Self.ed25519File) {
            let name = try #require(item["name"] as? String)
            try (try #require(item["privateKeyPEM"] as? String)).write(
                toFile: directory.file("\(name).key"), atomically: true, encoding: .utf8)
            let reading = try JSONSerialization.data(withJSONObject: try #require(item["reading"]))
            try reading.write(to: URL(fileURLWithPath: directory.file("\(name).json")))
            let signed = try ToolRunner.medledger(
                "reading", "sign", "--json", "\(name).json", "--key", "\(name).key", in: directory.path)
            #expect(signed.status == 0, "\(signed.stderr)")
            #expect(
                signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == item["coseHex"] as? String, "\(name)")
        }
    }

    @Test func receiptVectorsDecodeAsTheyShould() throws {
        let cases = try Self.loadCases(Self.receiptsFile)
        #expect(cases.count == FirmwareVectors.receiptCases.count)
        for item in cases {
            let name = item["name"] as? String ?? "?"
            let bytes = try Self.hex(item, "hex")
            if item["valid"] as? Bool == true {
                let receipt = try Receipt(decoding: bytes)
                #expect(receipt.seq == item["seq"] as? UInt64, "\(name)")
                #expect(receipt.encoded() == bytes, "\(name)")
            } else {
                #expect(throws: LedgerFormatError.self, "\(name) must be refused") { try Receipt(decoding: bytes) }
            }
        }
    }
}
