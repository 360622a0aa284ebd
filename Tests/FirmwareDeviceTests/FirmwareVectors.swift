import Foundation
import MedLedgerCore

/// The test vectors for firmware teams (firmware-sim/vectors): fixed keys, readings and receipts,
/// and every intermediate byte string MedLedgerCore makes of them. The files are rendered from
/// these definitions; `VectorTests` checks that the checked-in files are exactly what this code
/// renders now, and the C device's unit test checks its own encoder against the same files, so
/// the two encoders cannot drift apart. `MEDLEDGER_WRITE_VECTORS=1 swift test --filter
/// VectorTests` rewrites the files after a deliberate change.
enum FirmwareVectors {
    /// The repository's firmware-sim/vectors directory.
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../firmware-sim/vectors").standardized

    /// One signed-reading vector.
    struct ReadingCase: Sendable, CustomStringConvertible {
        var name: String
        var note: String
        var algorithm: SignatureAlgorithm
        var privateKeyHex: String
        var reading: Reading
        var description: String { name }
    }

    /// RFC 8032 §7.1, test 1: an Ed25519 key anyone can check a key derivation against.
    static let ed25519Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    /// RFC 6979 §A.2.5: a P-256 private key with a published public point.
    static let p256Scalar = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"

    static let ed25519Cases: [ReadingCase] = [
        ReadingCase(
            name: "blood-pressure",
            note: "two integer records; seq 1 (in the initial byte); the time needs an eight-byte argument",
            algorithm: .ed25519, privateKeyHex: ed25519Seed,
            reading: Reading(
                channel: "ward-7", device: "cuff-1", seq: 1, time: 1_700_000_000_000,
                records: [
                    ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(120)),
                    ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(80)),
                ])),
        ReadingCase(
            name: "glucose-capillary",
            note: "an integer value above 23 (one-byte argument); seq 24 (the first seq with a one-byte argument)",
            algorithm: .ed25519, privateKeyHex: ed25519Seed,
            reading: Reading(
                channel: "ward-7", device: "glucometer-7", seq: 24, time: 1_700_000_060_000,
                records: [ReadingRecord(code: "41653-7", unit: "mg/dL", value: .integer(105))])),
        ReadingCase(
            name: "glucose-mmol-half",
            note: "5.5 is exact in half precision: f9 4580; seq 300 (two-byte argument)",
            algorithm: .ed25519, privateKeyHex: ed25519Seed,
            reading: Reading(
                channel: "ward-7", device: "glucometer-7", seq: 300, time: 1_700_000_123_456,
                records: [ReadingRecord(code: "15074-8", unit: "mmol/L", value: .float(5.5))])),
        ReadingCase(
            name: "temperature-double",
            note:
                "36.6 is exact in no narrower format: a double, fb 4042 4ccc cccc cccd; seq 70000 (four-byte argument)",
            algorithm: .ed25519, privateKeyHex: ed25519Seed,
            reading: Reading(
                channel: "icu-2", device: "thermo.3", seq: 70_000, time: 1_700_000_200_000,
                records: [ReadingRecord(code: "8310-5", unit: "Cel", value: .float(36.6))])),
        ReadingCase(
            name: "vitals-three-records",
            note: "three records in one reading; 37.25 is exact in half precision",
            algorithm: .ed25519, privateKeyHex: ed25519Seed,
            reading: Reading(
                channel: "icu-2", device: "monitor_12", seq: 1000, time: 1_700_000_300_000,
                records: [
                    ReadingRecord(code: "8867-4", unit: "/min", value: .integer(72)),
                    ReadingRecord(code: "59408-5", unit: "%", value: .integer(98)),
                    ReadingRecord(code: "8310-5", unit: "Cel", value: .float(37.25)),
                ])),
        ReadingCase(
            name: "lab-single",
            note: "4100.125 needs single precision: fa 4580 2100; seq 4294967296 (eight-byte argument)",
            algorithm: .ed25519, privateKeyHex: ed25519Seed,
            reading: Reading(
                channel: "lab", device: "analyser-2", seq: 4_294_967_296, time: 1_700_000_400_000,
                records: [
                    ReadingRecord(code: "1920-8", unit: "U/L", value: .float(4100.125)),
                    ReadingRecord(code: "1742-6", unit: "U/L", value: .integer(35)),
                ])),
    ]

    static let es256Case = ReadingCase(
        name: "blood-pressure-es256",
        note: "ES256 signatures are randomized: verify this one, do not expect to reproduce it",
        algorithm: .es256, privateKeyHex: p256Scalar,
        reading: Reading(
            channel: "ward-7", device: "cuff-9", seq: 2, time: 1_700_000_000_500,
            records: [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(131)),
                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(86)),
            ]))

    /// One receipt vector: its fields and bytes, or bytes a decoder must refuse.
    struct ReceiptCase: Sendable {
        var name: String
        var receipt: Receipt?
        var invalid: [UInt8]?
        var why: String?
    }

    static let blockHash = Hash256(bytes: (0..<32).map { UInt8($0) })!

    static let receiptCases: [ReceiptCase] = [
        ReceiptCase(name: "accepted", receipt: Receipt(seq: 1, status: .accepted)),
        ReceiptCase(
            name: "committed", receipt: Receipt(seq: 1, status: .committed(height: 7, blockHash: blockHash))),
        ReceiptCase(
            name: "committed-large",
            receipt: Receipt(seq: 4_294_967_296, status: .committed(height: 1_000_000, blockHash: blockHash))),
        ReceiptCase(name: "rejected", receipt: Receipt(seq: 300, status: .rejected(.implausibleValue))),
        ReceiptCase(name: "rejected-replayed", receipt: Receipt(seq: 24, status: .rejected(.replayed))),
        ReceiptCase(name: "busy", receipt: Receipt(seq: 25, status: .busy)),
        ReceiptCase(
            name: "committed-without-hash",
            invalid: CBOR.map([
                CBORMapEntry(.unsigned(1), .unsigned(1)), CBORMapEntry(.unsigned(2), .text("committed")),
                CBORMapEntry(.unsigned(3), .unsigned(7)),
            ]).encoded(),
            why: "a committed receipt needs 3 (height) and 4 (block hash)"),
        ReceiptCase(
            name: "committed-short-hash",
            invalid: CBOR.map([
                CBORMapEntry(.unsigned(1), .unsigned(1)), CBORMapEntry(.unsigned(2), .text("committed")),
                CBORMapEntry(.unsigned(3), .unsigned(7)),
                CBORMapEntry(.unsigned(4), .bytes([UInt8](repeating: 0, count: 31))),
            ]).encoded(),
            why: "the block hash has 32 bytes"),
        ReceiptCase(
            name: "rejected-without-reason",
            invalid: CBOR.map([CBORMapEntry(.unsigned(1), .unsigned(5)), CBORMapEntry(.unsigned(2), .text("rejected"))])
                .encoded(),
            why: "a rejected receipt needs 5 (reason)"),
        ReceiptCase(
            name: "unknown-status",
            invalid: CBOR.map([CBORMapEntry(.unsigned(1), .unsigned(1)), CBORMapEntry(.unsigned(2), .text("lost"))])
                .encoded(),
            why: "status is accepted, committed, rejected or busy"),
        ReceiptCase(
            name: "no-seq", invalid: CBOR.map([CBORMapEntry(.unsigned(2), .text("accepted"))]).encoded(),
            why: "1 (seq) is required"),
        ReceiptCase(
            name: "not-a-map", invalid: CBOR.array([.unsigned(1), .unsigned(2)]).encoded(), why: "a receipt is a map"),
        ReceiptCase(
            name: "truncated",
            invalid: Array(Receipt(seq: 1, status: .committed(height: 7, blockHash: blockHash)).encoded().dropLast()),
            why: "the input ends inside the block hash"),
    ]

    // MARK: rendering

    /// Renders a reading vector file.
    /// - Parameters:
    ///   - cases: the cases.
    ///   - signatures: for randomized algorithms, the signature to keep per case name.
    static func renderReadings(_ cases: [ReadingCase], description: String, signatures: [String: [UInt8]] = [:])
        throws -> String
    {
        var items: [JSON] = []
        for item in cases {
            let key = try PrivateKey(algorithm: item.algorithm, rawBytes: Hex.decode(item.privateKeyHex)!)
            let payload = item.reading.payloadBytes()
            let protected = protectedBytes(alg: item.algorithm, kid: item.reading.device)
            let toBeSigned = COSESign1.sigStructure(protectedBytes: protected, payload: payload)
            let signature: [UInt8]
            if let kept = signatures[item.name] {
                signature = kept
            } else {
                signature = try key.signature(for: toBeSigned)
            }
            let message = COSESign1(
                protectedHeader: .map([
                    CBORMapEntry(.unsigned(1), .int(item.algorithm.coseIdentifier)),
                    CBORMapEntry(.unsigned(4), .bytes(Array(item.reading.device.utf8))),
                ]), payload: payload, signature: signature)
            items.append(
                .object([
                    ("name", .string(item.name)),
                    ("note", .string(item.note)),
                    ("alg", .int(item.algorithm.coseIdentifier)),
                    ("deterministic", .bool(item.algorithm == .ed25519)),
                    ("privateKeyHex", .string(item.privateKeyHex)),
                    ("publicKeyHex", .string(Hex.encode(key.publicKey.rawBytes))),
                    ("privateKeyPEM", .string(key.pemRepresentation)),
                    ("publicKeyPEM", .string(key.publicKey.pemRepresentation)),
                    ("reading", readingJSON(item.reading)),
                    ("payloadHex", .string(Hex.encode(payload))),
                    ("protectedHex", .string(Hex.encode(protected))),
                    ("sigStructureHex", .string(Hex.encode(toBeSigned))),
                    ("signatureHex", .string(Hex.encode(signature))),
                    ("coseHex", .string(Hex.encode(message.encoded()))),
                ]))
        }
        return JSON.object([("description", .string(description)), ("cases", .array(items))]).rendered() + "\n"
    }

    /// Renders the receipts vector file.
    static func renderReceipts() -> String {
        let items: [JSON] = receiptCases.map { item in
            guard let receipt = item.receipt else {
                return .object([
                    ("name", .string(item.name)), ("valid", .bool(false)), ("why", .string(item.why ?? "")),
                    ("hex", .string(Hex.encode(item.invalid ?? []))),
                ])
            }
            var fields: [(String, JSON)] = [("name", .string(item.name)), ("valid", .bool(true))]
            fields.append(("seq", .int(Int64(receipt.seq))))
            switch receipt.status {
            case .accepted:
                fields.append(("status", .string("accepted")))
            case .committed(let height, let hash):
                fields.append(("status", .string("committed")))
                fields.append(("height", .int(Int64(height))))
                fields.append(("blockHashHex", .string(hash.hex)))
            case .rejected(let reason):
                fields.append(("status", .string("rejected")))
                fields.append(("reason", .string(reason.rawValue)))
            case .busy:
                fields.append(("status", .string("busy")))
                fields.append(("reason", .string(Receipt.busyReason)))
            }
            fields.append(("hex", .string(Hex.encode(receipt.encoded()))))
            return .object(fields)
        }
        let description =
            "Receipts a device receives on medledger/v1/{channel}/receipts/{device}, encoded by MedLedgerCore; "
            + "the invalid ones must be refused by a device's decoder."
        return JSON.object([("description", .string(description)), ("cases", .array(items))]).rendered() + "\n"
    }

    /// The signed-receipts vectors: a channel's two managers (Ed25519, fixed keys), the topic of
    /// one device's receipts, and receipts a device must trust or ignore.
    static let receiptManagers: [(id: String, key: PrivateKey)] = [
        ("manager-1", try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 0x4D, count: 32))),
        ("manager-2", try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 0x4E, count: 32))),
    ]
    static let receiptTopic = "medledger/v1/ward-7/receipts/cuff-1"

    /// One signed-receipt vector: the bytes, and whether a device trusts them (else why not).
    struct SignedReceiptCase {
        var name: String
        var receipt: Receipt
        var bytes: [UInt8]
        var untrusted: ReceiptError.Code?
    }

    static func signedReceiptCases() throws -> [SignedReceiptCase] {
        let topic = receiptTopic
        let (id, key) = receiptManagers[0]
        let committed = Receipt(seq: 41, status: .committed(height: 9, blockHash: blockHash))
        let rejected = Receipt(seq: 42, status: .rejected(.clockSkew))
        let accepted = Receipt(seq: 43, status: .accepted)
        let signed = try committed.published(topic: topic, manager: id, key: key)
        var flipped = signed
        flipped[flipped.count - 1] ^= 0x01
        let stranger = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 0x58, count: 32))
        return [
            SignedReceiptCase(name: "committed-signed", receipt: committed, bytes: signed),
            SignedReceiptCase(
                name: "rejected-signed-by-manager-2", receipt: rejected,
                bytes: try rejected.published(topic: topic, manager: receiptManagers[1].id, key: receiptManagers[1].key)
            ),
            SignedReceiptCase(name: "accepted-bare", receipt: accepted, bytes: accepted.encoded()),
            SignedReceiptCase(
                name: "committed-bare", receipt: committed, bytes: committed.encoded(), untrusted: .unsigned),
            SignedReceiptCase(
                name: "committed-for-another-device", receipt: committed,
                bytes: try committed.published(topic: "medledger/v1/ward-7/receipts/cuff-2", manager: id, key: key),
                untrusted: .badSignature),
            SignedReceiptCase(
                name: "committed-signed-by-another-key", receipt: committed,
                bytes: try committed.published(topic: topic, manager: id, key: stranger), untrusted: .badSignature),
            SignedReceiptCase(
                name: "committed-signed-by-no-manager", receipt: committed,
                bytes: try committed.published(topic: topic, manager: "mallory", key: stranger),
                untrusted: .unknownSigner),
            SignedReceiptCase(
                name: "committed-signature-changed", receipt: committed, bytes: flipped, untrusted: .badSignature),
        ]
    }

    /// Renders the signed-receipts vector file.
    static func renderSignedReceipts() throws -> String {
        let managers: [JSON] = receiptManagers.map { manager in
            .object([
                ("id", .string(manager.id)), ("alg", .int(manager.key.algorithm.coseIdentifier)),
                ("publicKeyHex", .string(Hex.encode(manager.key.publicKey.rawBytes))),
                ("publicKeyPEM", .string(manager.key.publicKey.pemRepresentation)),
            ])
        }
        let cases: [JSON] = try signedReceiptCases().map { item in
            var fields: [(String, JSON)] = [
                ("name", .string(item.name)), ("trusted", .bool(item.untrusted == nil)),
            ]
            if let why = item.untrusted { fields.append(("why", .string(why.rawValue))) }
            fields.append(("seq", .int(Int64(item.receipt.seq))))
            fields.append(("status", .string(item.receipt.statusName)))
            fields.append(("hex", .string(Hex.encode(item.bytes))))
            return .object(fields)
        }
        let description =
            "Receipts as managers publish them (PROTOCOL.md, \"Signed receipts\"): committed and rejected ones "
            + "are COSE_Sign1 (tag 18) signed by a manager the genesis names (kid: its id), over the receipt map "
            + "as payload with the receipts topic's UTF-8 as external_aad; accepted and busy ones are bare maps. "
            + "A device acts on a case only if trusted is true; the others it ignores (why: the reason)."
        return JSON.object([
            ("description", .string(description)), ("topic", .string(receiptTopic)), ("managers", .array(managers)),
            ("cases", .array(cases)),
        ]).rendered() + "\n"
    }

    static let ed25519Description =
        "COSE_Sign1 readings signed with Ed25519 (alg -8), made by MedLedgerCore. Ed25519 is deterministic: "
        + "an encoder given the key and the reading must produce every hex string here byte for byte."
    static let es256Description =
        "A COSE_Sign1 reading signed with ES256 (alg -7). ECDSA signatures are randomized: the payload, protected "
        + "header and Sig_structure must match byte for byte; the signature (r || s, 64 bytes) must verify, and "
        + "a fresh signature of your own will differ."

    /// The protected header `{1: alg, 4: kid}` as MedLedgerCore serializes it.
    static func protectedBytes(alg: SignatureAlgorithm, kid: String) -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .int(alg.coseIdentifier)),
            CBORMapEntry(.unsigned(4), .bytes(Array(kid.utf8))),
        ]).encoded()
    }

    /// A reading as `medledger reading sign --json` reads it, each record with its value's CBOR.
    static func readingJSON(_ reading: Reading) -> JSON {
        .object([
            ("channel", .string(reading.channel)),
            ("device", .string(reading.device)),
            ("seq", .int(Int64(reading.seq))),
            ("time", .int(Int64(reading.time))),
            (
                "records",
                .array(
                    reading.records.map { record in
                        let value: JSON =
                            switch record.value {
                            case .integer(let int): .int(int)
                            case .float(let double): .double(double)
                            }
                        return .object([
                            ("code", .string(record.code)), ("unit", .string(record.unit)), ("value", value),
                            ("valueCBORHex", .string(Hex.encode(record.value.cbor.encoded()))),
                        ])
                    })
            ),
        ])
    }
}

/// A JSON value with ordered object keys, rendered two-space indented (stable text for a
/// checked-in file).
indirect enum JSON {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case array([JSON])
    case object([(String, JSON)])

    func rendered(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .string(let text): return Self.quote(text)
        case .int(let value): return "\(value)"
        case .double(let value): return "\(value)"
        case .bool(let value): return value ? "true" : "false"
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + $0.rendered(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n"
                + fields.map { inner + Self.quote($0.0) + ": " + $0.1.rendered(indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
