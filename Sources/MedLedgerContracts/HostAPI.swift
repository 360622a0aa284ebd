import MedLedgerCore
import WasmKit

/// What a contract may use, and what it may not exceed. These are part of the ledger's rules: every
/// replica must run contracts with the same limits, or their decisions (and so their states) differ.
public struct ContractLimits: Hashable, Sendable {
    /// The fuel budget: roughly the number of WebAssembly instructions one decision may execute.
    public var fuel: UInt64
    /// The most linear memory a contract may have, in bytes (a multiple of 64 KiB).
    public var memoryBytes: Int
    /// The most elements a contract's tables may have.
    public var tableElements: Int
    /// The interpreter's stack for a decision, in bytes (bounds call depth).
    public var stackBytes: Int

    /// Makes limits.
    public init(fuel: UInt64, memoryBytes: Int, tableElements: Int, stackBytes: Int) {
        self.fuel = fuel
        self.memoryBytes = memoryBytes
        self.tableElements = tableElements
        self.stackBytes = stackBytes
    }

    /// The ledger's limits: 1,000,000 fuel, 1 MiB of memory, 1,024 table elements, a 256 KiB stack.
    /// A shipped contract needs a few hundred units; the budget bounds what one request can cost
    /// every validator.
    public static let standard = ContractLimits(
        fuel: 1_000_000, memoryBytes: 1 << 20, tableElements: 1024, stackBytes: 256 << 10)
}

/// The host API contracts import (module `medledger`): names and WebAssembly types.
enum HostAPI {
    static let moduleName = "medledger"

    private static let i32 = ValueType.i32
    private static let i64 = ValueType.i64

    /// Every host function, by import name.
    static let signatures: [String: FunctionType] = [
        "request_kind_count": FunctionType(parameters: [], results: [i32]),
        "request_kind": FunctionType(parameters: [i32, i32, i32], results: [i32]),
        "request_from": FunctionType(parameters: [], results: [i64]),
        "request_to": FunctionType(parameters: [], results: [i64]),
        "request_patient": FunctionType(parameters: [i32, i32], results: [i32]),
        "request_study": FunctionType(parameters: [i32, i32], results: [i32]),
        "request_purpose": FunctionType(parameters: [i32, i32], results: [i32]),
        "requester_id": FunctionType(parameters: [i32, i32], results: [i32]),
        "requester_role": FunctionType(parameters: [], results: [i32]),
        "requester_organisation": FunctionType(parameters: [i32, i32], results: [i32]),
        "block_height": FunctionType(parameters: [], results: [i64]),
        "block_time": FunctionType(parameters: [], results: [i64]),
        "param": FunctionType(parameters: [i32, i32, i64], results: [i64]),
        "consented": FunctionType(parameters: [i32, i32, i32, i32], results: [i32]),
        "consent_count": FunctionType(parameters: [i32, i32], results: [i32]),
        "consent_patient": FunctionType(parameters: [i32, i32, i32, i32, i32], results: [i32]),
        "treating": FunctionType(parameters: [i32, i32, i32, i32], results: [i32]),
        "patient_count": FunctionType(parameters: [], results: [i32]),
        "patient_at": FunctionType(parameters: [i32, i32, i32], results: [i32]),
        "patient_device_count": FunctionType(parameters: [i32, i32], results: [i32]),
        "kind_known": FunctionType(parameters: [i32, i32], results: [i32]),
        "grant": FunctionType(parameters: [i64], results: []),
        "grant_aggregates": FunctionType(parameters: [i64, i64], results: []),
        "deny": FunctionType(parameters: [i32, i32], results: []),
    ]

    /// `(i32, i32) -> i32`.
    static func describe(_ type: FunctionType) -> String {
        func name(_ type: ValueType) -> String {
            switch type {
            case .i32: "i32"
            case .i64: "i64"
            case .f32: "f32"
            case .f64: "f64"
            case .v128: "v128"
            case .ref: "ref"
            }
        }
        let results = type.results.map(name)
        return "(\(type.parameters.map(name).joined(separator: ", "))) -> "
            + (results.count == 1 ? results[0] : "(\(results.joined(separator: ", ")))")
    }
}

/// A failure a host function raises: it ends the run with this denial.
struct ContractAbort: Error {
    var denial: AccessDenial
    init(_ code: DenialCode, _ message: String) { denial = AccessDenial(code, message) }
}

/// One decision's host side: what the contract may read, and what it decided. A run is single-
/// threaded, so this class is only ever used from the thread running the contract.
final class HostSession {
    let context: ContractRequestContext
    let ledger: AccessLedgerView
    let parameters: [String: Int64]
    private(set) var verdict: ContractVerdict?
    private var consentLists: [String: [String]] = [:]
    private var patientList: [String]?
    private var deviceCounts: [String: Int] = [:]
    /// The fuel host calls may still burn: a budget of its own, as large as the instructions'
    /// (a contract that loops on host calls runs out of it as one that loops on instructions does).
    private(set) var hostFuel: UInt64
    let hostFuelBudget: UInt64

