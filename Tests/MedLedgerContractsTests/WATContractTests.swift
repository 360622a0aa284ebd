import Foundation
import MedLedgerContracts
import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// The contract written in WebAssembly text (contracts/src/recent-study.wat): compiled the same
/// way every time, and deciding as its comment says.
@Suite("A contract written in WAT")
struct WATContractTests {
    let runner = WasmContractRunner()
    static let day: UInt64 = 86_400_000

    static var source: String {
        get throws {
            try String(
                contentsOfFile: ShippedContracts.repositoryRoot + "/contracts/src/recent-study.wat", encoding: .utf8)
        }
    }

    func request(
        _ contract: Hash256, study: String? = "bp-study", patient: String? = nil, from: UInt64 = 1_000_000,
        days: UInt64 = 7
    ) -> AccessRequest {
        AccessRequest(
            contract: contract, kinds: ["8480-6"], from: from, to: from + days * Self.day, purpose: "recent readings",
            patient: patient, study: study)
    }

    func denial(_ decision: AccessDecision) -> String? {
        if case .denied(let denial) = decision.outcome { return denial.message }
        return nil
    }

    @Test func itCompilesToTheCommittedModuleEveryTimeAndPassesTheModuleCheck() throws {
        let first = try ContractText.compile(try Self.source)
        let second = try ContractText.compile(try Self.source)
        #expect(first == second)
        #expect(first == (try ShippedContracts.module("recent-study")))
        #expect(ContractModuleCheck.check(first) == nil)
        // No custom section (id 0): nothing but the text decides the bytes.
        #expect(!first.isEmpty && first.prefix(8) == [0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00])
    }

    @Test func itGrantsAResearcherARecentRangeOfAConsentedStudyAndNothingElse() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy(
            "recent-study", module: try ShippedContracts.module("recent-study"), parameters: ["duration_ms": 60_000])
        #expect(denial(try ledger.decide(request(contract))) == "no patient consents to the study")
        try ledger.consent([1, 2], to: "bp-study")
        let decision = try ledger.decide(request(contract))
        guard case .granted(let grant) = decision.outcome else {
            Issue.record("not granted: \(decision.outcome)")
            return
        }
        #expect(grant.scope.mode == .readings)
        #expect(grant.scope.study == "bp-study")
        #expect(grant.expiresAt == ledger.state.time + 60_000)
        #expect(
            denial(try ledger.decide(request(contract, days: 8)))
                == "the requested time range is longer than the deployment's max_range_ms")
        #expect(
            denial(try ledger.decide(request(contract), by: AccessFixture.clinician))
                == "recent-study access is for registered researchers")
        #expect(denial(try ledger.decide(request(contract, study: nil))) == "the request names no study")
        #expect(
            denial(try ledger.decide(request(contract, patient: "patient-1")))
                == "a study request may not name a single patient")
    }

    @Test func theDeploymentSetsTheLongestRange() throws {
        var ledger = try AccessFixture(runner: runner)
        let contract = try ledger.deploy(
            "recent-study", module: try ShippedContracts.module("recent-study"),
            parameters: ["max_range_ms": Int64(30 * Self.day)])
        try ledger.consent([0], to: "bp-study")
        let decision = try ledger.decide(request(contract, days: 30))
        guard case .granted(let grant) = decision.outcome else {
            Issue.record("not granted: \(decision.outcome)")
            return
        }
        #expect(grant.expiresAt == ledger.state.time + 7 * Self.day)
        #expect(denial(try ledger.decide(request(contract, days: 31)))?.hasPrefix("the requested time range") == true)
    }

    @Test func aTextThatIsNotWATIsRefusedNamingWhere() {
        #expect(throws: ContractText.Failure.self) {
            try ContractText.compile("(module (func (export \"decide\") (i32.add)")
        }
        do {
            _ = try ContractText.compile("(module\n  (func $f (result i32) (i32.const 1) (bogus.op))\n)")
            Issue.record("a bogus instruction compiled")
        } catch {
            #expect(
                error.description == "not a valid WAT module at line 2, column 49: unknown instruction bogus.op",
                "\(error)")
        }
    }
}
