import ArgumentParser
import Foundation
import MedLedgerCore
import MedLedgerStore

struct SampleChainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-chain",
        abstract: "Append a synthetic, fully valid chain to a store, for trying queries, proofs and verify.",
        discussion: """
            Uses a channel made by 'medledger channel init': its genesis, registrar key and validator keys. Block 1
            registers the devices (their keys derive from --seed, so a later run continues the same chain); then
            each block holds readings of blood pressure, glucose, heart rate, SpO2 and temperature, certified by a
            quorum of the council. Every block is appended in one SQLite transaction.
            """)

    @Option(help: "The channel directory (genesis.json, keys/).")
    var dir: String
    @Option(help: "The SQLite store (made if missing).")
    var db: String
    @Option(help: "How many blocks of readings to append.")
    var blocks: Int = 10
    @Option(help: "Readings per block.")
    var readings: Int = 100
    @Option(help: "How many devices.")
    var devices: Int = 20
    @Option(help: "The seed of the device keys and values.")
    var seed: UInt64 = 1
    @Option(
        name: .customLong("transaction"),
        help: "A signed transaction file (binary or hex) to commit in one block before the readings (repeatable).")
    var transactions: [String] = []

    func validate() throws {
        guard blocks >= 0, readings >= 1, devices >= 1, devices <= 100_000 else {
            throw ValidationError("--blocks must be ≥ 0, --readings ≥ 1, --devices 1...100000")
        }
    }

    func run() throws {
        let genesis = try Files.genesis("\(dir)/genesis.json")
        guard readings <= genesis.block.maxReadings else {
            throw ValidationError("--readings is over the channel's maxReadings (\(genesis.block.maxReadings))")
        }
        let registrar = try Files.privateKey("\(dir)/keys/\(genesis.registrars[0].id).key")
        let validators = try genesis.council.prefix(genesis.quorum).enumerated().map { index, member in
            (index, try Files.privateKey("\(dir)/keys/\(member.id).key"))
        }
        let store: LedgerStore
        do {
            store = try LedgerStore(path: db, genesis: genesis)
        } catch {
            throw ToolError("\(db): \(error)")
        }
        let fleet = (0..<devices).map { index in
            (id: "sim-\(seed)-\(index)", key: Self.deviceKey(seed: seed, index: index), patient: "patient-\(index / 2)")
        }
        func append(_ body: BlockBody) throws {
            let block = Block(
                extending: store.state, time: store.state.time + 1000, proposer: genesis.managers[0].id, body: body)
            try store.append(block, certificate: CommitCertificate.signing(header: block.header, keys: validators))
        }
        var registrarSeq = store.state.submitters[genesis.registrars[0].id]?.highest ?? 0
        let missing = fleet.filter { store.state.devices[$0.id] == nil }
        for chunk in stride(from: 0, to: missing.count, by: 500).map({
            Array(missing[$0..<min($0 + 500, missing.count)])
        }) {
            let transactions = try chunk.map { device in
                registrarSeq += 1
                return try SignedTransaction(
                    signing: Transaction(
                        channel: genesis.channel, submitter: genesis.registrars[0].id, seq: registrarSeq,
                        time: store.state.time,
                        body: .registerDevice(
                            device: device.id, key: device.key.publicKey, patient: device.patient)),
                    with: registrar
                ).bytes
            }
            try append(BlockBody(readings: [], transactions: transactions))
        }
        if !transactions.isEmpty {
            let signed = try transactions.map { path in
                let bytes = try Parse.file(path, what: "transaction")
                do {
                    return try SignedTransaction(decoding: bytes).bytes
                } catch {
                    throw ToolError("\(path): \(error)")
                }
            }
            do {
                try append(BlockBody(readings: [], transactions: signed))
            } catch let error as StoreError {
                throw ToolError("the block of \(signed.count) transaction(s) was refused: \(error)")
            }
        }
        var random = SplitMix(seed: seed &+ store.height)
        var next = 0
        for _ in 0..<blocks {
            var body: [[UInt8]] = []
            for index in 0..<readings {
                let device = fleet[next % fleet.count]
                next += 1
                let seq = (store.state.devices[device.id]?.replay.highest ?? 0) + UInt64(body.count / fleet.count) + 1
                let reading = Reading(
                    channel: genesis.channel, device: device.id, seq: seq, time: store.state.time + UInt64(index),
                    records: Self.records(kind: next % 5, random: &random))
                body.append(try SignedReading(signing: reading, with: device.key).bytes)
            }
            try append(BlockBody(readings: body, transactions: []))
        }
        print("channel \(genesis.channel): height \(store.height), \(store.state.devices.count) devices")
    }

    static func deviceKey(seed: UInt64, index: Int) -> PrivateKey {
        let material = Array("medledger-sample|\(seed)|\(index)".utf8)
        return try! PrivateKey(algorithm: .ed25519, rawBytes: Hash256.sha256(material).bytes)
    }

    static func records(kind: Int, random: inout SplitMix) -> [ReadingRecord] {
        switch kind {
        case 0:
            let systolic = Int64.random(in: 100...160, using: &random)
            return [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(systolic)),
                ReadingRecord(
                    code: "8462-4", unit: "mm[Hg]",
                    value: .integer(systolic - Int64.random(in: 30...60, using: &random))),
            ]
        case 1:
            return [
                ReadingRecord(
                    code: "41653-7", unit: "mg/dL", value: .integer(Int64.random(in: 70...220, using: &random)))
            ]
        case 2:
            return [
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(Int64.random(in: 50...120, using: &random)))
            ]
        case 3:
            return [
                ReadingRecord(code: "59408-5", unit: "%", value: .integer(Int64.random(in: 90...100, using: &random)))
            ]
        default:
            let tenths = Double(Int.random(in: 355...392, using: &random)) / 10
            return [ReadingRecord(code: "8310-5", unit: "Cel", value: .float(tenths))]
        }
    }
}

/// SplitMix64: reproducible values from a seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
