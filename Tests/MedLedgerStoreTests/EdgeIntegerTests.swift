import MedLedgerCore
import MedLedgerStore
import MedLedgerTestSupport
import Testing

/// Edge integers in every integer field of the messages the ledger takes from devices, submitters
/// and peers (readings, transactions, block headers, commit certificates), put there by rewriting
/// a valid message's CBOR, signed again where a signature covers them: each goes as far as it may
/// (decode → intake → block → store → query → verify) and is refused with a named error where it
/// may not. Nothing traps, and a value that passes is stored and read back as it was.
@Suite("Edge integers from the wire, end to end")
struct EdgeIntegerTests {
    /// 0, 1, 2^31, 2^53, 2^63−1, 2^63, 2^64−1, −1 and −2^64.
    static let edges: [CBOR] = [
        .unsigned(0), .unsigned(1), .unsigned(1 << 31), .unsigned(1 << 53), .unsigned(UInt64(Int64.max)),
        .unsigned(1 << 63), .unsigned(.max), .negative(0), .negative(.max),
    ]
    static let largest = UInt64(Int64.max)

    let channel = TestChannel(block: BlockParameters(maxReadings: 100, maxBytes: 1 << 20, timeoutMs: 50))
    let deviceKey = TestChannel.deviceKey(3)

    /// Every way to put one edge integer in place of one integer of `item` (at any depth; map keys
    /// stay), with the path of the integer replaced.
    static func mutations(of item: CBOR, path: String = "") -> [(path: String, item: CBOR)] {
        switch item {
        case .unsigned, .negative:
            return edges.map { (path, $0) }
        case .array(let elements):
            return elements.indices.flatMap { index in
                mutations(of: elements[index], path: "\(path)[\(index)]").map { mutation in
                    var copy = elements
                    copy[index] = mutation.item
                    return (mutation.path, CBOR.array(copy))
                }
            }
        case .map(let entries):
            return entries.indices.flatMap { index in
                mutations(of: entries[index].value, path: "\(path).\(entries[index].key.diagnosticNotation)").map {
                    mutation in
                    var copy = entries
                    copy[index] = CBORMapEntry(entries[index].key, mutation.item)
                    return (mutation.path, CBOR.map(copy))
                }
            }
        default:
            return []
        }
    }

    /// A store with the device `cuff-3` registered at height 1.
    func store(_ directory: TemporaryDirectory) throws -> LedgerStore {
        let store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        let registration = channel.transaction(
            seq: 1, .registerDevice(device: "cuff-3", key: deviceKey.publicKey, patient: "patient-1"))
        let block = channel.block(on: store.state, transactions: [registration])
        try store.append(block, certificate: channel.certificate(for: block.header))
        return store
    }

    /// Commits a block on the store and checks it reads back and verifies.
    func commit(_ block: Block, to store: LedgerStore, in directory: TemporaryDirectory, path: String) throws {
        try store.append(block, certificate: channel.certificate(for: block.header))
        let report = try StoreVerifier.verify(path: directory.file("ledger.sqlite"))
        #expect(report.isIntact, "\(path): \(report.problems)")
    }

