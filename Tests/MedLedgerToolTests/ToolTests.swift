import Foundation
import MedLedgerCore
import MedLedgerTestSupport
import Testing

@testable import MedLedgerStore

/// The `medledger` binary, run as a real process.
@Suite("medledger: keys, channels, readings", .network)
struct ToolTests {
    @Test(arguments: ["ed25519", "es256"])
    func keygenWritesPKCS8AndPrintsWhatOpenSSLDerives(_ alg: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let made = try ToolRunner.medledger("keygen", "--alg", alg, "--out", "device.key", in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
        let key = try String(contentsOfFile: directory.file("device.key"), encoding: .utf8)
        #expect(key.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let mode = try FileManager.default.attributesOfItem(atPath: directory.file("device.key"))[.posixPermissions]
        #expect((mode as? Int) == 0o600)
        let openssl = try ToolRunner.run(
            "/usr/bin/openssl", ["pkey", "-in", "device.key", "-pubout"], in: directory.path)
        #expect(openssl.status == 0, "\(openssl.stderr)")
        #expect(openssl.stdout == made.stdout)
    }

    @Test func keygenRefusesAnUnknownAlgorithm() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let made = try ToolRunner.medledger("keygen", "--alg", "rsa", "--out", "k", in: directory.path)
        #expect(made.status != 0)
        #expect(made.stderr.contains("rsa"))
    }

