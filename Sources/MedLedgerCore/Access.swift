/// The role of a registered professional: who may ask for data through an access contract.
public enum ProfessionalRole: String, Hashable, Sendable, CaseIterable, Codable {
    /// A researcher: reads pseudonymous data of consenting patients, or aggregates.
    case researcher
    /// A clinician: reads the data of patients they treat.
    case clinician

    /// The number a contract reads for the role (`ml_requester_role`): 1 researcher, 2 clinician.
    public var contractCode: Int32 {
        switch self {
        case .researcher: 1
        case .clinician: 2
        }
    }
}

/// A researcher or clinician registered on the channel by a registrar.
public struct ProfessionalRecord: Hashable, Sendable {
    /// The professional's id, `[A-Za-z0-9._-]{1,64}`: the submitter id of their requests.
    public var id: String
    /// Researcher or clinician.
    public var role: ProfessionalRole
    /// The key their access requests and fetch requests are signed with.
    public var key: PublicKey
    /// Their organisation, for people (at most 128 bytes).
    public var organisation: String?
    /// The height of the block that registered them.
    public var registeredAt: UInt64

    /// Makes a record.
    public init(id: String, role: ProfessionalRole, key: PublicKey, organisation: String?, registeredAt: UInt64) {
        self.id = id
        self.role = role
        self.key = key
        self.organisation = organisation
        self.registeredAt = registeredAt
    }
}

/// A treating relationship a registrar recorded: this clinician treats this patient.
public struct Treatment: Hashable, Sendable, Comparable {
    /// The clinician's professional id.
    public var clinician: String
    /// The patient's pseudonymous id.
    public var patient: String

    /// Makes one.
    public init(clinician: String, patient: String) {
        self.clinician = clinician
        self.patient = patient
    }

    /// Orders by clinician, then patient.
    public static func < (lhs: Treatment, rhs: Treatment) -> Bool {
        (lhs.clinician, lhs.patient) < (rhs.clinician, rhs.patient)
    }
}

/// What a deploy-contract transaction carries: a WebAssembly module, a name and its parameters.
public struct ContractDeployment: Hashable, Sendable {
    /// The largest module accepted, in bytes.
    public static let maxModuleBytes = 65_536
    /// The most parameters a deployment may set.
    public static let maxParameters = 16

    /// A name for people, 1 to 64 bytes of UTF-8.
    public var name: String
    /// The WebAssembly module (binary format, version 1).
    public var module: [UInt8]
    /// The deployment's parameters (`ml_param`), names `[a-z0-9_]{1,32}`.
    public var parameters: [String: Int64]

    /// Makes a deployment.
    public init(name: String, module: [UInt8], parameters: [String: Int64] = [:]) {
        self.name = name
        self.module = module
        self.parameters = parameters
    }

    /// The contract id: SHA-256 of the module's bytes.
    public var id: Hash256 { Hash256.sha256(module) }

    /// Whether a parameter name is `[a-z0-9_]{1,32}`.
    /// - Parameter name: the candidate name.
    public static func isValidParameterName(_ name: String) -> Bool {
        let utf8 = name.utf8
        return (1...32).contains(utf8.count)
            && utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }
}

/// A contract deployed on the channel.
public struct DeployedContract: Hashable, Sendable {
    /// SHA-256 of the module.
    public var id: Hash256
    /// Its name, for people.
    public var name: String
    /// The WebAssembly module.
    public var module: [UInt8]
    /// The deployment's parameters.
    public var parameters: [String: Int64]
    /// The registrar that deployed it.
    public var deployer: String
    /// The height of the block that deployed it.
    public var deployedAt: UInt64

    /// Makes a record.
    public init(
        id: Hash256, name: String, module: [UInt8], parameters: [String: Int64], deployer: String,
        deployedAt: UInt64
    ) {
        self.id = id
        self.name = name
        self.module = module
        self.parameters = parameters
        self.deployer = deployer
        self.deployedAt = deployedAt
    }
}