    @Test func everyIntegerOfAReading() throws {
        let base = Reading(
            channel: channel.genesis.channel, device: "cuff-3", seq: 5, time: channel.genesis.createdAt + 5000,
            records: [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(72))])
        let payload = try CBOR.decode(base.payloadBytes())
        let mutations = Self.mutations(of: payload)
        #expect(mutations.count == 3 * Self.edges.count, "seq, time and the record's value")
        let now = channel.genesis.createdAt + 10_000
        var malformed = 0
        var committed = 0
        for (path, mutated) in mutations {
            let directory = try TemporaryDirectory("edge-reading")
            defer { directory.remove() }
            let bytes = try COSESign1.sign(
                payload: mutated.encoded(), keyID: Array("cuff-3".utf8), key: deviceKey
            ).encoded()
            let signed: SignedReading
            do {
                signed = try SignedReading(decoding: bytes)
            } catch {
                #expect(error.reason == .malformed, "\(path) = \(mutated): \(error)")
                malformed += 1
                continue
            }
            // What decodes is in range: seq and time 0…2^63−1, a value an Int64.
            #expect(signed.reading.seq <= Self.largest && signed.reading.time <= Self.largest, "\(path)")
            let store = try store(directory)
            var pool = Mempool(capacity: 10, byteCapacity: 1 << 20)
            let outcome = store.state.intake(
                [IncomingReading(topicDevice: "cuff-3", bytes: bytes)], now: now, pool: &pool,
                verifier: ParallelSignatureVerifier())[0]
            guard case .accepted = outcome else {
                // Refused for a reason of the protocol: seq 0 or a replay, a time ahead, an
                // implausible value.
                continue
            }
            let assembly = store.state.assemble(
                transactions: [], readings: [signed], time: now, proposer: channel.genesis.managers[0].id)
            #expect(assembly.block.body.readings == [bytes], "\(path): the accepted reading is in the block")
            try commit(assembly.block, to: store, in: directory, path: path)
            let stored = try store.readings(matching: ReadingQuery(device: "cuff-3"))
            #expect(stored.map(\.seq) == [signed.reading.seq] && stored.map(\.time) == [signed.reading.time], "\(path)")
            #expect(stored.first?.bytes == bytes, "\(path)")
            committed += 1
        }
        // Seq and time of 2^63, 2^64−1 and the negatives are malformed; seq 1 … 2^63−1 and old
        // times go all the way.
        #expect(malformed >= 8, "\(malformed) malformed")
        #expect(committed >= 6, "\(committed) committed")
    }

    @Test func everyIntegerOfATransaction() throws {
        let time = channel.genesis.createdAt + 5000
        let bodies: [TransactionBody] = [
            .registerDevice(device: "cuff-9", key: TestChannel.deviceKey(9).publicKey, patient: nil),
            .registerDevice(
                device: "cuff-8", key: TestChannel.deviceKey(8, algorithm: .es256).publicKey, patient: "patient-2"),
        ]
        var tried = 0
        var committed = 0
        for body in bodies {
            let transaction = Transaction(
                channel: channel.genesis.channel, submitter: "registrar-1", seq: 7, time: time, body: body)
            let signed = try SignedTransaction(signing: transaction, with: channel.registrarKey)
            let payload = try CBOR.decode(signed.message.payload)
            for (path, mutated) in Self.mutations(of: payload) {
                tried += 1
                let directory = try TemporaryDirectory("edge-tx")
                defer { directory.remove() }
                let bytes = try COSESign1.sign(
                    payload: mutated.encoded(), keyID: Array("registrar-1".utf8), key: channel.registrarKey
                ).encoded()
                let decoded: SignedTransaction
                do {
                    decoded = try SignedTransaction(decoding: bytes)
                } catch {
                    continue  // refused as malformed, with its reason
                }
                #expect(decoded.transaction.seq <= Self.largest && decoded.transaction.time <= Self.largest, "\(path)")
                let store = try store(directory)
                guard store.state.check(decoded) == nil else { continue }
                let block = channel.block(on: store.state, transactions: [decoded])
                try commit(block, to: store, in: directory, path: path)
                committed += 1
            }
        }
        #expect(committed >= 6, "\(committed) committed")
        #expect(tried >= 2 * 3 * Self.edges.count, "seq, time and the key's algorithm of each")
    }

    @Test func everyIntegerOfABlockHeaderAndACertificate() throws {
        let directory = try TemporaryDirectory("edge-block")
        defer { directory.remove() }
        let store = try store(directory)
        let reading = channel.reading(device: "cuff-3", key: deviceKey, seq: 2, time: channel.genesis.createdAt + 2000)
        let block = channel.block(on: store.state, readings: [reading])
        let certificate = channel.certificate(for: block.header)
        let header = try CBOR.decode(block.header.encoded())
        for (path, mutated) in Self.mutations(of: header) {
            let decoded: BlockHeader
            do {
                decoded = try BlockHeader(decoding: mutated.encoded())
            } catch {
                continue
            }
            #expect(decoded.height <= Self.largest && decoded.time <= Self.largest, "\(path)")
            guard decoded != block.header else { continue }
            // Changed, it breaks a rule or its certificate, and the store refuses it.
            let changed = Block(header: decoded, body: block.body)
            #expect(throws: StoreError.self, "\(path)") { try store.append(changed, certificate: certificate) }
            #expect(throws: (any Error).self, "\(path)") {
                try certificate.verify(genesis: channel.genesis, header: decoded)
            }
        }
        let encoded = try CBOR.decode(certificate.encoded())
        for (path, mutated) in Self.mutations(of: encoded) {
            guard let decoded = try? CommitCertificate(decoding: mutated.encoded()) else { continue }
            #expect(decoded.height <= Self.largest && decoded.round <= Self.largest, "\(path)")
            if decoded != certificate {
                #expect(throws: (any Error).self, "\(path)") {
                    try decoded.verify(genesis: channel.genesis, header: block.header)
                }
            }
        }
        // The unchanged block still goes in: nothing above touched the store.
        try commit(block, to: store, in: directory, path: "unchanged")
    }
}
