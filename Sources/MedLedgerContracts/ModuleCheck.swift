public import MedLedgerCore
import WasmKit
import WasmParser

/// The static checks a contract's module passes before it runs: it parses as WebAssembly without
/// any proposal beyond version 1, imports only the host API (with the right types), declares no
/// floating-point value or instruction anywhere, and exports `decide` as `() -> ()`.
///
/// Floating point is refused because NaN bit patterns differ between machines, and a contract's
/// decision must be the same on every replica.
public enum ContractModuleCheck {
    /// The WebAssembly features contracts may use: none beyond version 1 (MVP).
    static let features: WasmFeatureSet = []

    /// Checks a module.
    /// - Parameters:
    ///   - module: the module's bytes.
    ///   - limits: the limits it must fit in.
    /// - Returns: nil when it may run, else the denial it gets.
    public static func check(_ module: [UInt8], limits: ContractLimits = .standard) -> AccessDenial? {
        do {
            try run(module, limits: limits)
            return nil
        } catch {
            return error.denial
        }
    }

    struct Failure: Error {
        var denial: AccessDenial
        init(_ code: DenialCode, _ message: String) { denial = AccessDenial(code, message) }
    }

    private static func run(_ bytes: [UInt8], limits: ContractLimits) throws(Failure) {
        var parser = Parser(bytes: bytes, features: features)
        var types: [SubType] = []
        var functionTypes: [FunctionType] = []
        var exports: [Export] = []
        var codes: [Code] = []
        func type(_ index: UInt32, _ what: String) throws(Failure) -> FunctionType {
            guard Int(index) < types.count, case .function(let type) = types[Int(index)].body else {
                throw Failure(.malformedContract, "\(what) names type \(index), which is not a function type")
            }
            return type
        }
        func noFloats(_ type: FunctionType, _ what: String) throws(Failure) {
            if (type.parameters + type.results).contains(where: isFloatOrVector) {
                throw Failure(.forbiddenFeature, "\(what) has a floating-point or vector parameter or result")
            }
        }
        do {
            while let payload = try parser.parseNext() {
                switch payload {
                case .header, .customSection, .dataCount, .dataSection, .elementSection, .tableSection:
                    break
                case .typeSection(let groups):
                    types = groups.flatMap(\.types)
                case .importSection(let imports):
                    for item in imports {
                        guard case .function(let index) = item.descriptor else {
                            throw Failure(
                                .forbiddenFeature,
                                "the module imports \(item.module).\(item.name), which is not a function; contracts "
                                    + "import only host functions")
                        }
                        let imported = try type(index, "import \(item.module).\(item.name)")
                        guard item.module == HostAPI.moduleName, let expected = HostAPI.signatures[item.name] else {
                            throw Failure(
                                .badImport,
                                "the module imports \(item.module).\(item.name); the host API is module "
                                    + "'\(HostAPI.moduleName)' (docs/CONTRACTS.md)")
                        }
                        guard imported == expected else {
                            throw Failure(
                                .badImport,
                                "import \(item.name) has type \(HostAPI.describe(imported)), the host API's is \(HostAPI.describe(expected))"
                            )
                        }
                        functionTypes.append(imported)
                    }
                case .functionSection(let indices):
                    for index in indices { functionTypes.append(try type(index, "a function")) }
                case .memorySection(let memories):
                    guard memories.count <= 1 else { throw Failure(.forbiddenFeature, "more than one memory") }
                    if let memory = memories.first {
                        guard !memory.type.shared, !memory.type.isMemory64 else {
                            throw Failure(.forbiddenFeature, "a shared or 64-bit memory")
                        }
                        guard memory.type.min * 65_536 <= UInt64(limits.memoryBytes) else {
                            throw Failure(
                                .memoryLimit,
                                "the module's initial memory of \(memory.type.min) pages is over the limit of "
                                    + "\(limits.memoryBytes / 65_536) pages")
                        }
                    }
                case .globalSection(let globals):
                    if globals.contains(where: { isFloatOrVector($0.type.valueType) }) {
                        throw Failure(.forbiddenFeature, "a floating-point or vector global")
                    }
                case .tagSection:
                    throw Failure(.forbiddenFeature, "exception tags")
                case .exportSection(let list):
                    exports = list
                case .startSection:
                    break
                case .codeSection(let list):
                    codes = list
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(.malformedContract, "not a valid WebAssembly module: \(error)")
        }
        for (index, type) in functionTypes.enumerated() { try noFloats(type, "function \(index)") }
        for (index, code) in codes.enumerated() {
            if code.locals.contains(where: isFloatOrVector) {
                throw Failure(.forbiddenFeature, "function \(index) has a floating-point or vector local")
            }
            var visitor = FloatFreeVisitor()
            var expression = ExpressionParser(code: code)
            do {
                while let visit = try expression.parse() {
                    try visit(visitor: &visitor)
                }
            } catch let failure as Failure {
                throw failure
            } catch {
                throw Failure(.malformedContract, "function body \(index): \(error)")
            }
        }
        guard let decide = exports.first(where: { $0.name == "decide" }), case .function(let index) = decide.descriptor
        else {
            throw Failure(.missingExport, "the module does not export a function 'decide'")
        }
        guard Int(index) < functionTypes.count, functionTypes[Int(index)] == FunctionType(parameters: [], results: [])
        else {
            throw Failure(.missingExport, "the exported 'decide' is not a function of no parameters and no results")
        }
    }

    static func isFloatOrVector(_ type: ValueType) -> Bool {
        switch type {
        case .f32, .f64, .v128: true
        default: false
        }
    }
}

/// Refuses every instruction outside the integer core of WebAssembly 1.0 (and bulk memory).
private struct FloatFreeVisitor: AnyInstructionVisitor {
    typealias VisitorError = ContractModuleCheck.Failure
    var binaryOffset = 0

    mutating func visit(_ instruction: Instruction) throws(ContractModuleCheck.Failure) {
        let allowed: Bool
        switch instruction {
        case .unreachable, .nop, .block, .loop, .if, .else, .end, .br, .brIf, .brTable, .return, .call,
            .callIndirect, .drop, .select, .localGet, .localSet, .localTee, .globalGet, .globalSet, .memorySize,
            .memoryGrow, .i32Const, .i64Const, .i32Eqz, .i64Eqz, .memoryInit, .dataDrop, .memoryCopy, .memoryFill,
            .refNull, .refIsNull, .refFunc, .tableInit, .elemDrop, .tableCopy, .tableFill, .tableGet, .tableSet,
            .tableGrow, .tableSize:
            allowed = true
        case .typedSelect(let type):
            allowed = !ContractModuleCheck.isFloatOrVector(type)
        case .load(let load, _):
            allowed = !Self.isFloat(load)
        case .store(let store, _):
            allowed = !Self.isFloat(store)
        case .cmp(let cmp):
            allowed = !Self.isFloat(cmp)
        case .unary(let unary):
            allowed = !Self.isFloat(unary)
        case .binary(let binary):
            allowed = !Self.isFloat(binary)
        case .conversion(let conversion):
            allowed = !Self.isFloat(conversion)
        default:
            allowed = false
        }
        guard allowed else {
            throw ContractModuleCheck.Failure(
                .forbiddenFeature,
                "instruction \(Self.name(instruction)) at offset \(binaryOffset): contracts use integer instructions only"
            )
        }
    }

    /// Whether an operator of a sub-enum (load, store, compare, unary, binary, conversion) touches
    /// floating point or vectors: their case names say so (`f32Add`, `i32TruncF64S`, `v128Load`).
    static func isFloat(_ op: some Any) -> Bool {
        let name = String(describing: op).lowercased()
        return name.contains("f32") || name.contains("f64") || name.contains("v128") || name.contains("atomic")
    }

    static func name(_ instruction: Instruction) -> String {
        let text = String(describing: instruction)
        return String(text.prefix(80))
    }
}