    @Test func channelInitWritesKeysAndAValidGenesis() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let made = try ToolRunner.medledger(
            "channel", "init", "--dir", "ch", "--channel", "ward-7", "--validators", "7", "--managers", "2",
            in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: directory.file("ch/genesis.json")))
        let genesis = try JSONDecoder().decode(Genesis.self, from: data)
        try genesis.validate()
        #expect(genesis.council.count == 7)
        #expect(genesis.quorum == 5)
        #expect(genesis.managers.map(\.id) == ["manager-1", "manager-2"])
        #expect(made.stdout.contains(genesis.hash.hex))
        for member in genesis.council + genesis.managers + genesis.registrars {
            let key = try PrivateKey(
                pem: String(contentsOfFile: directory.file("ch/keys/\(member.id).key"), encoding: .utf8))
            #expect(key.publicKey == member.publicKey)
        }
        // The managers' public keys, as devices are given them to verify receipts.
        let keys = try ToolRunner.medledger(
            "channel", "manager-keys", "--genesis", "ch/genesis.json", "--out", "managers", in: directory.path)
        #expect(keys.status == 0, "\(keys.stderr)")
        #expect(keys.stdout.split(separator: "\n").count == 2, "\(keys.stdout)")
        for manager in genesis.managers {
            let pem = try String(contentsOfFile: directory.file("managers/\(manager.id).pub"), encoding: .utf8)
            #expect(try PublicKey(pem: pem) == manager.publicKey)
        }
        let missing = try ToolRunner.medledger(
            "channel", "manager-keys", "--genesis", "none.json", "--out", "m", in: directory.path)
        #expect(missing.status != 0 && missing.stderr.contains("none.json"), "\(missing.stderr)")
        let again = try ToolRunner.medledger(
            "channel", "init", "--dir", "ch", "--channel", "ward-7", in: directory.path)
        #expect(again.status != 0)
        let bad = try ToolRunner.medledger(
            "channel", "init", "--dir", "x", "--channel", "w", "--validators", "3", in: directory.path)
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("3f+1"))
    }

    @Test(arguments: ["ed25519", "es256"])
    func readingSignThenInspect(_ alg: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try ToolRunner.medledger("keygen", "--alg", alg, "--out", "d.key", in: directory.path)
        let pub = try ToolRunner.medledger("keygen", "--alg", alg, "--out", "other.key", in: directory.path)
        try pub.stdout.write(toFile: directory.file("other.pub"), atomically: true, encoding: .utf8)
        let own = try ToolRunner.run(
            "/usr/bin/openssl", ["pkey", "-in", "d.key", "-pubout", "-out", "d.pub"], in: directory.path)
        #expect(own.status == 0)
        let json = """
            {"channel": "ward-7", "device": "cuff-1", "seq": 3, "time": 1700000000000,
             "records": [{"code": "8480-6", "unit": "mm[Hg]", "value": 121},
                         {"code": "8462-4", "unit": "mm[Hg]", "value": 79},
                         {"code": "8310-5", "unit": "Cel", "value": 36.5}]}
            """
        try json.write(toFile: directory.file("r.json"), atomically: true, encoding: .utf8)
        let signed = try ToolRunner.medledger(
            "reading", "sign", "--json", "r.json", "--key", "d.key", "--out", "r.cose", in: directory.path)
        #expect(signed.status == 0, "\(signed.stderr)")
        let reading = try SignedReading(
            decoding: Array(try Data(contentsOf: URL(fileURLWithPath: directory.file("r.cose")))))
        #expect(reading.reading.records[2].value == .float(36.5))
        #expect(reading.reading.records[0].value == .integer(121))

        let good = try ToolRunner.medledger("reading", "inspect", "r.cose", "--public-key", "d.pub", in: directory.path)
        #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(good.stdout.utf8)) as? [String: Any]
        #expect(object?["signature"] as? String == "valid")
        #expect(object?["seq"] as? Int == 3)

        let wrongKey = try ToolRunner.medledger(
            "reading", "inspect", "r.cose", "--public-key", "other.pub", in: directory.path)
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stdout.contains("rejected: bad-signature"))

        var bytes = reading.bytes
        bytes[bytes.count - 70] ^= 0x01  // inside the payload
        try Data(bytes).write(to: URL(fileURLWithPath: directory.file("tampered.cose")))
        let tampered = try ToolRunner.medledger(
            "reading", "inspect", "tampered.cose", "--public-key", "d.pub", in: directory.path)
        #expect(tampered.status == 1)
        #expect(tampered.stdout.contains("rejected:"))

        try Data([0xD2, 0x84, 0x41]).write(to: URL(fileURLWithPath: directory.file("junk.cose")))
        let junk = try ToolRunner.medledger("reading", "inspect", "junk.cose", in: directory.path)
        #expect(junk.status == 1)
        #expect(junk.stdout.contains("rejected: malformed"))
    }

    /// A reading built without any of our code: CBOR written byte by byte, the signature made by
    /// OpenSSL's command line. `inspect` must accept what any correct COSE implementation makes.
    @Test(arguments: ["ed25519", "es256"])
    func inspectAcceptsAReadingSignedByOpenSSL(_ alg: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let genkey =
            alg == "ed25519"
            ? ["genpkey", "-algorithm", "ed25519", "-out", "k.pem"]
            : ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k.pem"]
        #expect(try ToolRunner.run("/usr/bin/openssl", genkey, in: directory.path).status == 0)
        #expect(
            try ToolRunner.run(
                "/usr/bin/openssl", ["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"], in: directory.path
            ).status == 0)
        // Payload {1: "ward-7", 2: "gm-9", 3: 12, 4: 1700000000000, 5: [{0: "2339-0", 1: "mg/dL", 2: 104}]}
        var payload: [UInt8] = [0xA5, 0x01, 0x66] + Array("ward-7".utf8) + [0x02, 0x64] + Array("gm-9".utf8)
        payload += [0x03, 0x0C, 0x04, 0x1B, 0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00]
        payload += [0x05, 0x81, 0xA3, 0x00, 0x66] + Array("2339-0".utf8) + [0x01, 0x65] + Array("mg/dL".utf8)
        payload += [0x02, 0x18, 0x68]
        let alg: UInt8 = alg == "ed25519" ? 0x27 : 0x26  // -8 or -7
        let protected: [UInt8] = [0xA2, 0x01, alg, 0x04, 0x44] + Array("gm-9".utf8)
        var tbs: [UInt8] = [0x84, 0x6A] + Array("Signature1".utf8)
        tbs += [0x40 + UInt8(protected.count)] + protected + [0x40, 0x58, UInt8(payload.count)] + payload
        try Data(tbs).write(to: URL(fileURLWithPath: directory.file("tbs.bin")))
        let sign =
            alg == 0x27
            ? ["pkeyutl", "-sign", "-rawin", "-inkey", "k.pem", "-in", "tbs.bin", "-out", "sig.bin"]
            : ["dgst", "-sha256", "-sign", "k.pem", "-out", "sig.bin", "tbs.bin"]
        let signed = try ToolRunner.run("/usr/bin/openssl", sign, in: directory.path)
        #expect(signed.status == 0, "\(signed.stderr)")
        var signature = Array(try Data(contentsOf: URL(fileURLWithPath: directory.file("sig.bin"))))
        if alg == 0x26 { signature = try Self.rawECDSA(fromDER: signature) }
        var message: [UInt8] = [0xD2, 0x84, 0x40 + UInt8(protected.count)] + protected + [0xA0]
        message += [0x58, UInt8(payload.count)] + payload + [0x58, 0x40] + signature
        try Data(message).write(to: URL(fileURLWithPath: directory.file("r.cose")))
        let inspected = try ToolRunner.medledger(
            "reading", "inspect", "r.cose", "--public-key", "k.pub", in: directory.path)
        #expect(inspected.status == 0, "\(inspected.stdout) \(inspected.stderr)")
        #expect(inspected.stdout.contains("\"signature\" : \"valid\""))
    }

    /// OpenSSL writes ECDSA signatures as DER `SEQUENCE { r INTEGER, s INTEGER }`; COSE wants r‖s.
    static func rawECDSA(fromDER der: [UInt8]) throws -> [UInt8] {
        var index = 2
        func integer() throws -> [UInt8] {
            guard der[index] == 0x02 else { throw ToolTestError("not a DER INTEGER") }
            let length = Int(der[index + 1])
            var value = Array(der[(index + 2)..<(index + 2 + length)])
            index += 2 + length
            while value.count > 32, value.first == 0 { value.removeFirst() }
            return [UInt8](repeating: 0, count: 32 - value.count) + value
        }
        return try integer() + integer()
    }
}

