import Foundation
import MedLedgerCore
import MedLedgerFleet
import MedLedgerStore
import MedLedgerTestSupport
import Testing

@Suite("Fleet parts: the timing wheel, latencies, the fleet file, seq reservations, the audit")
struct FleetPartsTests {
    @Test func theWheelFiresEachItemOnceAtItsTickInOrder() {
        var wheel = TimingWheel<Int>(tickMs: 10, slots: 8, startMs: 1000)
        wheel.schedule(1, atMs: 1035)
        wheel.schedule(2, atMs: 1021)
        wheel.schedule(3, atMs: 1021)
        wheel.schedule(4, atMs: 1000 + 10 * 8 * 3 + 5)  // three revolutions ahead
        wheel.schedule(5, atMs: 500)  // in the past: the next advance
        #expect(wheel.count == 5)
        #expect(wheel.advance(to: 1009) == [])
        #expect(wheel.advance(to: 1010) == [5])
        #expect(wheel.advance(to: 1029) == [])
        #expect(wheel.advance(to: 1030) == [2, 3])
        #expect(wheel.advance(to: 1030) == [])
        #expect(wheel.advance(to: 1040) == [1])
        #expect(wheel.advance(to: 1200) == [], "item 4 waits in its slot through whole revolutions")
        #expect(wheel.advance(to: 1250) == [4])
        #expect(wheel.count == 0)
        // A jump of more than a revolution fires everything overdue.
        for item in 10..<30 { wheel.schedule(item, atMs: 1260 + UInt64(item) * 7) }
        #expect(Set(wheel.advance(to: 5000)) == Set(10..<30))
        #expect(wheel.count == 0)
    }

    @Test func latencyPercentilesAreWithinTheirBucketAndMerge() throws {
        var first = LatencyHistogram()
        var second = LatencyHistogram()
        for value in 1...1000 {
            if value % 2 == 0 { first.record(UInt64(value)) } else { second.record(UInt64(value)) }
        }
        var all = first
        all.merge(second)
        #expect(all.count == 1000)
        #expect(all.maximum == 1000)
        let p50 = try #require(all.percentile(0.5))
        let p99 = try #require(all.percentile(0.99))
        #expect(p50 <= 500 && Double(p50) >= 500 * 0.93, "\(p50)")
        #expect(p99 <= 990 && Double(p99) >= 990 * 0.93, "\(p99)")
        #expect(all.percentile(1) == 1000 || all.percentile(1)! >= 930)
        var exact = LatencyHistogram()
        for value in [3, 3, 7, 20] { exact.record(UInt64(value)) }
        #expect(exact.percentile(0.5) == 3)
        #expect(exact.percentile(0.75) == 7)
        #expect(LatencyHistogram().percentile(0.5) == nil)
        #expect(exact.summary?.meanMs == 8.25)
    }

    @Test func anIntervalsLatenciesAreALaterSnapshotLessAnEarlierOne() throws {
        var running = LatencyHistogram()
        for value in 1...500 { running.record(UInt64(value)) }
        let earlier = running
        for _ in 0..<100 { running.record(10) }
        running.record(40)
        let interval = running.subtracting(earlier)
        #expect(interval.count == 101)
        #expect(interval.percentile(0.5) == 10)
        #expect(interval.percentile(1) == 40)
        #expect(interval.total == 1040)
        // A new largest latency is known exactly.
        running.record(2000)
        #expect(running.subtracting(earlier).maximum == 2000)
        #expect(running.subtracting(running).count == 0)
    }

    @Test func aFleetFileGrowsDeterministicallyAndSurvivesAWriteAndARead() throws {
        let directory = try TemporaryDirectory("fleet-file")
        defer { directory.remove() }
        var file = FleetFile(channel: "ward-7", prefix: "sim-test", seed: 42)
        file.grow(to: 40, algorithms: .mixed, unregisteredShare: 0.25, abnormalShare: 0.5)
        var again = FleetFile(channel: "ward-7", prefix: "sim-test", seed: 42)
        again.grow(to: 20, algorithms: .mixed, unregisteredShare: 0.25, abnormalShare: 0.5)
        again.grow(to: 40, algorithms: .mixed, unregisteredShare: 0.25, abnormalShare: 0.5)
        #expect(again == file, "the same seed makes the same devices, however it grows")
        #expect(Set(file.devices.map(\.id)).count == 40)
        #expect(file.devices[0].patient == file.devices[1].patient, "two devices per patient")
        let keys = try file.keys()
        #expect(keys.filter { $0.algorithm == .es256 }.count == 10)
        let unregistered = file.devices.filter { !$0.register }.count
        #expect((3...18).contains(unregistered), "\(unregistered)")
        let path = directory.file("fleet.json")
        try file.write(path)
        #expect(try FleetFile.load(path) == file)
        try Data("{\"version\": 1".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: FleetError.self) { try FleetFile.load(path) }
    }