/// What a researcher or clinician asks for: which contract decides, which kinds of readings of which
/// time range, why, and (optionally) for which patient or study.
public struct AccessRequest: Hashable, Sendable {
    /// The most kinds one request may name.
    public static let maxKinds = 32
    /// The longest purpose, in bytes of UTF-8.
    public static let maxPurposeBytes = 1024

    /// The id of the contract that decides.
    public var contract: Hash256
    /// The LOINC codes asked for (1 to 32).
    public var kinds: [String]
    /// The earliest reading time asked for, ms.
    public var from: UInt64
    /// The latest reading time asked for, ms (at or after `from`).
    public var to: UInt64
    /// Why, for the record (1 to 1024 bytes).
    public var purpose: String
    /// The one patient asked about (a clinician's request), if any.
    public var patient: String?
    /// The study the data is for (a researcher's request), if any.
    public var study: String?

    /// Makes a request.
    public init(
        contract: Hash256, kinds: [String], from: UInt64, to: UInt64, purpose: String, patient: String? = nil,
        study: String? = nil
    ) {
        self.contract = contract
        self.kinds = kinds
        self.from = from
        self.to = to
        self.purpose = purpose
        self.patient = patient
        self.study = study
    }
}

/// A manager's record of one fetch it served under a grant: who, which grant, what, when.
public struct AccessLogEntry: Hashable, Sendable {
    /// The grant the data was served under.
    public var grant: Hash256
    /// Who asked (the grant's requester).
    public var requester: String
    /// The id of the signed fetch request served (SHA-256 of its bytes).
    public var fetch: Hash256
    /// How many readings (or aggregate groups) were served.
    public var count: UInt64
    /// The hash of what was served (`FetchResponse.servedHash`).
    public var servedHash: Hash256
    /// When the manager served it, ms (its clock).
    public var servedAt: UInt64

    /// Makes an entry.
    public init(grant: Hash256, requester: String, fetch: Hash256, count: UInt64, servedHash: Hash256, servedAt: UInt64)
    {
        self.grant = grant
        self.requester = requester
        self.fetch = fetch
        self.count = count
        self.servedHash = servedHash
        self.servedAt = servedAt
    }
}

/// How a grant lets data be read.
public enum AccessMode: Hashable, Sendable {
    /// The readings themselves, each with its proof.
    case readings
    /// Counts, means and ranges per kind and day only, and only over cohorts of at least k patients.
    case aggregates(k: Int)

    /// `readings` or `aggregates`.
    public var name: String {
        switch self {
        case .readings: "readings"
        case .aggregates: "aggregates"
        }
    }
}

/// What a grant covers. The kinds, time range, patient and study are the request's: a contract can
/// refuse or narrow the mode, never widen what was asked.
public struct AccessScope: Hashable, Sendable {
    /// Readings or aggregates.
    public var mode: AccessMode
    /// The LOINC codes covered, sorted, without repeats. A reading is served only when every one of
    /// its records is of a covered kind (a signed reading cannot be cut).
    public var kinds: [String]
    /// The earliest reading time covered, ms.
    public var from: UInt64
    /// The latest reading time covered, ms.
    public var to: UInt64
    /// The one patient covered, if the grant names one.
    public var patient: String?
    /// The study whose consenting patients are covered, if the grant names one.
    public var study: String?

    /// Makes a scope.
    public init(
        mode: AccessMode, kinds: [String], from: UInt64, to: UInt64, patient: String?, study: String?
    ) {
        self.mode = mode
        self.kinds = Array(Set(kinds)).sorted()
        self.from = from
        self.to = to
        self.patient = patient
        self.study = study
    }
}