    /// What a host call costs: every call `callCost`, and `byteCost` per byte it reads from or
    /// writes to the contract's memory; a list the ledger builds (consenting patients, patients,
    /// a patient's devices) costs `itemCost` per item the first time, and nothing when asked again
    /// (it is kept for the rest of the decision).
    static let callCost: UInt64 = 100
    static let byteCost: UInt64 = 1
    static let itemCost: UInt64 = 20

    init(context: ContractRequestContext, ledger: AccessLedgerView, parameters: [String: Int64], hostFuel: UInt64) {
        self.context = context
        self.ledger = ledger
        self.parameters = parameters
        self.hostFuel = hostFuel
        hostFuelBudget = hostFuel
    }

    /// Burns host fuel, or ends the run as out of fuel.
    private func charge(_ units: UInt64) throws(ContractAbort) {
        guard hostFuel >= units else {
            hostFuel = 0
            throw ContractAbort(
                .outOfFuel, "the contract ran out of its \(hostFuelBudget) units of fuel for host calls")
        }
        hostFuel -= units
    }

    /// The host functions, bound to this session, as imports for a store.
    func imports(store: Store) -> Imports {
        var imports = Imports()
        for (name, type) in HostAPI.signatures {
            let function = Function(store: store, type: type) { [unowned self] caller, arguments in
                try self.call(name, caller: caller, arguments)
            }
            imports.define(module: HostAPI.moduleName, name: name, function)
        }
        return imports
    }

    private func consenting(_ study: String) throws(ContractAbort) -> [String] {
        if let list = consentLists[study] { return list }
        let list = ledger.consentingPatients(study: study)
        try charge(UInt64(list.count) * Self.itemCost)
        consentLists[study] = list
        return list
    }

    private func patients() throws(ContractAbort) -> [String] {
        if let patientList { return patientList }
        let list = ledger.patients()
        try charge(UInt64(list.count) * Self.itemCost)
        patientList = list
        return list
    }

    private func deviceCount(of patient: String) throws(ContractAbort) -> Int {
        if let count = deviceCounts[patient] { return count }
        let count = ledger.devices(ofPatient: patient).count
        try charge(UInt64(count + 1) * Self.itemCost)
        deviceCounts[patient] = count
        return count
    }

    private func decide(_ verdict: ContractVerdict, _ name: String) throws(ContractAbort) {
        guard self.verdict == nil else {
            throw ContractAbort(.invalidDecision, "the contract decided twice (\(name) after a decision)")
        }
        self.verdict = verdict
    }

    // MARK: - Calls

