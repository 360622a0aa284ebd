import MedLedgerBench
import MedLedgerCore
import Testing

/// The search for the sustained rate, against simulated pipelines whose capacity is known.
@Suite("The saturation search")
struct SaturationSearchTests {
    /// A pipeline that commits what is offered up to its capacity, with a latency that grows as
    /// the load nears it.
    func measure(_ rate: Double, capacity: Double) -> LoadStep {
        let committed = min(rate, capacity)
        let p99 = UInt64(40 + 200 * min(rate / capacity, 20))
        return LoadStep(
            requestedPerSecond: rate, devices: 100, perDeviceRate: rate / 100, offeredPerSecond: rate,
            committedPerSecond: committed,
            latency: Percentiles(count: 1000, p50Ms: p99 / 3, p95Ms: p99 / 2, p99Ms: p99, maxMs: p99 * 2), busy: 0,
            resent: 0)
    }

    func search(capacity: Double, start: Double, maxSteps: Int = 12) -> SaturationSearch {
        var search = SaturationSearch(start: start, factor: 2, resolution: 1.25, maxSteps: maxSteps)
        while let rate = search.nextRate { search.record(measure(rate, capacity: capacity)) }
        return search
    }

    @Test func itBracketsTheCapacityWithinItsResolutionForManyCapacities() {
        var random = SeededRandom(seed: 20_261_202)
        for _ in 0..<200 {
            let capacity = Double.random(in: 50...50_000, using: &random)
            let start = Double.random(in: 10...100_000, using: &random)
            let found = search(capacity: capacity, start: start)
            let context = "seed \(random.seed), capacity \(capacity), start \(start)"
            #expect(found.foundSaturation, "\(context)")
            #expect(found.steps.count <= 12, "\(context)")
            let keptUp = found.steps.filter { !$0.saturated }.map(\.requestedPerSecond).max() ?? 0
            let saturated = found.steps.filter(\.saturated).map(\.requestedPerSecond).min() ?? .infinity
            // The bracket holds the capacity and is narrow (or the search went down to its floor).
            #expect(keptUp < saturated, "\(context)")
            #expect(saturated / max(keptUp, 1) <= 1.25 || keptUp == 0, "\(context)")
            // Committed is capped at the capacity; the best step comes within the bracket of it.
            #expect(found.sustainedPerSecond <= capacity + 1e-9, "\(context)")
            #expect(found.sustainedPerSecond >= capacity / 1.25 || keptUp == 0, "\(context)")
        }
    }

    @Test func aFirstStepThatSaturatesMakesItGoDown() {
        let found = search(capacity: 100, start: 1000)
        let rates = found.steps.map(\.requestedPerSecond)
        #expect(rates.prefix(3) == [1000, 500, 250])
        #expect(found.steps.last.map { !$0.saturated } ?? false || found.steps.contains { !$0.saturated })
        #expect(found.sustainedPerSecond == 100)
    }

    @Test func withNoSaturationItStopsAtItsLastStepAndSaysSo() {
        let found = search(capacity: 1e12, start: 100, maxSteps: 4)
        #expect(found.steps.map(\.requestedPerSecond) == [100, 200, 400, 800])
        #expect(!found.foundSaturation)
        #expect(found.nextRate == nil)
    }

    @Test func theLatencyStepRunsAtHalfTheSustainedRateOrHalfTheLowestAskedWhenNothingCommitted() {
        #expect(search(capacity: 100, start: 1000).halfLoadRate == 50)
        // A loaded machine committed nothing in the one step's window: the latency step still
        // offers load (half of what was asked), it does not fall to the floor.
        var stalled = SaturationSearch(start: 20, maxSteps: 1)
        stalled.record(measure(20, capacity: 0))
        #expect(stalled.sustainedPerSecond == 0)
        #expect(stalled.halfLoadRate == 10)
        #expect(SaturationSearch(start: 1, minimum: 1).halfLoadRate == 1)
    }

    @Test func aStepIsSaturatedWhenItFallsBehindQueuesOrFillsTheMempool() {
        #expect(Saturation.judge(offered: 1000, committed: 950, p99Ms: 200, busy: 0) == nil)
        #expect(
            Saturation.judge(offered: 1000, committed: 800, p99Ms: 200, busy: 0) == "committed 800/s of 1000/s offered")
        #expect(Saturation.judge(offered: 1000, committed: 990, p99Ms: 2500, busy: 0) == "p99 2500 ms over 2000 ms")
        #expect(
            Saturation.judge(offered: 1000, committed: 990, p99Ms: 100, busy: 50) == "50 busy receipts (a full mempool)"
        )
        #expect(Saturation.judge(offered: 0, committed: 0, p99Ms: nil, busy: 0) == "nothing was published")
        #expect(Saturation.judge(offered: 10, committed: 10, p99Ms: nil, busy: 0) == "nothing was committed")
    }
}

@Suite("The bounds and the sizing rule")
struct BoundsAndSizingTests {
    @Test func eachValidatorAndEachManagerChecksEveryReadingOnce() {
        #expect(SignatureBound.verificationsPerReading(validators: 4, managers: 1) == 5)
        #expect(SignatureBound.verificationsPerReading(validators: 7, managers: 2, observers: 1) == 10)
        #expect(SignatureBound.readingsPerSecond(verificationsPerSecond: 40_000, validators: 4, managers: 1) == 8000)
        #expect(BrokerLoad.messagesPerReading(managers: 1) == 6)
        #expect(BrokerLoad.messagesPerReading(managers: 2) == 11)
    }

    @Test func thePlanFollowsFromTheCostPerReading() {
        let sizing = Sizing(
            managerCPUMsPerReading: 0.2, validatorCPUMsPerReading: 0.1, diskBytesPerReading: 100,
            managerResidentMiB: 300, validatorResidentMiB: 200, sustainedPerSecond: 3000)
        // 10,000 devices at 1/s: 10,000 readings/s, above what was sustained.
        let plan = sizing.plan(devices: 10_000, ratePerDevice: 1, faults: 2, sites: 3)
        #expect(plan.readingsPerSecond == 10_000)
        #expect(plan.validators == 7)
        #expect(plan.managers == 6)
        #expect(plan.managerCores == 4)  // 10,000 × 0.2 ms = 2 core-seconds a second, at half load: 4
        #expect(plan.validatorCores == 2)
        #expect(plan.memoryGiB == 1)
        #expect(abs(plan.diskGiBPerDay - 10_000 * 86_400 * 100 / 1_073_741_824) < 1e-9)
        #expect(plan.notes.contains { $0.contains("above what the measured machine sustained") })
        let small = sizing.plan(devices: 100, ratePerDevice: 0.1)
        #expect(small.managerCores == 1 && small.validatorCores == 1 && small.validators == 4 && small.managers == 2)
        #expect(!small.notes.contains { $0.contains("above what") })
    }
}

@Suite("The bare rates")
struct BareRateTests {
    /// Each figure is measured and positive. How they compare (all cores against one) is the
    /// bench's to show: measured beside the rest of the suite, two threads were once slower than
    /// half of one, so no test asserts it.
    @Test func verificationSigningAndHashingRatesAreMeasured() {
        let rates = BareRates.measureCompute(seconds: 0.05, cores: 2)
        #expect(rates.ed25519OneCore > 0 && rates.ed25519AllCores > 0)
        #expect(rates.es256OneCore > 0 && rates.es256AllCores > 0)
        #expect(rates.sha256MBPerSecond > 0)
        #expect((rates.receiptSignOneCore ?? 0) > 0)
    }
}
