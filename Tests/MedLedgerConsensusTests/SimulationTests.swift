import Foundation
import MedLedgerTestSupport
import Testing

/// Thousands of seeded runs of the simulated council; a failing seed is printed with the command
/// that replays it (`MEDLEDGER_SEED=<seed>`, with `MEDLEDGER_TRACE=1` to print every step).
/// `MEDLEDGER_SEEDS=<count>` runs more (or fewer) seeds; a fast run takes 128.
@Suite("The council under a faulty network and byzantine members")
struct SimulationTests {
    static let environment = ProcessInfo.processInfo.environment
    static let seedsPerBatch = 64
    /// 2048 seeds, or 128 in a fast run (`MEDLEDGER_TESTS=fast`).
    static let seedCount = environment["MEDLEDGER_SEEDS"].flatMap { Int($0) } ?? (TestKinds.fastOnly ? 128 : 2048)
    static let batches = Array(0..<max(1, (seedCount + seedsPerBatch - 1) / seedsPerBatch))

    @Test(arguments: batches)
    func agreementValidityAndProgress(batch: Int) async {
        let seeds = (batch * Self.seedsPerBatch)..<min((batch + 1) * Self.seedsPerBatch, max(Self.seedCount, 1))
        // Off the cooperative pool: a batch computes for seconds (see `offCooperativePool`).
        let failures = await offCooperativePool {
            seeds.compactMap { seed -> String? in
                let scenario = Scenario.random(seed: UInt64(seed))
                guard let failure = Simulation(scenario).run().failure else { return nil }
                return """
                    \(scenario)
                    \(failure)
                    replay: MEDLEDGER_SEED=\(seed) MEDLEDGER_TRACE=1 swift test --filter SimulationTests/replay
                    """
            }
        }
        for failure in failures { Issue.record("\(failure)") }
    }

    @Test func theSweepMeetsEveryKindOfFault() {
        // The sweep's scenarios, drawn without running them, cover every fault and network trouble.
        let scenarios = (0..<UInt64(Self.seedCount)).map(Scenario.random)
        var kinds = Set<String>()
        for scenario in scenarios {
            kinds.formUnion(scenario.validatorFaults.values.map { "validator \($0.rawValue)" })
            kinds.formUnion(scenario.managerFaults.values.map { "manager \($0.rawValue)" })
        }
        #expect(kinds.count == ValidatorFault.allCases.count + ManagerFault.allCases.count)
        #expect(scenarios.contains { $0.wire })
        #expect(scenarios.contains { $0.crashes.contains(where: \.midEffects) })
        #expect(scenarios.contains { !$0.partitions.isEmpty })
        #expect(scenarios.contains { $0.linkDrop != nil })
        #expect(scenarios.contains { $0.commitsLostBeforeGST })
        #expect(scenarios.contains { $0.validators == 7 && $0.validatorFaults.count == 2 })
        #expect(scenarios.contains { $0.managers == 1 })
        // And the runs meet them: equivocation is caught, rounds change, heights are decided.
        var evidence = 0
        var changedRounds = 0
        for scenario in scenarios.prefix(16) {
            let outcome = Simulation(scenario).run()
            #expect(outcome.failure == nil, "\(scenario): \(outcome.failure ?? "")")
            #expect(outcome.decisions > 0)
            evidence += outcome.evidence
            if outcome.highestRound > 0 { changedRounds += 1 }
        }
        #expect(evidence > 0)
        #expect(changedRounds > 0)
    }

    @Test(.enabled(if: environment["MEDLEDGER_SEED"] != nil))
    func replay() throws {
        let seed = try #require(Self.environment["MEDLEDGER_SEED"].flatMap { UInt64($0) })
        let scenario = Scenario.random(seed: seed)
        print(scenario)
        let outcome = Simulation(scenario, trace: Self.environment["MEDLEDGER_TRACE"] == "1").run()
        print(
            "steps \(outcome.steps), deliveries \(outcome.deliveries), decisions \(outcome.decisions), "
                + "evidence \(outcome.evidence), highest round \(outcome.highestRound), height \(outcome.finalHeight)")
        #expect(outcome.failure == nil, "\(outcome.failure ?? "")")
    }
}
