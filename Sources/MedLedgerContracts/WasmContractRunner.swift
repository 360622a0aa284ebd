public import MedLedgerCore
import Synchronization
@_spi(Fuzzing) import WasmKit

/// Runs access contracts with WasmKit: an interpreter with fuel metering, a memory and table limiter
/// and the host API of docs/CONTRACTS.md, and nothing else (no WASI, no clock, no randomness, no I/O).
///
/// Every failure is a denial with its reason: a module that does not parse or uses what contracts
/// may not, an unknown import, a missing `decide`, running out of fuel or memory, a trap, returning
/// without a decision. The same contract, request and ledger give the same decision on every
/// machine with the same limits and WasmKit version.
public struct WasmContractRunner: ContractRunner {
    /// The limits every decision runs under.
    public let limits: ContractLimits
    private let engine: Engine
    private let checks: Checks

    /// Makes a runner.
    /// - Parameter limits: the limits (the ledger's are `ContractLimits.standard`; others are for tests).
    public init(limits: ContractLimits = .standard) {
        self.limits = limits
        engine = Engine(
            configuration: EngineConfiguration(
                threadingModel: nil, compilationMode: .lazy, stackSize: limits.stackBytes,
                features: ContractModuleCheck.features, memoryBoundsChecking: .software, fuelMetering: true))
        checks = Checks()
    }

    /// `wasmkit-0.4.2 fuel=… memory=… tables=… stack=… host=…`: the runtime and the limits decisions
    /// depend on (`host`: what a host call costs, per call, per byte and per listed item).
    public var runtime: String {
        "wasmkit-0.4.2 fuel=\(limits.fuel) memory=\(limits.memoryBytes) tables=\(limits.tableElements) "
            + "stack=\(limits.stackBytes) host=\(HostSession.callCost)/\(HostSession.byteCost)/\(HostSession.itemCost)"
    }

    /// Decides one access request by running the contract's `decide`.
    public func decide(contract: DeployedContract, context: ContractRequestContext, ledger: AccessLedgerView)
        -> ContractVerdict
    {
        if let denial = checks.result(for: contract, limits: limits) { return .deny(denial) }
        let store = Store(engine: engine)
        let limiter = ContractResourceLimiter(limits: limits)
        store.resourceLimiter = limiter
        store.fuel = Fuel(remaining: limits.fuel)
        let session = HostSession(
            context: context, ledger: ledger, parameters: contract.parameters, hostFuel: limits.fuel)
        do {
            let module = try parseWasm(bytes: contract.module, features: ContractModuleCheck.features)
            let instance = try module.instantiate(store: store, imports: session.imports(store: store))
            guard let decide = instance.exports[function: "decide"] else {
                return .deny(AccessDenial(.missingExport, "the module does not export a function 'decide'"))
            }
            _ = try decide.invoke([])
        } catch {
            return .deny(denial(for: error, limiter: limiter))
        }
        return session.verdict ?? .deny(AccessDenial(.noDecision, "the contract returned without deciding"))
    }

    private func denial(for error: any Error, limiter: ContractResourceLimiter) -> AccessDenial {
        if let abort = error as? ContractAbort { return abort.denial }
        if let exceeded = limiter.exceeded { return exceeded }
        // The first line only: a trap's description goes on with a backtrace of host addresses.
        let text = String(describing: error)
        let line = String(text.split(separator: "\n", maxSplits: 1).first ?? "")
        let reason = line.hasPrefix("Trap: ") ? String(line.dropFirst(6)) : line
        if reason == "out of fuel" {
            return AccessDenial(.outOfFuel, "the contract ran out of its \(limits.fuel) units of fuel")
        }
        if error is WasmKitError {
            // Parsing, validation (which runs as a function is first called) and instantiation.
            return AccessDenial(.malformedContract, "the module is not valid: \(reason)")
        }
        return AccessDenial(.trap, "the contract trapped: \(reason)")
    }

    /// The static checks' results by contract id (a module's check never changes).
    private final class Checks: Sendable {
        private let results = Mutex<[Hash256: AccessDenial?]>([:])

        func result(for contract: DeployedContract, limits: ContractLimits) -> AccessDenial? {
            if let known = results.withLock({ $0[contract.id] }) { return known }
            let result = ContractModuleCheck.check(contract.module, limits: limits)
            results.withLock { $0[contract.id] = result }
            return result
        }
    }
}

/// Refuses memory and tables beyond the limits, and remembers that it did: a contract that asks
/// for too much is denied with `memory-limit` whether or not it would have coped with the refusal.
final class ContractResourceLimiter: ResourceLimiter {
    private let limits: ContractLimits
    private let state = Mutex<AccessDenial?>(nil)

    init(limits: ContractLimits) { self.limits = limits }

    /// Set once a request was refused.
    var exceeded: AccessDenial? { state.withLock { $0 } }

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        guard desired <= limits.memoryBytes else {
            let denial = AccessDenial(
                .memoryLimit, "the contract asked for \(desired) bytes of memory; the limit is \(limits.memoryBytes)")
            state.withLock { $0 = denial }
            throw ContractAbort(denial.code, denial.message)
        }
        return true
    }

    func limitTableGrowth(to desired: Int) throws -> Bool {
        guard desired <= limits.tableElements else {
            let denial = AccessDenial(
                .memoryLimit, "the contract asked for \(desired) table elements; the limit is \(limits.tableElements)")
            state.withLock { $0 = denial }
            throw ContractAbort(denial.code, denial.message)
        }
        return true
    }
}