    private func call(_ name: String, caller: borrowing Caller, _ arguments: [Value]) throws -> [Value] {
        try charge(Self.callCost)
        let memory = GuestAccess(name: name, memory: caller.instance?.exports[memory: "memory"]) {
            [unowned self] bytes throws(ContractAbort) in try self.charge(UInt64(bytes) * Self.byteCost)
        }
        func i32(_ index: Int) -> Int32 {
            if case .i32(let raw) = arguments[index] { return Int32(bitPattern: raw) }
            return 0
        }
        func i64(_ index: Int) -> Int64 {
            if case .i64(let raw) = arguments[index] { return Int64(bitPattern: raw) }
            return 0
        }
        func int(_ value: Int32) -> [Value] { [Value(signed: value)] }
        func long(_ value: Int64) -> [Value] { [Value(signed: value)] }
        func string(_ value: String?, out: Int, cap: Int) throws(ContractAbort) -> [Value] {
            guard let value else { return int(-1) }
            return int(try memory.write(Array(value.utf8), at: i32(out), capacity: i32(cap)))
        }
        func bool(_ value: Bool) -> [Value] { int(value ? 1 : 0) }
        let request = context.request
        switch name {
        case "request_kind_count":
            return int(Int32(request.kinds.count))
        case "request_kind":
            let index = Int(i32(0))
            return try string(index >= 0 && index < request.kinds.count ? request.kinds[index] : nil, out: 1, cap: 2)
        case "request_from":
            return long(Int64(clamping: request.from))
        case "request_to":
            return long(Int64(clamping: request.to))
        case "request_patient":
            return try string(request.patient, out: 0, cap: 1)
        case "request_study":
            return try string(request.study, out: 0, cap: 1)
        case "request_purpose":
            return try string(request.purpose, out: 0, cap: 1)
        case "requester_id":
            return try string(context.requester.id, out: 0, cap: 1)
        case "requester_role":
            return int(context.requester.role.contractCode)
        case "requester_organisation":
            return try string(context.requester.organisation, out: 0, cap: 1)
        case "block_height":
            return long(Int64(clamping: context.height))
        case "block_time":
            return long(Int64(clamping: context.time))
        case "param":
            let key = try memory.text(at: i32(0), length: i32(1))
            return long(parameters[key] ?? i64(2))
        case "consented":
            let patient = try memory.text(at: i32(0), length: i32(1))
            let study = try memory.text(at: i32(2), length: i32(3))
            return bool(ledger.hasConsented(patient: patient, study: study))
        case "consent_count":
            return int(Int32(clamping: try consenting(try memory.text(at: i32(0), length: i32(1))).count))
        case "consent_patient":
            let list = try consenting(try memory.text(at: i32(0), length: i32(1)))
            let index = Int(i32(2))
            return try string(index >= 0 && index < list.count ? list[index] : nil, out: 3, cap: 4)
        case "treating":
            let clinician = try memory.text(at: i32(0), length: i32(1))
            let patient = try memory.text(at: i32(2), length: i32(3))
            return bool(ledger.isTreating(clinician: clinician, patient: patient))
        case "patient_count":
            return int(Int32(clamping: try patients().count))
        case "patient_at":
            let list = try patients()
            let index = Int(i32(0))
            return try string(index >= 0 && index < list.count ? list[index] : nil, out: 1, cap: 2)
        case "patient_device_count":
            let patient = try memory.text(at: i32(0), length: i32(1))
            return int(Int32(clamping: try deviceCount(of: patient)))
        case "kind_known":
            return bool(ledger.knowsKind(try memory.text(at: i32(0), length: i32(1))))
        case "grant":
            let expiry = i64(0)
            guard expiry > 0 else {
                throw ContractAbort(.invalidDecision, "grant: the expiry \(expiry) is not positive")
            }
            try decide(.grant(mode: .readings, expiresAt: UInt64(expiry)), name)
            return []
        case "grant_aggregates":
            let k = i64(0)
            let expiry = i64(1)
            guard expiry > 0 else {
                throw ContractAbort(.invalidDecision, "grant_aggregates: the expiry \(expiry) is not positive")
            }
            guard k >= 1, k <= Int64(Int32.max) else {
                throw ContractAbort(.invalidDecision, "grant_aggregates: k = \(k) is not 1 to 2^31-1")
            }
            try decide(.grant(mode: .aggregates(k: Int(k)), expiresAt: UInt64(expiry)), name)
            return []
        case "deny":
            let reason = try memory.text(at: i32(0), length: i32(1), limit: AccessDenial.maxMessageBytes)
            try decide(.deny(AccessDenial(.contractDenied, reason.isEmpty ? "the contract denied it" : reason)), name)
            return []
        default:
            throw ContractAbort(.badImport, "no host function '\(name)'")
        }
    }
}

/// Bounds-checked access to a contract's memory from a host call.
private struct GuestAccess {
    let name: String
    let memory: Memory?
    /// Charges the bytes a call moves (host fuel).
    let charge: (Int) throws(ContractAbort) -> Void

    private func region(_ pointer: Int32, _ length: Int32) throws(ContractAbort) -> (Memory, UInt, Int) {
        guard let memory else {
            throw ContractAbort(.trap, "host call \(name): the contract exports no memory named 'memory'")
        }
        let start = UInt64(UInt32(bitPattern: pointer))
        let count = UInt64(UInt32(bitPattern: length))
        guard length >= 0, start + count <= UInt64(memory.byteCount) else {
            throw ContractAbort(
                .trap, "host call \(name): bytes \(start)..<\(start + count) are outside the contract's memory")
        }
        return (memory, UInt(start), Int(count))
    }

    /// Reads text (invalid UTF-8 is replaced, so the result is the same everywhere).
    func text(at pointer: Int32, length: Int32, limit: Int = 4096) throws(ContractAbort) -> String {
        guard length >= 0, Int(length) <= limit else {
            throw ContractAbort(.trap, "host call \(name): a string of \(length) bytes (the limit is \(limit))")
        }
        let (memory, start, count) = try region(pointer, length)
        try charge(count)
        guard count > 0 else { return "" }
        return memory.withUnsafeBufferPointer(offset: start, count: count) { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes up to `capacity` bytes and returns the full length.
    func write(_ bytes: [UInt8], at pointer: Int32, capacity: Int32) throws(ContractAbort) -> Int32 {
        guard capacity >= 0 else { throw ContractAbort(.trap, "host call \(name): a negative capacity") }
        let count = min(Int(capacity), bytes.count)
        try charge(count)
        if count > 0 {
            let (memory, start, _) = try region(pointer, Int32(count))
            memory.withUnsafeMutableBufferPointer(offset: start, count: count) { buffer in
                buffer.copyBytes(from: bytes[0..<count])
            }
        }
        return Int32(clamping: bytes.count)
    }
}
