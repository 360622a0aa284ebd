import Foundation
import LedgerFixtures
import MedLedgerCore
import MedLedgerStore

/// Samples of one measurement, in seconds.
struct Samples {
    var values: [Double] = []

    var median: Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
    var min: Double { values.min() ?? .nan }

    /// Runs `body` once and records its wall-clock time.
    mutating func measure(_ body: () throws -> Void) rethrows {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        let elapsed = clock.now - start
        values.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}

func milliseconds(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }

/// Prints one measurement's label, median and minimum, aligned.
func printRow(_ label: String, _ samples: Samples) {
    let padded = (label + ":").padding(toLength: 40, withPad: " ", startingAt: 0)
    print("   \(padded) median \(milliseconds(samples.median)), min \(milliseconds(samples.min))")
}

extension LedgerFigures {
    /// Figures 1 and 2: checking a block of 1,000 Ed25519 readings against its bare signature
    /// checks, and on all cores against one core.
    static func checkFigures(options: Options) throws -> [Figure] {
        let fixture = LedgerFixture(deviceCount: options.devices)
        let (state, _) = fixture.registeredState()
        let block = fixture.block(extending: state, body: fixture.readingBody(0..<1000))
        let headerBytes = block.header.encoded()
        let compressed = block.body.compressed()
        let parameters = fixture.genesis.block

        // The bare cost: the same 1,000 messages, keys and signatures, prepared beforehand.
        let jobs: [SignatureJob] = try block.body.readings.map { bytes in
            let signed = try SignedReading(decoding: bytes)
            guard let record = state.devices[signed.keyID] else { fatalError("unregistered \(signed.keyID)") }
            return SignatureJob(key: record.key, message: signed.toBeSigned, signature: signed.message.signature)
        }
        let sequential = SequentialSignatureVerifier()
        let parallel = ParallelSignatureVerifier()
        var sink = 0

        func bare() {
            for job in jobs where job.key.isValidSignature(job.signature, for: job.message) { sink &+= 1 }
        }
        func checkDecoded(_ verifier: some SignatureVerifier) throws {
            let checked = try state.check(block, verifier: verifier)
            sink &+= checked.readings.count
        }
        func checkFromBytes(_ verifier: some SignatureVerifier) throws {
            let header = try BlockHeader(decoding: headerBytes)
            let body = try BlockBody(compressed: compressed, parameters: parameters)
            let checked = try state.check(Block(header: header, body: body), verifier: verifier)
            sink &+= checked.readings.count
        }

        // Warm up caches, page in code, let the CPU settle.
        for _ in 0..<3 {
            bare()
            try checkFromBytes(sequential)
            try checkFromBytes(parallel)
        }
        var bareTimes = Samples()
        var checkTimes = Samples()
        var checkOnlyTimes = Samples()
        var parallelTimes = Samples()
        var parallelOnlyTimes = Samples()
        for round in 0..<options.rounds {
            // Interleaved, the order turned each round so drift and neighbours hit all alike.
            var steps: [() throws -> Void] = [
                { bareTimes.measure(bare) },
                { try checkTimes.measure { try checkFromBytes(sequential) } },
                { try checkOnlyTimes.measure { try checkDecoded(sequential) } },
                { try parallelTimes.measure { try checkFromBytes(parallel) } },
                { try parallelOnlyTimes.measure { try checkDecoded(parallel) } },
            ]
            if round % 2 == 1 { steps.reverse() }
            for step in steps { try step() }
        }
        guard sink > 0 else { fatalError("nothing was checked") }

        let ratio = checkTimes.median / bareTimes.median
        let ratioMin = checkTimes.min / bareTimes.min
        let ratioCheckOnly = checkOnlyTimes.median / bareTimes.median
        print("")
        print("1. Checking a block of 1,000 Ed25519 readings, one core (\(options.rounds) interleaved rounds)")
        printRow("bare isValidSignature x1000", bareTimes)
        printRow("decode header+body, LedgerState.check", checkTimes)
        printRow("LedgerState.check (body decoded)", checkOnlyTimes)
        print(String(format: "   ratio %.3f (median), %.3f (min); check alone %.3f", ratio, ratioMin, ratioCheckOnly))

        let speedup = checkTimes.median / parallelTimes.median
        let speedupMin = checkTimes.min / parallelTimes.min
        print("")
        print("2. Checking the block on all \(parallel.workers) cores (ParallelSignatureVerifier)")
        printRow("decode + check, all cores", parallelTimes)
        printRow("LedgerState.check (body decoded)", parallelOnlyTimes)
        print(String(format: "   speedup %.3f (median), %.3f (min)", speedup, speedupMin))

        return [
            Figure(
                name: "block check / bare signature checks (1 core)", value: ratio, unit: "x", target: "<= 1.10",
                pass: ratio <= 1.10,
                details: [
                    "bare_median_s": bareTimes.median, "bare_min_s": bareTimes.min,
                    "check_median_s": checkTimes.median, "check_min_s": checkTimes.min,
                    "check_only_median_s": checkOnlyTimes.median, "ratio_min": ratioMin,
                    "ratio_check_only": ratioCheckOnly, "rounds": Double(options.rounds),
                ]),
            Figure(
                name: "block check speedup, all cores vs one", value: speedup, unit: "x",
                target: ">= 1.8 (\(parallel.workers) cores)", pass: speedup >= 1.8,
                details: [
                    "one_core_median_s": checkTimes.median, "all_cores_median_s": parallelTimes.median,
                    "all_cores_min_s": parallelTimes.min, "speedup_min": speedupMin,
                    "workers": Double(parallel.workers),
                ]),
        ]
    }
}