struct ToolTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("medledger verify and sample-chain", .network)
struct VerifyToolTests {
    func channel(_ directory: TemporaryDirectory) throws {
        let made = try ToolRunner.medledger("channel", "init", "--dir", "ch", "--channel", "ward-7", in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
    }

    @Test func verifyPassesAnIntactStoreAndNamesTheHeightOfATamperedOne() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try channel(directory)
        let made = try ToolRunner.medledger(
            "sample-chain", "--dir", "ch", "--db", "s.db", "--blocks", "6", "--readings", "50", "--devices", "10",
            in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
        let ok = try ToolRunner.medledger("verify", "--db", "s.db", in: directory.path)
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        #expect(ok.stdout.contains("OK channel ward-7: 7 blocks, 300 readings, 10 transactions verified"))

        let db = try SQLiteConnection(path: directory.file("s.db"))
        try db.run("UPDATE readings SET seq = seq + 1000 WHERE height = 5 AND pos = 3")
        let bad = try ToolRunner.medledger("verify", "--db", "s.db", in: directory.path)
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("FAIL height 5: "), "\(bad.stdout)")
    }

    @Test func queryPrintsReadingsWhoseProofsVerifyAgainstTheGenesisAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try channel(directory)
        let made = try ToolRunner.medledger(
            "sample-chain", "--dir", "ch", "--db", "s.db", "--blocks", "3", "--readings", "40", "--devices", "8",
            in: directory.path)
        #expect(made.status == 0, "\(made.stderr)")
        let csv = try ToolRunner.medledger(
            "query", "readings", "--db", "s.db", "--device", "sim-1-0", "--format", "csv", in: directory.path)
        #expect(csv.status == 0, "\(csv.stderr)")
        let lines = csv.stdout.split(separator: "\n")
        #expect(lines.first == "height,position,device,seq,time,patient,code,unit,value")
        #expect(lines.dropFirst().allSatisfy { $0.contains(",sim-1-0,") })
        #expect(lines.count == 1 + 15 + 3)  // 15 readings; every fifth is a blood-pressure pair (2 records)

