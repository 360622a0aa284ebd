import MedLedgerCore
import MedLedgerFleet
import MedLedgerTestSupport
import Testing

@Suite("Simulated firmware: values, faults, the store of unanswered messages")
struct FirmwareDeviceTests {
    let channel = TestChannel()

    func device(_ number: Int, registered: Bool = true, capacity: Int = 256, seed: UInt64) -> FirmwareDevice {
        var random = SeededRandom(seed: seed)
        var device = FirmwareDevice(
            id: "dev-\(number)", key: TestChannel.deviceKey(number), kind: DeviceKind.forDevice(number),
            patient: PatientProfile(id: "patient-\(number)", abnormalShare: 0.3, random: &random),
            registered: registered, channel: channel.genesis.channel, capacity: capacity, seed: seed &+ 1)
        device.reservedThrough = 1_000_000
        device.markConnected()  // as its fleet shard does once its client connects
        return device
    }

    /// Samples a reading that must be made.
    func take(_ device: inout FirmwareDevice, now: UInt64, faults: FaultPlan = .none) throws -> OutgoingReading {
        let sampled = device.sample(now: now, faults: faults, skewMs: 0)
        return try #require(sampled)
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
                // Answered at once, so the store never fills.
                device.receive(Receipt(seq: out.receiptSeq, status: .committed(height: 1, blockHash: .zero)))
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
        #expect(device.keptCount == 1, "a faulty message is kept until it is answered")
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
        var report = FleetReport(devices: [device])
        #expect(report.mismatches == ["1 faulty message(s) expecting '\(reason!.rawValue)' got no such rejection"])
        #expect(device.receive(Receipt(seq: outcome.seq, status: .rejected(reason!))) == .rejected(reason!))
        #expect(device.keptCount == 0)
        // A second manager's answer is a repeat, not a mismatch.
        #expect(device.receive(Receipt(seq: outcome.seq, status: .rejected(reason!))) == .none)
        report = FleetReport(devices: [device])
        #expect(report.isCorrect, "\(report.mismatches)")
        #expect(report.rejected == [fault.expectedRejection!.rawValue: 1])
        #expect(report.faulty == [fault.rawValue: 1])
    }

    @Test func aReplayDrawnBeforeAnyCommitIsOwedAndMadeOnceOneIs() throws {
        var device = device(0, seed: 5)
        let replays = FaultPlan([.replayed: 1])
        let first = try take(&device, now: 1, faults: replays)
        let second = try take(&device, now: 2, faults: replays)
        // Nothing committed yet: honest readings, and the replays owed (a few at most).
        #expect(first.expectation == .committed && second.expectation == .committed)
        #expect(device.account.replaysOwed == 2)
        device.receive(Receipt(seq: first.receiptSeq, status: .committed(height: 1, blockHash: Hash256.zero)))
        // The next reading, even when the plan draws no fault, is the owed replay of the committed seq.
        let replay = try take(&device, now: 3)
        #expect(replay.fault == .replayed && replay.receiptSeq == first.receiptSeq)
        #expect(replay.expectation == .rejected(.replayed))
        #expect(device.account.replaysOwed == 1)
        for step in 0..<6 { _ = device.sample(now: 10 + UInt64(step), faults: .none, skewMs: 0) }
        #expect(device.account.replaysOwed == 0)
        #expect(FleetReport(devices: [device]).faulty[Fault.replayed.rawValue] == 2)
    }

    @Test func behaviourFaultsAreHonestReadingsThatSayWhatToDo() throws {
        var device = device(0, seed: 4)
        for fault in [Fault.burst, .disconnect] {
            let sampled = device.sample(now: 1_700_000_000_000, faults: FaultPlan([fault: 1]), skewMs: 300_000)
            let out = try #require(sampled)
            #expect(out.fault == fault)
            #expect(out.expectation == .committed)
        }
        #expect(device.account.honest == 2)
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
        #expect(device.receive(Receipt(seq: 1, status: .rejected(.unknownDevice))) == .rejected(.unknownDevice))
        #expect(FleetReport(devices: [device]).isCorrect)
    }

