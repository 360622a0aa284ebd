import MedLedgerContracts
import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// The decisions of the three shipped contracts, run by WasmKit on constructed ledgers.
@Suite("Shipped access contracts")
struct ShippedContractTests {
    let runner = WasmContractRunner()
    static let day: UInt64 = 86_400_000

    func request(
        _ contract: Hash256, study: String? = "bp-study", patient: String? = nil,
        kinds: [String] = ["8480-6", "8462-4"]
    ) -> AccessRequest {
        AccessRequest(
            contract: contract, kinds: kinds, from: 0, to: 2_000_000_000_000, purpose: "hypertension cohort",
            patient: patient, study: study)
    }

    func denial(_ decision: AccessDecision) -> AccessDenial? {
        if case .denied(let denial) = decision.outcome { return denial }
        return nil
    }

    func grant(_ decision: AccessDecision) -> AccessGrant? {
        if case .granted(let grant) = decision.outcome { return grant }
        return nil
    }

    @Test func consentStudyGrantsAResearcherTheStudyOfConsentingPatients() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy("consent-study", module: ShippedContracts.module("consent-study"))
        let none = try ledger.decide(request(contract))
        #expect(denial(none)?.code == .contractDenied)
        #expect(denial(none)?.message == "no patient consents to study bp-study")

        try ledger.consent([1, 3, 4], to: "bp-study")
        let decision = try ledger.decide(request(contract))
        let granted = try #require(grant(decision), "\(decision.outcome)")
        #expect(granted.scope.mode == .readings)
        #expect(granted.scope.study == "bp-study")
        #expect(granted.scope.patient == nil)
        #expect(granted.scope.kinds == ["8462-4", "8480-6"])
        #expect(granted.expiresAt == ledger.state.time + 90 * Self.day)
        #expect(granted.requester == AccessFixture.researcher)
        #expect(ledger.state.access.grants[decision.id] == granted)

        #expect(
            denial(try ledger.decide(request(contract), by: AccessFixture.clinician))?.message
                == "consent-based study access is for registered researchers")
        #expect(denial(try ledger.decide(request(contract, study: nil)))?.message == "the request names no study")
        #expect(
            denial(try ledger.decide(request(contract, patient: "patient-1")))?.message
                == "a study request may not name a single patient")
    }

    @Test func consentStudyHonoursTheDeploymentsDuration() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy(
            "consent-study", module: ShippedContracts.module("consent-study"), parameters: ["duration_ms": 5000])
        try ledger.consent([0], to: "bp-study")
        let granted = try #require(grant(try ledger.decide(request(contract))))
        #expect(granted.expiresAt == ledger.state.time + 5000)
    }

    @Test func aggregateRefusesACohortBelowK() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy(
            "aggregate", module: ShippedContracts.module("aggregate"), parameters: ["k": 3])
        try ledger.consent([0, 5], to: "bp-study")
        let small = try ledger.decide(request(contract))
        #expect(denial(small)?.code == .contractDenied)
        #expect(
            denial(small)?.message == "the cohort of study bp-study has 2 consenting patients, fewer than k = 3")
        try ledger.consent([6], to: "bp-study")
        let granted = try #require(grant(try ledger.decide(request(contract))))
        #expect(granted.scope.mode == .aggregates(k: 3))
        #expect(granted.expiresAt == ledger.state.time + 30 * Self.day)
        #expect(denial(try ledger.decide(request(contract), by: AccessFixture.clinician))?.code == .contractDenied)
    }

    @Test func aggregateDefaultsKToFive() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy("aggregate", module: ShippedContracts.module("aggregate"))
        try ledger.consent([0, 1, 2, 3], to: "s")
        #expect(denial(try ledger.decide(request(contract, study: "s")))?.message.hasSuffix("fewer than k = 5") == true)
        try ledger.consent([4], to: "s")
        #expect(grant(try ledger.decide(request(contract, study: "s")))?.scope.mode == .aggregates(k: 5))
    }

    @Test func clinicianReadsOnlyATreatedPatientForALimitedTime() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy(
            "clinician", module: ShippedContracts.module("clinician"), parameters: ["duration_ms": 3_600_000])
        let asked = request(contract, study: nil, patient: "patient-2")
        let untreated = try ledger.decide(asked, by: AccessFixture.clinician)
        #expect(denial(untreated)?.message == "clinician-1 is not recorded as treating patient-2")

        try ledger.commit([
            ledger.registrar(.recordTreatment(clinician: AccessFixture.clinician, patient: "patient-2"))
        ])
        let decision = try ledger.decide(asked, by: AccessFixture.clinician)
        let granted = try #require(grant(decision), "\(decision.outcome)")
        #expect(granted.scope.patient == "patient-2")
        #expect(granted.scope.mode == .readings)
        #expect(granted.expiresAt == ledger.state.time + 3_600_000)
        #expect(granted.isLive(at: ledger.state.time + 3_599_999))
        #expect(!granted.isLive(at: ledger.state.time + 3_600_000))

        #expect(
            denial(try ledger.decide(request(contract, study: nil, patient: "patient-3"), by: AccessFixture.clinician))?
                .code == .contractDenied)
        #expect(denial(try ledger.decide(asked))?.message == "treating access is for registered clinicians")
        #expect(
            denial(
                try ledger.decide(request(contract, study: "x", patient: "patient-2"), by: AccessFixture.clinician))?
                .message == "a treating clinician's request names a patient, not a study")

        try ledger.commit([ledger.registrar(.endTreatment(clinician: AccessFixture.clinician, patient: "patient-2"))])
        #expect(denial(try ledger.decide(asked, by: AccessFixture.clinician))?.code == .contractDenied)
    }

    @Test func clinicianDefaultsToADay() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy("clinician", module: ShippedContracts.module("clinician"))
        try ledger.commit([
            ledger.registrar(.recordTreatment(clinician: AccessFixture.clinician, patient: "patient-0"))
        ])
        let granted = try #require(
            grant(try ledger.decide(request(contract, study: nil, patient: "patient-0"), by: AccessFixture.clinician)))
        #expect(granted.expiresAt == ledger.state.time + Self.day)
    }

    /// Deploys three contracts and decides four requests in one block.
    func decideSeveral(_ fixture: inout AccessFixture) throws {
        let study = try fixture.deploy("consent-study", module: ShippedContracts.module("consent-study"))
        let aggregate = try fixture.deploy(
            "aggregate", module: ShippedContracts.module("aggregate"), parameters: ["k": 2])
        let loop = try fixture.deploy("loop", module: ShippedContracts.module("test-loop-forever"))
        try fixture.consent([0, 1, 2], to: "bp-study")
        try fixture.commit([
            fixture.request(request(study)), fixture.request(request(aggregate)),
            fixture.request(request(loop)), fixture.request(request(aggregate, study: "none")),
        ])
    }

    @Test func decisionsAreTheSameOnEveryReplica() throws {
        var first = try AccessFixture(runner: WasmContractRunner())
        var second = try AccessFixture(runner: WasmContractRunner())
        try decideSeveral(&first)
        try decideSeveral(&second)
        #expect(first.state == second.state)
        #expect(first.state.access.grants.count == 2)
        // The same blocks checked again from genesis by a fresh runner decide the same.
        var replay = LedgerState(genesis: first.channel.genesis)
        for block in first.blocks {
            replay = try replay.applying(block, contracts: WasmContractRunner())
        }
        #expect(replay == first.state)
    }
}