    @Test func seqReservationsAreDurableAndADamagedFileIsRefused() throws {
        let directory = try TemporaryDirectory("fleet-seqs")
        defer { directory.remove() }
        let path = directory.file("seqs")
        let reservations = try SeqReservations(path: path, chunk: 100)
        #expect(reservations.reservation("a") == 0)
        #expect(try reservations.extend(["a", "b"]) == [100, 100])
        #expect(try reservations.extend(["a"], from: [250]) == [350])
        let reopened = try SeqReservations(path: path, chunk: 100)
        #expect(reopened.reservation("a") == 350)
        #expect(reopened.reservation("b") == 100)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        try Data("a 350\nb x\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: FleetError.self) { try SeqReservations(path: path, chunk: 100) }
    }

    /// A store with devices registered and some of their readings committed, and the devices
    /// told so by receipts.
    func ledger(
        _ directory: TemporaryDirectory
    ) throws -> (store: LedgerStore, devices: [FirmwareDevice], channel: TestChannel) {
        let channel = TestChannel(channel: "ward-7")
        let store = try LedgerStore(path: directory.file("ledger.sqlite"), genesis: channel.genesis)
        let ids = (0..<3).map { "dev-\($0)" }
        let registrations = ids.enumerated().map { number, id in
            channel.transaction(
                seq: UInt64(number + 1),
                .registerDevice(device: id, key: TestChannel.deviceKey(number).publicKey, patient: nil))
        }
        let first = channel.block(on: store.state, transactions: registrations)
        try store.append(first, certificate: channel.certificate(for: first.header))
        var devices: [FirmwareDevice] = []
        for (number, id) in ids.enumerated() {
            var random = SeededRandom(seed: UInt64(number))
            var device = FirmwareDevice(
                id: id, key: TestChannel.deviceKey(number), kind: .bloodPressureCuff,
                patient: PatientProfile(id: "p-\(number)", abnormalShare: 0, random: &random), registered: true,
                channel: "ward-7", seed: UInt64(number))
            device.reservedThrough = 100
            device.markConnected()  // as its fleet shard does once its client connects
            devices.append(device)
        }
        for round in 0..<3 {
            var readings: [SignedReading] = []
            var seqs: [(Int, UInt64)] = []
            for number in devices.indices {
                let out = devices[number].sample(
                    now: channel.genesis.createdAt + UInt64(round) * 1000, faults: .none, skewMs: 300_000)!
                readings.append(try SignedReading(decoding: out.bytes))
                seqs.append((number, out.receiptSeq))
            }
            let block = channel.block(on: store.state, readings: readings)
            try store.append(block, certificate: channel.certificate(for: block.header))
            for (number, seq) in seqs {
                devices[number].receive(
                    Receipt(seq: seq, status: .committed(height: block.header.height, blockHash: block.header.hash)))
            }
        }
        return (store, devices, channel)
    }

    @Test func theAuditMatchesReceiptsWithTheLedgerByteForByte() throws {
        let directory = try TemporaryDirectory("fleet-audit")
        defer { directory.remove() }
        let (store, made, channel) = try ledger(directory)
        var devices = made
        var report = FleetReport(devices: devices)
        try report.audit(devices, against: store)
        #expect(report.isCorrect, "\(report.mismatches)")
        #expect(report.auditedReadings == 9)
        #expect(report.committed == 9)

        // A reading pending on the device but committed (its receipt not here yet) is fine.
        let pendingOut = devices[0].sample(now: channel.genesis.createdAt + 5000, faults: .none, skewMs: 300_000)!
        #expect(devices[0].takeDue(now: channel.genesis.createdAt + 5000, resendAfter: 60_000) == [pendingOut.bytes])
        var block = channel.block(on: store.state, readings: [try SignedReading(decoding: pendingOut.bytes)])
        try store.append(block, certificate: channel.certificate(for: block.header))
        report = FleetReport(devices: devices)
        #expect(report.mismatchCount == 1, "pending, until the audit finds it")
        try report.audit(devices, against: store)
        #expect(report.isCorrect, "\(report.mismatches)")
        #expect(report.committedWithoutReceipt == 1)
        devices[0].receive(
            Receipt(
                seq: pendingOut.receiptSeq,
                status: .committed(height: block.header.height, blockHash: block.header.hash)))

        // A receipt naming a reading the ledger lacks; a reading in the ledger the device never sent.
        let lost = devices[1].sample(now: channel.genesis.createdAt + 6000, faults: .none, skewMs: 300_000)!
        devices[1].receive(Receipt(seq: lost.receiptSeq, status: .committed(height: 2, blockHash: .zero)))
        let stranger = channel.reading(device: "dev-2", key: TestChannel.deviceKey(2), seq: 50)
        block = channel.block(on: store.state, readings: [stranger])
        try store.append(block, certificate: channel.certificate(for: block.header))
        report = FleetReport(devices: devices)
        try report.audit(devices, against: store)
        #expect(
            Set(report.mismatches) == [
                "dev-1 seq \(lost.receiptSeq): a receipt said committed, but the ledger lacks it",
                "dev-2 seq 50: committed, but the device never sent it as an honest reading",
            ])
        // Auditing from a later height leaves the earlier blocks out.
        report = FleetReport(devices: devices)
        try report.audit(devices, against: store, fromHeight: store.height)
        #expect(report.mismatches == ["dev-2 seq 50: committed, but the device never sent it as an honest reading"])
        #expect(try LedgerStore(path: directory.file("ledger.sqlite")).height == 6)
    }
}