/// A grant: an access request a contract allowed.
public struct AccessGrant: Hashable, Sendable {
    /// The grant's id: the id of the request (SHA-256 of its signed transaction bytes).
    public var id: Hash256
    /// The researcher or clinician it was granted to.
    public var requester: String
    /// Their role when it was granted.
    public var role: ProfessionalRole
    /// The contract that decided.
    public var contract: Hash256
    /// What it covers.
    public var scope: AccessScope
    /// When it expires, ms in block-time terms: it is usable while the ledger's (and the serving
    /// manager's) time is below this.
    public var expiresAt: UInt64
    /// The height of the block whose check granted it.
    public var grantedAt: UInt64
    /// That block's time, ms.
    public var grantedTime: UInt64
    /// The height of the block that revoked it, if one did.
    public var revokedAt: UInt64?

    /// Makes a grant.
    public init(
        id: Hash256, requester: String, role: ProfessionalRole, contract: Hash256, scope: AccessScope,
        expiresAt: UInt64, grantedAt: UInt64, grantedTime: UInt64, revokedAt: UInt64? = nil
    ) {
        self.id = id
        self.requester = requester
        self.role = role
        self.contract = contract
        self.scope = scope
        self.expiresAt = expiresAt
        self.grantedAt = grantedAt
        self.grantedTime = grantedTime
        self.revokedAt = revokedAt
    }

    /// Whether data may be served under it at a time: not revoked, not expired.
    /// - Parameter time: ms, in block-time terms.
    public func isLive(at time: UInt64) -> Bool { revokedAt == nil && time < expiresAt }
}

/// Why an access request was denied.
public enum DenialCode: String, Hashable, Sendable, CaseIterable {
    /// The contract decided to deny (its reason is the message).
    case contractDenied = "contract-denied"
    /// No contract with the request's id is deployed.
    case unknownContract = "unknown-contract"
    /// The checker has no contract runtime (the core's default runner).
    case noRunner = "no-runner"
    /// The module is not valid WebAssembly.
    case malformedContract = "malformed-contract"
    /// The module uses something contracts may not (floats, imported memory, WASI, ...).
    case forbiddenFeature = "forbidden-feature"
    /// The module imports something the host API does not offer, or with the wrong type.
    case badImport = "bad-import"
    /// The module does not export `decide` as a function of no parameters and no results.
    case missingExport = "missing-export"
    /// The contract ran out of its instruction budget.
    case outOfFuel = "out-of-fuel"
    /// The contract asked for more memory than contracts may have.
    case memoryLimit = "memory-limit"
    /// The contract trapped (unreachable, out-of-bounds access, bad host call, ...).
    case trap
    /// The contract returned without deciding.
    case noDecision = "no-decision"
    /// The contract's decision cannot be a grant (e.g. an expiry not after the decision, k below 1,
    /// a grant that names neither a patient nor a study).
    case invalidDecision = "invalid-decision"
}

/// A denial: the code and what exactly, for a person.
public struct AccessDenial: Hashable, Sendable, CustomStringConvertible {
    /// The longest message kept, in bytes of UTF-8.
    public static let maxMessageBytes = 256

    /// Why.
    public var code: DenialCode
    /// What exactly (cut to 256 bytes).
    public var message: String

    /// Makes a denial; the message is cut to `maxMessageBytes`.
    public init(_ code: DenialCode, _ message: String) {
        self.code = code
        self.message = Self.cut(message)
    }

    /// `code: message`.
    public var description: String { "\(code.rawValue): \(message)" }

    static func cut(_ text: String) -> String {
        guard text.utf8.count > maxMessageBytes else { return text }
        var out = ""
        for character in text {
            guard out.utf8.count + String(character).utf8.count <= maxMessageBytes else { break }
            out.append(character)
        }
        return out
    }
}

/// The recorded outcome of an access request.
public enum AccessOutcome: Hashable, Sendable {
    /// Granted.
    case granted(AccessGrant)
    /// Denied, with the reason.
    case denied(AccessDenial)
}

/// The decision on one committed access request, as the block that carried it produced it.
public struct AccessDecision: Hashable, Sendable {
    /// The request's id (SHA-256 of its signed bytes); a grant has the same id.
    public var id: Hash256
    /// Who asked.
    public var requester: String
    /// What they asked for.
    public var request: AccessRequest
    /// The height of the block that carried the request.
    public var height: UInt64
    /// The request's position among the block's transactions.
    public var position: Int
    /// Granted or denied.
    public var outcome: AccessOutcome