    @Test func theStoreKeepsMessagesUntilAnsweredAndStopsSamplingWhenFull() throws {
        var device = device(0, capacity: 3, seed: 5)
        let start: UInt64 = 1_700_000_000_000
        var sent: [OutgoingReading] = []
        for step in 0..<5 {
            if let out = device.sample(now: start + UInt64(step), faults: .none, skewMs: 300_000) { sent.append(out) }
        }
        #expect(sent.map(\.receiptSeq) == [1, 2, 3])
        #expect(device.account.storeFull == 2)
        // Never sent: all due; then none until the resend interval has passed.
        #expect(device.takeDue(now: start, resendAfter: 1000) == sent.map(\.bytes))
        #expect(device.takeDue(now: start + 100, resendAfter: 1000).isEmpty)
        #expect(device.takeDue(now: start + 100, resendAfter: 1000, everything: true).count == 3)
        #expect(device.takeDue(now: start + 1200, resendAfter: 1000).count == 3)
        #expect(device.account.sent == 3)
        #expect(device.account.resent == 6)
        device.receive(Receipt(seq: 2, status: .accepted))
        #expect(
            device.receive(Receipt(seq: 2, status: .committed(height: 4, blockHash: .zero)), now: start + 1300)
                == .committed(latencyMs: 1300))
        #expect(device.receive(Receipt(seq: 2, status: .committed(height: 4, blockHash: .zero))) == .none)
        #expect(device.kept.keys.sorted() == [1, 3])
        #expect(device.account.repeatedCommits == 1)
        let nextSample = device.sample(now: start + 10, faults: .none, skewMs: 300_000)
        let next = try #require(nextSample)
        #expect(next.receiptSeq == 4)
        // A busy receipt: the device pauses (half to all of the busy retry), then sends again;
        // each busy in a row doubles the pause.
        _ = device.takeDue(now: start + 2000, resendAfter: 60_000, everything: true)
        #expect(device.receive(Receipt(seq: 4, status: .busy), now: start + 2000, busyRetryMs: 500) == .busy)
        #expect((start + 2250...start + 2500).contains(device.holdUntil))
        #expect(device.takeDue(now: start + 2240, resendAfter: 60_000).isEmpty)
        #expect(device.takeDue(now: start + 2500, resendAfter: 60_000) == [next.bytes])
        // Everything asked for during a pause (a reconnect) goes out when it ends.
        device.receive(Receipt(seq: 4, status: .busy), now: start + 2500, busyRetryMs: 500)
        #expect(device.takeDue(now: start + 2600, resendAfter: 60_000, everything: true).isEmpty)
        #expect(device.takeDue(now: device.holdUntil, resendAfter: 60_000).count == 3)
        #expect((start + 3000...start + 3500).contains(device.holdUntil), "the second busy in a row doubles it")
        device.receive(Receipt(seq: 4, status: .accepted))
        device.receive(Receipt(seq: 4, status: .busy), now: start + 4000, busyRetryMs: 500)
        #expect((start + 4250...start + 4500).contains(device.holdUntil), "an accepted receipt ends the streak")
        // An honest reading refused is a mismatch the report names.
        #expect(device.receive(Receipt(seq: 3, status: .rejected(.replayed))) == .unexpected)
        let report = FleetReport(devices: [device], pendingIsMismatch: false)
        #expect(report.mismatches == ["dev-0 seq 3: expected committed, got rejected (replayed)"])
        #expect(report.pending == 2)
        let strict = FleetReport(devices: [device])
        #expect(strict.mismatchCount == 2)
        #expect(strict.mismatches.last?.hasPrefix("2 honest reading(s) never committed (e.g. dev-0 1,4)") == true)
        // A reading made but never published (the run stopped first) is kept, not lost: it is
        // pending and unsent, and no mismatch.
        let unsentSample = device.sample(now: start + 5000, faults: .none, skewMs: 300_000)
        let unsent = try #require(unsentSample)
        let withUnsent = FleetReport(devices: [device])
        #expect(withUnsent.pending == 3 && withUnsent.unsent == 1)
        #expect(withUnsent.mismatchCount == 2, "\(withUnsent.mismatches)")
        #expect(withUnsent.mismatches.last?.hasPrefix("2 honest reading(s) never committed") == true)
        #expect(withUnsent.summary().contains("(1 never sent: kept by their devices, not lost)"))
        #expect(device.keptHonest(seq: unsent.receiptSeq)?.firstSent == nil)
        // A device that never connected (a wrong password, no broker) sent nothing: that is a
        // failure of the run, not readings kept for later.
        var profileRandom = SeededRandom(seed: 9)
        var neverConnected = FirmwareDevice(
            id: "dev-9", key: TestChannel.deviceKey(9), kind: .glucometer,
            patient: PatientProfile(id: "patient-9", abnormalShare: 0, random: &profileRandom),
            registered: true, channel: channel.genesis.channel, seed: 9)
        neverConnected.reservedThrough = 10
        _ = neverConnected.sample(now: start, faults: .none, skewMs: 300_000)
        let stranded = FleetReport(devices: [neverConnected])
        #expect(stranded.neverConnected == 1 && stranded.unsent == 1)
        #expect(stranded.mismatches == ["1 device(s) never connected to a broker: their messages were never sent"])
    }

    @Test func noSeqBeyondTheReservationIsUsed() throws {
        var device = device(0, seed: 9)
        device.reservedThrough = 2
        #expect(device.sample(now: 1, faults: .none, skewMs: 0)?.receiptSeq == 1)
        #expect(device.sample(now: 2, faults: .none, skewMs: 0)?.receiptSeq == 2)
        #expect(device.sample(now: 3, faults: .none, skewMs: 0) == nil)
        #expect(device.account.seqStarved == 1)
        #expect(device.reservedAhead == 0)
    }

    @Test func aRevocationPutsMessagesInDoubtAndThenExpectsRevokedDevice() throws {
        var device = device(0, seed: 13)
        let before = try take(&device, now: 1, faults: .none)
        device.revocationSubmitted()
        let during = try take(&device, now: 2, faults: .none)
        #expect(during.inDoubt)
        // Either answer is right for messages in doubt.
        #expect(
            device.receive(Receipt(seq: before.receiptSeq, status: .committed(height: 3, blockHash: .zero)))
                == .committed(latencyMs: nil))
        #expect(
            device.receive(Receipt(seq: during.receiptSeq, status: .rejected(.revokedDevice)))
                == .rejected(.revokedDevice))
        device.revocationCommitted()
        let after = try take(&device, now: 3, faults: .none)
        #expect(after.expectation == .rejected(.revokedDevice))
        let malformed = try take(&device, now: 4, faults: FaultPlan([.malformed: 1]))
        #expect(malformed.expectation == .rejected(.malformed), "refused before the device is looked at")
        #expect(
            device.receive(Receipt(seq: after.receiptSeq, status: .rejected(.revokedDevice)))
                == .rejected(.revokedDevice))
        #expect(device.receive(Receipt(seq: 0, status: .rejected(.malformed))) == .rejected(.malformed))
        var report = FleetReport(devices: [device])
        #expect(report.isCorrect, "\(report.mismatches)")
        #expect(report.honest == 0, "every honest reading was in doubt or after the revocation")
        #expect(report.inDoubt == 2)
        #expect(report.inDoubtCommitted == 1)
        #expect(report.inDoubtRejected == 1)
        #expect(report.afterRevocation == 1)
        // After the commit, a committed receipt for a later reading is a mismatch.
        let late = try take(&device, now: 5, faults: .none)
        #expect(
            device.receive(Receipt(seq: late.receiptSeq, status: .committed(height: 9, blockHash: .zero)))
                == .unexpected)
        report = FleetReport(devices: [device])
        #expect(
            report.mismatches == [
                "dev-0 seq \(late.receiptSeq): expected rejected (revoked-device), got committed at 9"
            ])
    }

    @Test func answersToUndecodableMessagesCountOnceWhateverTheirOrder() throws {
        var device = device(0, seed: 17)
        let malformed = try take(&device, now: 1, faults: FaultPlan([.malformed: 1]))
        let oversized = try take(&device, now: 2, faults: FaultPlan([.oversized: 1]))
        #expect(malformed.receiptSeq == 0 && oversized.receiptSeq == 0)
        // Two managers answer each; the second answer to the oversized one comes when only the
        // malformed one is kept: a repeat, not a wrong reason.
        #expect(device.receive(Receipt(seq: 0, status: .rejected(.tooLarge))) == .rejected(.tooLarge))
        #expect(device.receive(Receipt(seq: 0, status: .rejected(.tooLarge))) == .none)
        #expect(device.receive(Receipt(seq: 0, status: .rejected(.malformed))) == .rejected(.malformed))
        #expect(device.receive(Receipt(seq: 0, status: .rejected(.malformed))) == .none)
        var report = FleetReport(devices: [device])
        #expect(report.isCorrect, "\(report.mismatches)")
        #expect(report.rejected == ["too-large": 1, "malformed": 1])
        // A device that never made an undecodable message has no business getting such an answer.
        var other = self.device(1, seed: 18)
        #expect(other.receive(Receipt(seq: 0, status: .rejected(.malformed))) == .unexpected)
        report = FleetReport(devices: [other])
        #expect(
            report.mismatches == [
                "dev-1 seq 0: expected no undecodable message refused for it, got rejected (malformed)"
            ])
    }

    @Test func faultPlansParseDrawTheirSharesAndNameWhatIsWrong() throws {
        let plan = try FaultPlan(parsing: "clock-skew=0.1,malformed=0.02")
        #expect(plan[.clockSkew] == 0.1 && plan[.malformed] == 0.02 && plan[.tampered] == 0)
        #expect(try FaultPlan(parsing: plan.description) == plan)
        #expect(try FaultPlan(parsing: "all=0.01")[.oversized] == 0.01)
        #expect(throws: FleetError.self) { try FaultPlan(parsing: "gremlins=0.1") }
        #expect(throws: FleetError.self) { try FaultPlan(parsing: "malformed=2") }
        var random = SeededRandom(seed: 21)
        var counts: [Fault?: Int] = [:]
        let draws = 100_000
        for _ in 0..<draws { counts[plan.draw(using: &random), default: 0] += 1 }
        #expect(abs(Double(counts[.clockSkew] ?? 0) / Double(draws) - 0.1) < 0.005)
        #expect(abs(Double(counts[.malformed] ?? 0) / Double(draws) - 0.02) < 0.003)
        #expect(abs(Double(counts[nil] ?? 0) / Double(draws) - 0.88) < 0.005)
        // Shares adding up to more than 1 are scaled down: every draw has a fault, in proportion.
        let heavy = try FaultPlan(parsing: "all=0.5")
        counts = [:]
        for _ in 0..<draws { counts[heavy.draw(using: &random), default: 0] += 1 }
        #expect(counts[nil] == nil)
        #expect(counts[.unregistered] == nil, "unregistered is per device, never per reading")
        let each = Double(draws) / Double(Fault.allCases.count - 1)
        for fault in Fault.allCases where fault != .unregistered {
            #expect(abs(Double(counts[fault] ?? 0) - each) < each * 0.1, "\(fault)")
        }
    }
}
