import MedLedgerCore
import MedLedgerFleet
import MedLedgerTestSupport
import Testing

@Suite("Simulated firmware: values, faults, the store of unacknowledged readings")
struct FirmwareDeviceTests {
    let channel = TestChannel()

    func device(_ number: Int, registered: Bool = true, capacity: Int = 256, seed: UInt64) -> FirmwareDevice {
        var random = SeededRandom(seed: seed)
        var device = FirmwareDevice(
            id: "dev-\(number)", key: TestChannel.deviceKey(number), kind: DeviceKind.forDevice(number),
            patient: PatientProfile(id: "patient-\(number)", abnormalShare: 0.3, random: &random),
            registered: registered, channel: channel.genesis.channel, capacity: capacity, seed: seed &+ 1)
        device.reservedThrough = 1_000_000
        return device
    }

    /// A state with devices 0..<count registered.
    func state(registering count: Int) throws -> LedgerState {
        let state = LedgerState(genesis: channel.genesis)
        let transactions = (0..<count).map { number in
            channel.transaction(
                seq: UInt64(number + 1),
                .registerDevice(device: "dev-\(number)", key: TestChannel.deviceKey(number).publicKey, patient: nil))
        }
        return try state.applying(channel.block(on: state, transactions: transactions))
    }

    @Test func everyKindsValuesArePlausibleAllDayForNormalAndAbnormalPatients() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        let state = try state(registering: 20)
        var pool = Mempool(capacity: 100_000, byteCapacity: 1 << 30)
        for number in 0..<20 {
            var device = device(number, seed: seed &+ UInt64(number))
            var batch: [IncomingReading] = []
            // One reading every 20 minutes over two days.
            for step in 0..<144 {
                let time = channel.genesis.createdAt + UInt64(step) * 1_200_000
                let outSample = device.sample(now: time, faults: .none, skewMs: channel.genesis.skewMs)
                let out = try #require(outSample)
                batch.append(IncomingReading(topicDevice: device.id, bytes: out.bytes))
            }
            let outcomes = state.intake(
                batch, now: channel.genesis.createdAt + 200_000_000, pool: &pool,
                verifier: SequentialSignatureVerifier())
            for outcome in outcomes {
                guard case .accepted = outcome else {
                    Issue.record("seed \(seed): \(device.kind) of \(device.patient.conditions): \(outcome)")
                    return
                }
            }
        }
    }

    @Test func bloodPressureFollowsADailyRhythmAndGlucosePeaksAfterMeals() {
        var random = SeededRandom(seed: 7)
        var patient = PatientProfile(id: "p", abnormalShare: 0, random: &random)
        patient.systolic = 120
        let day: UInt64 = 1_700_006_400_000 - 1_700_006_400_000 % 86_400_000
        func mean(_ hour: Double, _ value: (UInt64, inout SeededRandom) -> Double) -> Double {
            let time = day + UInt64(hour * 3_600_000)
            return (0..<200).map { _ in value(time, &random) }.reduce(0, +) / 200
        }
        let afternoon = mean(15) { Double(patient.bloodPressure(at: $0, random: &$1).systolic) }
        let night = mean(3) { Double(patient.bloodPressure(at: $0, random: &$1).systolic) }
        #expect(afternoon > night + 10)
        let afterLunch = mean(13.25) { Double(patient.glucose(at: $0, random: &$1)) }
        let beforeLunch = mean(12.4) { Double(patient.glucose(at: $0, random: &$1)) }
        #expect(afterLunch > beforeLunch + 20)
    }

    @Test(arguments: Fault.allCases.filter { $0.expectedRejection != nil && $0 != .unregistered })
    func eachFaultIsRejectedByTheManagerForItsReason(_ fault: Fault) throws {
        var state = try state(registering: 1)
        var device = device(0, seed: 11)
        // A committed reading first, so a replay has a seq to reuse.
        let firstSample = device.sample(now: channel.genesis.createdAt, faults: .none, skewMs: 300_000)
        let first = try #require(firstSample)
        let signed = try SignedReading(decoding: first.bytes)
        state = try state.applying(channel.block(on: state, readings: [signed]))
        device.receive(
            Receipt(seq: first.receiptSeq, status: .committed(height: state.height, blockHash: state.headerHash)))
        let now = channel.genesis.createdAt + 60_000
        let outSample = device.sample(now: now, faults: FaultPlan([fault: 1]), skewMs: channel.genesis.skewMs)
        let out = try #require(outSample)
        #expect(out.fault == fault)
        #expect(out.expectation == .rejected(fault.expectedRejection!))
        var pool = Mempool(capacity: 10, byteCapacity: 1 << 20)
        let outcome = state.intake(
            [IncomingReading(topicDevice: device.id, bytes: out.bytes)], now: now, pool: &pool,
            verifier: SequentialSignatureVerifier())[0]
        let reason: RejectionReason? =
            switch outcome {
            case .rejected(_, let rejection), .committedOrReplayed(_, let rejection): rejection.reason
            default: nil
            }
        #expect(reason == fault.expectedRejection)
        #expect(outcome.seq == out.receiptSeq)
        device.receive(Receipt(seq: outcome.seq, status: .rejected(reason!)))
        let report = FleetReport(devices: [device])
        #expect(report.isCorrect, "\(report.mismatches)")
        #expect(report.rejected == [fault.expectedRejection!.rawValue: 1])
    }

    @Test func anUnregisteredDeviceIsRefusedAsUnknown() throws {
        let state = try state(registering: 1)
        var device = device(5, registered: false, seed: 3)
        let outSample = device.sample(now: channel.genesis.createdAt, faults: .none, skewMs: 300_000)
        let out = try #require(outSample)
        #expect(out.expectation == .rejected(.unknownDevice))
        var pool = Mempool(capacity: 10, byteCapacity: 1 << 20)
        let outcome = state.intake(
            [IncomingReading(topicDevice: device.id, bytes: out.bytes)], now: channel.genesis.createdAt, pool: &pool,
            verifier: SequentialSignatureVerifier())[0]
        #expect(
            outcome
                == .rejected(
                    seq: 1, ReadingRejection(.unknownDevice, "device 'dev-5' is not registered on this channel")))
    }

    @Test func theStoreKeepsReadingsUntilCommittedAndStopsSamplingWhenFull() throws {
        var device = device(0, capacity: 3, seed: 5)
        var sent: [OutgoingReading] = []
        for step in 0..<5 {
            if let out = device.sample(now: 1_700_000_000_000 + UInt64(step), faults: .none, skewMs: 300_000) {
                sent.append(out)
                device.markSent(seq: out.receiptSeq, now: 1_700_000_000_000)
            }
        }
        #expect(sent.map(\.receiptSeq) == [1, 2, 3])
        #expect(device.account.storeFull == 2)
        #expect(device.resendable(now: 1_700_000_000_100, olderThan: 1000).isEmpty)
        #expect(device.resendable(now: 1_700_000_000_100, olderThan: nil).map(\.reading.seq) == [1, 2, 3])
        #expect(device.resendable(now: 1_700_000_001_000, olderThan: 1000).count == 3)
        device.receive(Receipt(seq: 2, status: .accepted))
        device.receive(Receipt(seq: 2, status: .committed(height: 4, blockHash: .zero)))
        device.receive(Receipt(seq: 2, status: .committed(height: 4, blockHash: .zero)))
        #expect(device.unacked.keys.sorted() == [1, 3])
        #expect(device.account.repeatedCommits == 1)
        let nextSample = device.sample(now: 1_700_000_000_010, faults: .none, skewMs: 300_000)
        let next = try #require(nextSample)
        #expect(next.receiptSeq == 4)
        // An honest reading refused is a mismatch the report names.
        device.receive(Receipt(seq: 3, status: .rejected(.replayed)))
        let report = FleetReport(devices: [device])
        #expect(report.mismatches == ["dev-0 seq 3: an honest reading was rejected (replayed)"])
    }

    @Test func noSeqBeyondTheReservationIsUsed() throws {
        var device = device(0, seed: 9)
        device.reservedThrough = 2
        #expect(device.sample(now: 1, faults: .none, skewMs: 0)?.receiptSeq == 1)
        #expect(device.sample(now: 2, faults: .none, skewMs: 0)?.receiptSeq == 2)
        #expect(device.sample(now: 3, faults: .none, skewMs: 0) == nil)
        #expect(device.account.seqStarved == 1)
    }

    @Test func faultPlansParseAndNameWhatIsWrong() throws {
        let plan = try FaultPlan(parsing: "clock-skew=0.1,malformed=0.02")
        #expect(plan[.clockSkew] == 0.1 && plan[.malformed] == 0.02 && plan[.tampered] == 0)
        #expect(try FaultPlan(parsing: "all=0.01")[.oversized] == 0.01)
        #expect(throws: FleetError.self) { try FaultPlan(parsing: "gremlins=0.1") }
        #expect(throws: FleetError.self) { try FaultPlan(parsing: "malformed=2") }
    }
}