    /// Makes a record.
    public init(
        id: Hash256, requester: String, request: AccessRequest, height: UInt64, position: Int, outcome: AccessOutcome
    ) {
        self.id = id
        self.requester = requester
        self.request = request
        self.height = height
        self.position = position
        self.outcome = outcome
    }
}

/// The access part of the ledger's state: professionals, consents, treatments, contracts, grants.
public struct AccessState: Hashable, Sendable {
    /// The registered researchers and clinicians.
    public internal(set) var professionals: [String: ProfessionalRecord]
    /// For each study, the patients who consent to it now.
    public internal(set) var consents: [String: Set<String>]
    /// The treating relationships in force.
    public internal(set) var treatments: Set<Treatment>
    /// The deployed contracts.
    public internal(set) var contracts: [Hash256: DeployedContract]
    /// Every grant ever made, revoked and expired ones too.
    public internal(set) var grants: [Hash256: AccessGrant]

    /// Makes a state (empty by default; a store restores it from its tables).
    public init(
        professionals: [String: ProfessionalRecord] = [:], consents: [String: Set<String>] = [:],
        treatments: Set<Treatment> = [], contracts: [Hash256: DeployedContract] = [:],
        grants: [Hash256: AccessGrant] = [:]
    ) {
        self.professionals = professionals
        self.consents = consents.filter { !$0.value.isEmpty }
        self.treatments = treatments
        self.contracts = contracts
        self.grants = grants
    }

    mutating func apply(_ changes: AccessChanges) {
        for (id, record) in changes.professionals { professionals[id] = record }
        for (study, patients) in changes.consents { consents[study] = patients.isEmpty ? nil : patients }
        for (treatment, present) in changes.treatments {
            if present { treatments.insert(treatment) } else { treatments.remove(treatment) }
        }
        for (id, contract) in changes.contracts { contracts[id] = contract }
        for (id, grant) in changes.grants { grants[id] = grant }
    }
}

/// What one block changes in the access state, collected as its transactions are checked in order.
public struct AccessChanges: Hashable, Sendable {
    /// Professionals registered.
    public internal(set) var professionals: [String: ProfessionalRecord] = [:]
    /// The new set of consenting patients of each study whose consents changed.
    public internal(set) var consents: [String: Set<String>] = [:]
    /// Treating relationships recorded (true) or ended (false).
    public internal(set) var treatments: [Treatment: Bool] = [:]
    /// Contracts deployed.
    public internal(set) var contracts: [Hash256: DeployedContract] = [:]
    /// Grants made or revoked.
    public internal(set) var grants: [Hash256: AccessGrant] = [:]
    /// The decisions on the block's access requests, in order.
    public internal(set) var decisions: [AccessDecision] = []

    /// Nothing changed.
    public init() {}
}

/// What a contract is asked: the request, who asks and where on the chain the decision is taken.
public struct ContractRequestContext: Hashable, Sendable {
    /// The request's id.
    public var id: Hash256
    /// The requester.
    public var requester: ProfessionalRecord
    /// What was asked.
    public var request: AccessRequest
    /// The height of the block whose check decides.
    public var height: UInt64
    /// That block's time, ms: the only clock a contract sees.
    public var time: UInt64

    /// Makes a context.
    public init(id: Hash256, requester: ProfessionalRecord, request: AccessRequest, height: UInt64, time: UInt64) {
        self.id = id
        self.requester = requester
        self.request = request
        self.height = height
        self.time = time
    }
}

/// What a contract decided.
public enum ContractVerdict: Hashable, Sendable {
    /// Grant the request in this mode until this time (ms, block-time terms).
    case grant(mode: AccessMode, expiresAt: UInt64)
    /// Deny it.
    case deny(AccessDenial)
}