        let json = try ToolRunner.medledger(
            "query", "readings", "--db", "s.db", "--code", "8480-6", "--proof", in: directory.path)
        #expect(json.status == 0, "\(json.stderr)")
        try json.stdout.write(toFile: directory.file("proofs.json"), atomically: true, encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((object?["readings"] as? [Any])?.count == 24)
        let verified = try ToolRunner.medledger(
            "verify-proof", "proofs.json", "--genesis", "ch/genesis.json", in: directory.path)
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        #expect(verified.stdout.contains("OK 24 reading(s)"))

        // A served reading changed by one byte no longer proves anything.
        let tampered = json.stdout.replacingOccurrences(of: "\"cose\" : \"d2844", with: "\"cose\" : \"d2845")
        #expect(tampered != json.stdout)
        try tampered.write(toFile: directory.file("tampered.json"), atomically: true, encoding: .utf8)
        let refused = try ToolRunner.medledger(
            "verify-proof", "tampered.json", "--genesis", "ch/genesis.json", in: directory.path)
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("FAIL reading 0"))
    }

    @Test func verifyRefusesAFileThatIsNoStore() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "hello".write(toFile: directory.file("x.db"), atomically: true, encoding: .utf8)
        let result = try ToolRunner.medledger("verify", "--db", "x.db", in: directory.path)
        #expect(result.status != 0)
        #expect(result.stderr.contains("x.db"))
    }

    /// A writer killed at random moments (seeded) leaves the store at a whole height, every time:
    /// each block is one SQLite transaction.
    @Test func aWriterKilledMidBlockLeavesAWholeHeight() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try channel(directory)
        let seed: UInt64 = 20_261_125
        var random = SeededRandom(seed: seed)
        var lastHeight: Int64 = 0
        for round in 0..<3 {
            let writer = try ToolRunner.start(
                ToolRunner.medledgerPath,
                [
                    "sample-chain", "--dir", "ch", "--db", "s.db", "--blocks", "400", "--readings", "200", "--devices",
                    "50",
                ],
                in: directory.path)
            // Wait (bounded) until the writer has added a few blocks, then kill it at a random moment.
            let target = lastHeight + 3
            let deadline = Date().addingTimeInterval(60)
            var height: Int64 = 0
            while Date() < deadline, writer.isRunning {
                height = (try? Self.height(directory.file("s.db"))) ?? 0
                if height >= target { break }
                usleep(10_000)
            }
            #expect(height >= target, "seed \(seed) round \(round): the writer made no progress")
            usleep(UInt32.random(in: 0...150_000, using: &random))
            kill(writer.processIdentifier, SIGKILL)
            let result = ToolRunner.finish(writer)
            #expect(result.status == 128 + SIGKILL, "seed \(seed) round \(round): \(result.stderr)")
            let report = try StoreVerifier.verify(path: directory.file("s.db"))
            #expect(report.isIntact, "seed \(seed) round \(round): \(report.problems)")
            #expect(Int64(report.blocks) >= height)
            lastHeight = Int64(report.blocks)
        }
        let resumed = try ToolRunner.medledger(
            "sample-chain", "--dir", "ch", "--db", "s.db", "--blocks", "1", "--readings", "200", "--devices", "50",
            in: directory.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try StoreVerifier.verify(path: directory.file("s.db")).blocks == UInt64(lastHeight) + 1)
    }

    static func height(_ path: String) throws -> Int64 {
        guard FileManager.default.fileExists(atPath: path) else { return 0 }
        let db = try SQLiteConnection(path: path)
        return try db.first("SELECT coalesce(max(height), 0) FROM blocks") { $0.int(0) } ?? 0
    }
}
