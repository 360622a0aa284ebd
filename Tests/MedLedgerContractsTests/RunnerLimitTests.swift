import MedLedgerContracts
import MedLedgerCore
import MedLedgerTestSupport
import Testing

/// Contracts that misbehave are denied with the reason, and the chain goes on.
@Suite("The contract runner's limits")
struct RunnerLimitTests {
    let runner = WasmContractRunner()

    func decide(_ module: [UInt8], runner: WasmContractRunner? = nil) throws -> (AccessDenial?, AccessFixture) {
        var ledger = try AccessFixture(runner: runner ?? self.runner)
        let contract = try ledger.deploy("under-test", module: module)
        let decision = try ledger.decide(
            AccessRequest(
                contract: contract, kinds: ["8867-4"], from: 0, to: 1, purpose: "test", patient: nil, study: "s"))
        if case .denied(let denial) = decision.outcome { return (denial, ledger) }
        return (nil, ledger)
    }

    @Test(.timeLimit(.minutes(1))) func aContractThatLoopsForeverRunsOutOfFuel() throws {
        var (denial, ledger) = try decide(ShippedContracts.module("test-loop-forever"))
        #expect(denial?.code == .outOfFuel)
        #expect(denial?.message == "the contract ran out of its 1000000 units of fuel")
        // The chain keeps committing after it.
        let height = ledger.state.height
        try ledger.commit([], readings: [ledger.reading(patient: 0, time: ledger.state.time)])
        #expect(ledger.state.height == height + 1)
    }

    /// A contract that loops on a host call (here the one that scans the registry) runs out of
    /// its host fuel long before its instruction fuel, and the chain goes on.
    @Test(.timeLimit(.minutes(1))) func aContractThatLoopsOnAHostCallRunsOutOfHostFuel() throws {
        let module = try ContractText.compile(
            """
            (module
              (import "medledger" "patient_device_count" (func $count (param i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 0) "patient-0")
              (func (export "decide")
                (loop $again
                  (drop (call $count (i32.const 0) (i32.const 9)))
                  (br $again))))
            """)
        var (denial, ledger) = try decide(module)
        #expect(denial?.code == .outOfFuel)
        #expect(denial?.message == "the contract ran out of its 1000000 units of fuel for host calls")
        let height = ledger.state.height
        try ledger.commit([], readings: [ledger.reading(patient: 0, time: ledger.state.time)])
        #expect(ledger.state.height == height + 1)
    }

    @Test func aSmallerBudgetStopsItSooner() throws {
        let small = WasmContractRunner(
            limits: ContractLimits(fuel: 1000, memoryBytes: 1 << 20, tableElements: 16, stackBytes: 64 << 10))
        let (denial, _) = try decide(ShippedContracts.module("test-loop-forever"), runner: small)
        #expect(denial?.message == "the contract ran out of its 1000 units of fuel")
        // The shipped contracts fit in a budget of a few thousand instructions.
        var ledger = try AccessFixture(runner: small)
        let contract = try ledger.deploy("consent-study", module: ShippedContracts.module("consent-study"))
        try ledger.consent([0], to: "s")
        let decision = try ledger.decide(
            AccessRequest(contract: contract, kinds: ["8867-4"], from: 0, to: 1, purpose: "p", study: "s"))
        guard case .granted = decision.outcome else {
            Issue.record("consent-study needs more than 1000 fuel: \(decision.outcome)")
            return
        }
    }

    @Test func aTrappingContractIsDenied() throws {
        let (denial, _) = try decide(ShippedContracts.module("test-trap"))
        #expect(denial?.code == .trap)
        #expect(denial?.message == "the contract trapped: unreachable")
    }

    @Test func aContractOverTheMemoryLimitIsDenied() throws {
        let (growing, _) = try decide(ShippedContracts.module("test-memory-hog"))
        #expect(growing?.code == .memoryLimit, "\(String(describing: growing))")
        #expect(growing?.message == "the contract asked for 6684672 bytes of memory; the limit is 1048576")
        let (declared, _) = try decide(ShippedContracts.module("test-big-memory"))
        #expect(declared?.code == .memoryLimit, "\(String(describing: declared))")
        #expect(declared?.message == "the module's initial memory of 32 pages is over the limit of 16 pages")
    }

    @Test func floatingPointIsRefusedBeforeItRuns() throws {
        let (denial, _) = try decide(ShippedContracts.module("test-floats"))
        #expect(denial?.code == .forbiddenFeature, "\(String(describing: denial))")
    }

    @Test func aContractMustDecideExactlyOnce() throws {
        #expect(try decide(ShippedContracts.module("test-undecided")).0?.code == .noDecision)
        let twice = try decide(ShippedContracts.module("test-decide-twice")).0
        #expect(twice?.code == .invalidDecision)
        #expect(twice?.message.contains("decided twice") == true)
    }

    static let preamble: [UInt8] = [0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00]

    @Test func malformedModulesAreDeniedNotCrashed() throws {
        let garbage = try decide(Self.preamble + [0xFF, 0x13, 0x37, 0x00])
        #expect(garbage.0?.code == .malformedContract, "\(String(describing: garbage.0))")
        let truncated = try ShippedContracts.module("consent-study")
        let cut = try decide(Array(truncated.prefix(truncated.count - 9)))
        #expect(cut.0?.code == .malformedContract, "\(String(describing: cut.0))")
        let empty = try decide(Self.preamble)
        #expect(empty.0?.code == .missingExport)
    }

    @Test func importsOutsideTheHostAPIAreDenied() throws {
        // (module (type (func)) (import "env" "f" (func (type 0))))
        let module =
            Self.preamble + [0x01, 0x04, 0x01, 0x60, 0x00, 0x00] + [
                0x02, 0x09, 0x01, 0x03, 0x65, 0x6E, 0x76, 0x01, 0x66, 0x00, 0x00,
            ]
        let (denial, _) = try decide(module)
        #expect(denial?.code == .badImport)
        #expect(denial?.message.contains("env.f") == true)
        // (import "medledger" "grant" (func)) with the wrong type.
        let wrongType =
            Self.preamble + [0x01, 0x04, 0x01, 0x60, 0x00, 0x00] + [
                0x02, 0x13, 0x01, 0x09, 0x6D, 0x65, 0x64, 0x6C, 0x65, 0x64, 0x67, 0x65, 0x72, 0x05, 0x67, 0x72, 0x61,
                0x6E, 0x74, 0x00, 0x00,
            ]
        let typed = try decide(wrongType).0
        #expect(typed?.code == .badImport)
        #expect(typed?.message == "import grant has type () -> (), the host API's is (i64) -> ()")
    }

    @Test func theStaticCheckPassesTheShippedContracts() throws {
        for name in ["consent-study", "aggregate", "clinician"] {
            #expect(ContractModuleCheck.check(try ShippedContracts.module(name)) == nil, "\(name)")
        }
        #expect(ContractModuleCheck.check(try ShippedContracts.module("test-floats"))?.code == .forbiddenFeature)
    }

    @Test func theDefaultCoreRunnerDeniesWithNoRunner() throws {
        let (denial, _) = try decide(ShippedContracts.module("test-grant-all"), runner: nil)
        #expect(denial == nil)
        var ledger = try AccessFixture(runner: DenyingContractRunner())
        let contract = try ledger.deploy("grant-all", module: ShippedContracts.module("test-grant-all"))
        let decision = try ledger.decide(
            AccessRequest(contract: contract, kinds: ["8867-4"], from: 0, to: 1, purpose: "p", study: "s"))
        #expect(decision.outcome == .denied(AccessDenial(.noRunner, "this checker runs no contracts")))
    }
}