/// Runs access contracts. Validators, managers and verifiers must use runners that decide alike
/// (the same runtime and limits), since every decision becomes part of the ledger's state.
public protocol ContractRunner: Sendable {
    /// Names the runtime and its limits: two runners with the same name decide alike. A store
    /// refuses a checked block whose decisions came from a runner of another name.
    var runtime: String { get }

    /// Decides one access request. Must be deterministic: a function of its arguments alone.
    /// - Parameters:
    ///   - contract: the deployed contract.
    ///   - context: the request and where it is decided.
    ///   - ledger: what the contract may read of the state (after the block's earlier transactions).
    /// - Returns: the verdict; never throws, every failure is a denial.
    func decide(contract: DeployedContract, context: ContractRequestContext, ledger: AccessLedgerView)
        -> ContractVerdict
}

/// The default runner of the pure core: it runs nothing and denies every request with `no-runner`.
/// Nodes use the WebAssembly runner of MedLedgerContracts.
public struct DenyingContractRunner: ContractRunner {
    /// Makes one.
    public init() {}

    /// `none`.
    public var runtime: String { "none" }

    /// Denies with `no-runner`.
    public func decide(contract: DeployedContract, context: ContractRequestContext, ledger: AccessLedgerView)
        -> ContractVerdict
    {
        .deny(AccessDenial(.noRunner, "this checker runs no contracts"))
    }
}

/// A read-only view of the ledger's state for a contract or a serving manager: the state after a
/// height, plus the changes of the current block's earlier transactions. Every list it returns is
/// sorted, so what a contract sees never depends on hashing order.
public struct AccessLedgerView: Sendable {
    let state: LedgerState
    let devices: [String: DeviceRecord]
    let changes: AccessChanges

    init(state: LedgerState, devices: [String: DeviceRecord], changes: AccessChanges) {
        self.state = state
        self.devices = devices
        self.changes = changes
    }

    /// A view of a state alone.
    /// - Parameter state: the ledger state.
    public init(state: LedgerState) {
        self.init(state: state, devices: [:], changes: AccessChanges())
    }

    /// A registered professional.
    /// - Parameter id: their id.
    public func professional(_ id: String) -> ProfessionalRecord? {
        changes.professionals[id] ?? state.access.professionals[id]
    }

    /// The patients who consent to a study now, sorted.
    /// - Parameter study: the study id.
    public func consentingPatients(study: String) -> [String] {
        (changes.consents[study] ?? state.access.consents[study] ?? []).sorted()
    }

    /// Whether a patient consents to a study now.
    public func hasConsented(patient: String, study: String) -> Bool {
        (changes.consents[study] ?? state.access.consents[study])?.contains(patient) ?? false
    }

    /// Whether a registrar recorded that a clinician treats a patient (and did not end it).
    public func isTreating(clinician: String, patient: String) -> Bool {
        let treatment = Treatment(clinician: clinician, patient: patient)
        return changes.treatments[treatment] ?? state.access.treatments.contains(treatment)
    }

    /// The registry's patients: every patient a device that is not revoked is assigned to, sorted.
    public func patients() -> [String] {
        var patients = Set<String>()
        for (id, record) in state.devices where devices[id] == nil && !record.revoked {
            if let patient = record.patient { patients.insert(patient) }
        }
        for record in devices.values where !record.revoked {
            if let patient = record.patient { patients.insert(patient) }
        }
        return patients.sorted()
    }

    /// The devices (not revoked) assigned to a patient, sorted.
    /// - Parameter patient: the patient's id.
    public func devices(ofPatient patient: String) -> [String] {
        var out: [String] = []
        for (id, record) in state.devices where devices[id] == nil && !record.revoked && record.patient == patient {
            out.append(id)
        }
        for (id, record) in devices where !record.revoked && record.patient == patient { out.append(id) }
        return out.sorted()
    }

    /// Whether the channel knows a LOINC code.
    public func knowsKind(_ code: String) -> Bool { state.kinds[code] != nil }
}
