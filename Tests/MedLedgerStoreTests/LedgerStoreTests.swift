import MedLedgerCore
import MedLedgerTestSupport
import Testing

@testable import MedLedgerStore

@Suite("The SQLite ledger store")
struct LedgerStoreTests {
    let channel = TestChannel()

    /// A store with block 1 (12 registrations) and blocks 2...6 of 30 readings each.
    func makeStore(_ directory: TemporaryDirectory) throws -> (LedgerStore, ChainBuilder) {
        let store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        var builder = ChainBuilder(channel: channel, deviceCount: 12)
        try builder.registerDevices(in: store)
        var random = SeededRandom(seed: 42)
        for _ in 0..<5 { try builder.appendBlock(to: store, readings: 30, random: &random) }
        return (store, builder)
    }

    @Test func blocksPersistAndTheStateReloads() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _) = try makeStore(directory)
        #expect(store.height == 6)
        let reopened = try LedgerStore(path: directory.file("ledger.sqlite"))
        #expect(reopened.state == store.state)
        #expect(try reopened.block(at: 3) == store.block(at: 3))
        let report = try StoreVerifier.verify(path: directory.file("ledger.sqlite"))
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.blocks == 6)
        #expect(report.readings == 150)
        #expect(report.transactions == 12)
    }

    @Test func anotherGenesisIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        let other = TestChannel(channel: "other-channel")
        let error = try #require(throws: StoreError.self) {
            try LedgerStore(path: directory.file("ledger.sqlite"), genesis: other.genesis)
        }
        #expect(error.code == .rejected)
    }

    @Test func queriesSelectByDevicePatientCodeAndTime() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _) = try makeStore(directory)
        let all = try store.readings(matching: ReadingQuery())
        #expect(all.count == 150)
        let device = try store.readings(matching: ReadingQuery(device: "bp-cuff-3"))
        #expect(!device.isEmpty && device.allSatisfy { $0.device == "bp-cuff-3" })
        #expect(device.map(\.seq) == Array(1...UInt64(device.count)))
        let patient = try store.readings(matching: ReadingQuery(patient: "patient-3"))
        #expect(Set(patient.map(\.device)) == ["bp-cuff-3", "bp-cuff-10"])
        #expect(patient.allSatisfy { $0.patient == "patient-3" })
        #expect(try store.readings(matching: ReadingQuery(code: "8462-4")).count == 150)
        #expect(try store.readings(matching: ReadingQuery(code: "2339-0")).isEmpty)
        let times = all.map(\.time).sorted()
        let window = try store.readings(matching: ReadingQuery(from: times[10], to: times[19]))
        #expect(window.count == 10)
        for reading in all.prefix(5) {
            #expect(try SignedReading(decoding: reading.bytes).reading == reading.reading)
        }
    }

    @Test func reassigningADeviceMovesOnlyLaterReadings() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var (store, builder) = try makeStore(directory)
        let move = channel.block(
            on: store.state,
            transactions: [channel.transaction(seq: 100, .assignDevice(device: "bp-cuff-0", patient: "patient-x"))])
        try store.append(move, certificate: channel.certificate(for: move.header))
        var random = SeededRandom(seed: 7)
        try builder.appendBlock(to: store, readings: 24, random: &random)
        let before = try store.readings(matching: ReadingQuery(device: "bp-cuff-0", patient: "patient-0"))
        let after = try store.readings(matching: ReadingQuery(device: "bp-cuff-0", patient: "patient-x"))
        #expect(!before.isEmpty && before.allSatisfy { $0.height <= 6 })
        #expect(!after.isEmpty && after.allSatisfy { $0.height == 8 })
        #expect(try StoreVerifier.verify(path: directory.file("ledger.sqlite")).isIntact)
    }

    @Test func aCommittedReadingIsFoundByDeviceAndSeq() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _) = try makeStore(directory)
        let stored = try #require(try store.readings(matching: ReadingQuery(device: "bp-cuff-3")).last)
        let found = try #require(try store.committedReading(device: "bp-cuff-3", seq: stored.seq))
        #expect(found.height == stored.height)
        #expect(found.bytes == stored.bytes)
        #expect(found.blockHash == (try store.block(at: stored.height)).header.hash)
        #expect(try store.committedReading(device: "bp-cuff-3", seq: stored.seq + 1) == nil)
        #expect(try store.committedReading(device: "nobody", seq: 1) == nil)
    }

    /// The largest seq and time a reading may carry (2^63-1) go through a block into the store,
    /// its queries and its verification without a trapping conversion.
    @Test func theLargestSeqAndTimeAreStoredFoundAndVerified() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        let key = TestChannel.deviceKey(1)
        let registration = channel.transaction(
            seq: 1, .registerDevice(device: "edge-1", key: key.publicKey, patient: "p-1"))
        let first = channel.block(on: store.state, transactions: [registration])
        try store.append(first, certificate: channel.certificate(for: first.header))
        let largest = UInt64(Int64.max)
        let edge = channel.reading(device: "edge-1", key: key, seq: largest, time: largest)
        let second = channel.block(on: store.state, readings: [edge], time: largest)
        try store.append(second, certificate: channel.certificate(for: second.header))
        let found = try #require(try store.committedReading(device: "edge-1", seq: largest))
        #expect(found.bytes == edge.bytes && found.height == 2)
        #expect(try store.readings(matching: ReadingQuery(device: "edge-1")).map(\.seq) == [largest])
        #expect(store.state.devices["edge-1"]?.replay.highest == largest)
        let report = try StoreVerifier.verify(path: directory.file("ledger.sqlite"))
        #expect(report.isIntact, "\(report.problems)")
    }

    @Test func proofsVerifyAgainstTheCertifiedHeader() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _) = try makeStore(directory)
        for reading in try store.readings(matching: ReadingQuery(device: "bp-cuff-5")) {
            let proof = try store.proof(height: reading.height, position: reading.position)
            try proof.certificate.verify(genesis: channel.genesis, header: proof.header)
            try MerkleTree.verifyInclusion(
                leafIndex: UInt64(proof.leafIndex), treeSize: UInt64(proof.header.readingCount),
                leafHash: MerkleTree.leafHash(reading.bytes), proof: proof.path, root: proof.header.readingsRoot)
        }
    }

    @Test func aBlockWithABadCertificateIsRefusedAndNothingIsWritten() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, builder) = try makeStore(directory)
        let device = builder.devices[0]
        let block = channel.block(
            on: store.state, readings: [channel.reading(device: device.id, key: device.key, seq: 99)])
        var certificate = channel.certificate(for: block.header)
        certificate.signatures.removeLast()
        let error = try #require(throws: StoreError.self) { try store.append(block, certificate: certificate) }
        #expect(error.code == .rejected)
        #expect(store.height == 6)
        #expect(try LedgerStore(path: directory.file("ledger.sqlite")).height == 6)
    }

    // MARK: - Tampering: verify names the height and what is wrong

    func tamper(_ sql: String, _ values: [SQLiteValue] = []) throws -> [VerifyProblem] {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try makeStore(directory)
        let db = try SQLiteConnection(path: directory.file("ledger.sqlite"))
        try db.run(sql, values)
        return try StoreVerifier.verify(path: directory.file("ledger.sqlite")).problems
    }

    @Test func oneChangedByteOfAStoredBodyIsFound() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try makeStore(directory)
        let db = try SQLiteConnection(path: directory.file("ledger.sqlite"))
        var body = try #require(try db.first("SELECT body FROM blocks WHERE height = 4") { $0.blob(0) })
        body[body.count / 2] ^= 0x01
        try db.run("UPDATE blocks SET body = ? WHERE height = 4", [.blob(body)])
        let problems = try StoreVerifier.verify(path: directory.file("ledger.sqlite")).problems
        #expect(problems.first?.height == 4, "\(problems)")
    }

    @Test func aChangedReadingRecompressedIsFound() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _) = try makeStore(directory)
        var body = try store.block(at: 5).body
        // Change one byte of one reading's payload (its signed value), then store it re-compressed.
        body.readings[7][20] ^= 0x01
        let db = try SQLiteConnection(path: directory.file("ledger.sqlite"))
        try db.run("UPDATE blocks SET body = ? WHERE height = 5", [.blob(body.compressed())])
        let problems = try StoreVerifier.verify(path: directory.file("ledger.sqlite")).problems
        #expect(problems.first?.height == 5, "\(problems)")
        #expect(problems.first?.message.contains("body.readings-root") == true, "\(problems)")
    }

    @Test func aChangedIndexRowIsFound() throws {
        let problems = try tamper("UPDATE readings SET time = time + 1 WHERE height = 3 AND pos = 11")
        #expect(problems.count == 1)
        #expect(problems.first?.height == 3, "\(problems)")
        #expect(problems.first?.message.contains("index row") == true)
    }

    @Test func aMissingIndexRowIsFound() throws {
        let problems = try tamper("DELETE FROM readings WHERE height = 6 AND pos = 0")
        #expect(problems.map(\.height) == [6], "\(problems)")
    }

    @Test func aChangedRegistryRowIsFound() throws {
        let problems = try tamper("UPDATE devices SET patient = 'patient-99' WHERE id = 'bp-cuff-2'")
        #expect(problems.contains { $0.message.contains("bp-cuff-2") }, "\(problems)")
    }

    @Test func aChangedHeaderIsFound() throws {
        let problems = try tamper("UPDATE blocks SET hash = zeroblob(32) WHERE height = 2")
        #expect(problems.first?.height == 2, "\(problems)")
    }

    /// The store writes every integer below 2^63; a negative one is tampering. Opening the file,
    /// querying it and verifying it must report it, never trap on a conversion.
    @Test(arguments: [
        "UPDATE readings SET seq = -1 WHERE height = 3 AND pos = 0",
        "UPDATE readings SET time = -1 WHERE height = 3 AND pos = 0",
        "UPDATE readings SET height = -3 WHERE height = 3 AND pos = 0",
        "UPDATE readings SET pos = -1 WHERE height = 3 AND pos = 0",
        "UPDATE devices SET registered_at = -1 WHERE id = 'bp-cuff-2'",
        "UPDATE devices SET replay_highest = -1 WHERE id = 'bp-cuff-2'",
        "UPDATE blocks SET height = -6 WHERE height = 6",
        "UPDATE transactions SET seq = -1 WHERE height = 1",
        "UPDATE assignments SET from_height = -1",
    ])
    func aNegativeIntegerInATamperedFileIsReportedNotATrap(_ sql: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try makeStore(directory)
        let path = directory.file("ledger.sqlite")
        try SQLiteConnection(path: path).run(sql)
        if let store = try? LedgerStore(path: path) {
            _ = try? store.readings(matching: ReadingQuery())
        }
        let problems = try StoreVerifier.verify(path: path).problems
        #expect(!problems.isEmpty, "\(sql): no problem reported")
    }

    @Test func aRemovedBlockIsFound() throws {
        let problems = try tamper("DELETE FROM blocks WHERE height = 3")
        #expect(problems.first?.height == 4, "\(problems)")
        #expect(problems.first?.message.contains("no block at height 3") == true)
    }
}
