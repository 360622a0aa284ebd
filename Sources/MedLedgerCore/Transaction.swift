/// Who may sign a transaction of a type.
public enum TransactionSigner: String, Hashable, Sendable {
    /// A registrar named in genesis.
    case registrar
    /// A registered researcher or clinician.
    case professional
    /// A manager named in genesis.
    case manager
}

/// What a transaction does to the ledger's state.
public enum TransactionBody: Hashable, Sendable {
    /// Registers a device with its key, optionally assigned to a pseudonymous patient at once.
    case registerDevice(device: String, key: PublicKey, patient: String?)
    /// Assigns a registered device to a pseudonymous patient (replacing any earlier patient).
    case assignDevice(device: String, patient: String)
    /// Revokes a device: its readings are refused from the next block on, for good.
    case revokeDevice(device: String)
    /// Registers a researcher or clinician with the key they sign requests with.
    case registerProfessional(id: String, role: ProfessionalRole, key: PublicKey, organisation: String?)
    /// Records a patient's consent to a study.
    case consent(patient: String, study: String)
    /// Withdraws a patient's consent to a study: no further reads under any grant it supported.
    case withdrawConsent(patient: String, study: String)
    /// Records that a clinician treats a patient.
    case recordTreatment(clinician: String, patient: String)
    /// Ends a treating relationship.
    case endTreatment(clinician: String, patient: String)
    /// Deploys an access contract (its id is SHA-256 of the module).
    case deployContract(ContractDeployment)
    /// A researcher's or clinician's request for data, decided by a contract when its block is checked.
    case accessRequest(AccessRequest)
    /// Revokes a grant.
    case revokeGrant(grant: Hash256)
    /// A manager's record of a fetch it served.
    case accessLog(AccessLogEntry)

    /// The transaction type's name on the wire.
    public var typeName: String {
        switch self {
        case .registerDevice: "register-device"
        case .assignDevice: "assign-device"
        case .revokeDevice: "revoke-device"
        case .registerProfessional: "register-professional"
        case .consent: "consent"
        case .withdrawConsent: "withdraw-consent"
        case .recordTreatment: "record-treatment"
        case .endTreatment: "end-treatment"
        case .deployContract: "deploy-contract"
        case .accessRequest: "access-request"
        case .revokeGrant: "revoke-grant"
        case .accessLog: "access-log"
        }
    }

    /// Who may sign it.
    public var signer: TransactionSigner {
        switch self {
        case .accessRequest: .professional
        case .accessLog: .manager
        default: .registrar
        }
    }

    /// What the transaction is about: the device; the professional; the patient (consents,
    /// treatments); the contract id in hex (deploy, request); the grant id in hex (revoke, log).
    public var subject: String {
        switch self {
        case .registerDevice(let device, _, _), .assignDevice(let device, _), .revokeDevice(let device): device
        case .registerProfessional(let id, _, _, _): id
        case .consent(let patient, _), .withdrawConsent(let patient, _), .recordTreatment(_, let patient),
            .endTreatment(_, let patient):
            patient
        case .deployContract(let deployment): deployment.id.hex
        case .accessRequest(let request): request.contract.hex
        case .revokeGrant(let grant): grant.hex
        case .accessLog(let entry): entry.grant.hex
        }
    }

    /// Whether it deploys a contract (the one type allowed over `SignedTransaction.maxOrdinaryEncodedBytes`).
    public var isDeployment: Bool {
        if case .deployContract = self { return true }
        return false
    }

    /// The device the transaction is about; for the types that are not about a device, its `subject`.
    public var device: String { subject }

    var cbor: CBOR {
        func entries(_ pairs: [(Int, CBOR?)]) -> CBOR {
            .map(pairs.compactMap { key, value in value.map { CBORMapEntry(.unsigned(UInt64(key)), $0) } })
        }
        switch self {
        case .registerDevice(let device, let key, let patient):
            return entries([
                (1, .text(device)), (2, .int(key.algorithm.coseIdentifier)), (3, .bytes(key.rawBytes)),
                (4, patient.map(CBOR.text)),
            ])
        case .assignDevice(let device, let patient):
            return entries([(1, .text(device)), (2, .text(patient))])
        case .revokeDevice(let device):
            return entries([(1, .text(device))])
        case .registerProfessional(let id, let role, let key, let organisation):
            return entries([
                (1, .text(id)), (2, .int(key.algorithm.coseIdentifier)), (3, .bytes(key.rawBytes)),
                (4, .text(role.rawValue)), (5, organisation.map(CBOR.text)),
            ])
        case .consent(let patient, let study), .withdrawConsent(let patient, let study):
            return entries([(1, .text(patient)), (2, .text(study))])
        case .recordTreatment(let clinician, let patient), .endTreatment(let clinician, let patient):
            return entries([(1, .text(clinician)), (2, .text(patient))])
        case .deployContract(let deployment):
            let parameters = deployment.parameters.map { CBORMapEntry(.text($0.key), .int($0.value)) }
            return entries([
                (1, .text(deployment.name)), (2, .bytes(deployment.module)),
                (3, parameters.isEmpty ? nil : .map(parameters)),
            ])
        case .accessRequest(let request):
            return entries([
                (1, .bytes(request.contract.bytes)), (2, .array(request.kinds.map(CBOR.text))),
                (3, .unsigned(request.from)), (4, .unsigned(request.to)), (5, .text(request.purpose)),
                (6, request.patient.map(CBOR.text)), (7, request.study.map(CBOR.text)),
            ])
        case .revokeGrant(let grant):
            return entries([(1, .bytes(grant.bytes))])
        case .accessLog(let entry):
            return entries([
                (1, .bytes(entry.grant.bytes)), (2, .text(entry.requester)), (3, .bytes(entry.fetch.bytes)),
                (4, .unsigned(entry.count)), (5, .bytes(entry.servedHash.bytes)), (6, .unsigned(entry.servedAt)),
            ])
        }
    }

    /// Decodes a body of a type.
    init(type: String, fields: CBOR) throws(LedgerFormatError) {
        func text(_ key: Int64, _ what: String, maxBytes: Int = 64) throws(LedgerFormatError) -> String {
            guard let value = fields[intKey: key]?.textValue, (1...maxBytes).contains(value.utf8.count) else {
                throw LedgerFormatError(
                    "\(type): body key \(key) (\(what)) is missing or not text of 1 to \(maxBytes) bytes")
            }
            return value
        }
        func id(_ key: Int64, _ what: String) throws(LedgerFormatError) -> String {
            guard let value = fields[intKey: key]?.textValue, Identifiers.isValidNodeID(value) else {
                throw LedgerFormatError("\(type): body key \(key) (\(what)) is missing or not [A-Za-z0-9._-]{1,64}")
            }
            return value
        }
        func optionalID(_ key: Int64, _ what: String) throws(LedgerFormatError) -> String? {
            fields[intKey: key] == nil ? nil : try id(key, what)
        }
        func hash(_ key: Int64, _ what: String) throws(LedgerFormatError) -> Hash256 {
            guard let raw = fields[intKey: key]?.bytesValue, let value = Hash256(bytes: raw) else {
                throw LedgerFormatError("\(type): body key \(key) (\(what)) is missing or not 32 bytes")
            }
            return value
        }
        func uint(_ key: Int64, _ what: String) throws(LedgerFormatError) -> UInt64 {
            guard let value = fields[intKey: key]?.wireUInt else {
                throw LedgerFormatError("\(type): body key \(key) (\(what)) is missing or not an unsigned integer")
            }
            return value
        }
        func key(_ what: String) throws(LedgerFormatError) -> PublicKey {
            guard let alg = fields[intKey: 2]?.int64Value.flatMap(SignatureAlgorithm.init(coseIdentifier:)),
                let raw = fields[intKey: 3]?.bytesValue
            else { throw LedgerFormatError("\(type): body needs 2 (alg: -8 or -7) and 3 (key bytes)") }
            do {
                return try PublicKey(algorithm: alg, rawBytes: raw)
            } catch {
                throw LedgerFormatError("\(type) \(what): \(error)")
            }
        }
        switch type {
        case "register-device":
            let device = try id(1, "device")
            self = .registerDevice(device: device, key: try key(device), patient: try optionalID(4, "patient"))
        case "assign-device":
            self = .assignDevice(device: try id(1, "device"), patient: try id(2, "patient"))
        case "revoke-device":
            self = .revokeDevice(device: try id(1, "device"))
        case "register-professional":
            let professional = try id(1, "id")
            guard let role = fields[intKey: 4]?.textValue.flatMap(ProfessionalRole.init(rawValue:)) else {
                throw LedgerFormatError("register-professional: body key 4 (role) is not 'researcher' or 'clinician'")
            }
            let organisation = fields[intKey: 5] == nil ? nil : try text(5, "organisation", maxBytes: 128)
            self = .registerProfessional(
                id: professional, role: role, key: try key(professional), organisation: organisation)
        case "consent":
            self = .consent(patient: try id(1, "patient"), study: try id(2, "study"))
        case "withdraw-consent":
            self = .withdrawConsent(patient: try id(1, "patient"), study: try id(2, "study"))
        case "record-treatment":
            self = .recordTreatment(clinician: try id(1, "clinician"), patient: try id(2, "patient"))
        case "end-treatment":
            self = .endTreatment(clinician: try id(1, "clinician"), patient: try id(2, "patient"))
        case "deploy-contract":
            let name = try text(1, "name")
            guard let module = fields[intKey: 2]?.bytesValue,
                (8...ContractDeployment.maxModuleBytes).contains(module.count),
                module.prefix(8).elementsEqual([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00])
            else {
                throw LedgerFormatError(
                    "deploy-contract: body key 2 (module) is not a WebAssembly binary (\\0asm, version 1) of at most "
                        + "\(ContractDeployment.maxModuleBytes) bytes")
            }
            var parameters: [String: Int64] = [:]
            if let item = fields[intKey: 3] {
                guard let entries = item.mapValue, entries.count <= ContractDeployment.maxParameters else {
                    throw LedgerFormatError(
                        "deploy-contract: body key 3 (parameters) is not a map of at most \(ContractDeployment.maxParameters)"
                    )
                }
                for entry in entries {
                    guard let name = entry.key.textValue, ContractDeployment.isValidParameterName(name),
                        let value = entry.value.int64Value
                    else {
                        throw LedgerFormatError(
                            "deploy-contract: a parameter is not [a-z0-9_]{1,32} mapped to a 64-bit integer")
                    }
                    parameters[name] = value
                }
            }
            self = .deployContract(ContractDeployment(name: name, module: module, parameters: parameters))
        case "access-request":
            guard let items = fields[intKey: 2]?.arrayValue, (1...AccessRequest.maxKinds).contains(items.count) else {
                throw LedgerFormatError(
                    "access-request: body key 2 (kinds) is not an array of 1 to \(AccessRequest.maxKinds) codes")
            }
            var kinds: [String] = []
            for item in items {
                guard let code = item.textValue, (1...32).contains(code.utf8.count) else {
                    throw LedgerFormatError("access-request: a kind is not a LOINC code")
                }
                kinds.append(code)
            }
            let from = try uint(3, "from")
            let to = try uint(4, "to")
            guard from <= to else { throw LedgerFormatError("access-request: from \(from) is after to \(to)") }
            self = .accessRequest(
                AccessRequest(
                    contract: try hash(1, "contract"), kinds: kinds, from: from, to: to,
                    purpose: try text(5, "purpose", maxBytes: AccessRequest.maxPurposeBytes),
                    patient: try optionalID(6, "patient"), study: try optionalID(7, "study")))
        case "revoke-grant":
            self = .revokeGrant(grant: try hash(1, "grant"))
        case "access-log":
            self = .accessLog(
                AccessLogEntry(
                    grant: try hash(1, "grant"), requester: try id(2, "requester"), fetch: try hash(3, "fetch"),
                    count: try uint(4, "count"), servedHash: try hash(5, "served hash"),
                    servedAt: try uint(6, "served at")))
        default:
            throw LedgerFormatError("unknown transaction type '\(type)'")
        }
    }
}

/// A transaction's payload (docs/FORMATS.md): who submits it, where, with which sequence
/// number, and what it does. It travels as a COSE_Sign1 message signed by the submitter.
public struct Transaction: Hashable, Sendable {
    /// The channel id.
    public var channel: String
    /// The submitter's id: a registrar or manager named in genesis, or a registered professional.
    public var submitter: String
    /// The submitter's sequence number, from 1, under the same sliding window as readings.
    public var seq: UInt64
    /// The submitter's clock, ms since the Unix epoch.
    public var time: UInt64
    /// What it does.
    public var body: TransactionBody

    /// Makes a transaction.
    public init(channel: String, submitter: String, seq: UInt64, time: UInt64, body: TransactionBody) {
        self.channel = channel
        self.submitter = submitter
        self.seq = seq
        self.time = time
        self.body = body
    }

    /// The payload map in deterministic encoding.
    public func payloadBytes() -> [UInt8] {
        CBOR.map([
            CBORMapEntry(.unsigned(1), .text(channel)),
            CBORMapEntry(.unsigned(2), .text(submitter)),
            CBORMapEntry(.unsigned(3), .unsigned(seq)),
            CBORMapEntry(.unsigned(4), .unsigned(time)),
            CBORMapEntry(.unsigned(5), .text(body.typeName)),
            CBORMapEntry(.unsigned(6), body.cbor),
        ]).encoded()
    }

    /// Decodes a payload map (any valid encoding).
    /// - Parameter payload: the payload bytes.
    /// - Throws: `LedgerFormatError` naming the field that is wrong.
    public init(payload: [UInt8]) throws(LedgerFormatError) {
        let map: CBOR
        do {
            map = try CBOR.decode(payload, limits: .transaction)
        } catch {
            throw LedgerFormatError("transaction payload: \(error)")
        }
        guard let channel = map[intKey: 1]?.textValue, let submitter = map[intKey: 2]?.textValue,
            let seq = map[intKey: 3]?.wireUInt, seq >= 1, let time = map[intKey: 4]?.wireUInt,
            let type = map[intKey: 5]?.textValue, let fields = map[intKey: 6], fields.mapValue != nil
        else {
            throw LedgerFormatError(
                "a transaction is {1: channel, 2: submitter, 3: seq from 1, 4: time, 5: type, 6: body map}")
        }
        let body = try TransactionBody(type: type, fields: fields)
        self.init(channel: channel, submitter: submitter, seq: seq, time: time, body: body)
    }
}

extension CBORLimits {
    /// Limits for a transaction.
    public static let transaction = CBORLimits(
        maxDepth: 8, maxInputBytes: SignedTransaction.maxEncodedBytes, maxItems: 1024,
        maxStringBytes: SignedTransaction.maxEncodedBytes, maxCollectionCount: 256)
}

/// A signed transaction: the exact bytes the submitter sent, and what they say.
public struct SignedTransaction: Hashable, Sendable {
    /// The largest encoded transaction accepted: a deploy-contract with a module of up to 64 KiB.
    public static let maxEncodedBytes = 73_728
    /// The largest encoded transaction of any other type.
    public static let maxOrdinaryEncodedBytes = 16_384

    /// The bytes exactly as signed.
    public let bytes: [UInt8]
    /// The COSE_Sign1 message.
    public let message: COSESign1
    /// The decoded payload.
    public let transaction: Transaction

    /// SHA-256 of the signed bytes: an access request's id, and the id of the grant it may become.
    public var id: Hash256 { Hash256.sha256(bytes) }

    /// Decodes a signed transaction (the signature is checked by the ledger rules).
    /// - Parameter bytes: the message as received.
    /// - Throws: `LedgerFormatError` naming what is wrong.
    public init(decoding bytes: [UInt8]) throws(LedgerFormatError) {
        guard bytes.count <= Self.maxEncodedBytes else {
            throw LedgerFormatError(
                "a transaction of \(bytes.count) bytes is over the limit of \(Self.maxEncodedBytes)")
        }
        do {
            message = try COSESign1(decoding: bytes, limits: .transaction)
        } catch {
            throw LedgerFormatError("transaction: \(error)")
        }
        transaction = try Transaction(payload: message.payload)
        guard let kid = message.keyID, kid == Array(transaction.submitter.utf8) else {
            throw LedgerFormatError("the transaction's kid is not its submitter '\(transaction.submitter)'")
        }
        if !transaction.body.isDeployment, bytes.count > Self.maxOrdinaryEncodedBytes {
            throw LedgerFormatError(
                "a \(transaction.body.typeName) transaction of \(bytes.count) bytes is over the limit of "
                    + "\(Self.maxOrdinaryEncodedBytes)")
        }
        self.bytes = bytes
    }

    /// Signs a transaction with the submitter's key, the submitter's id as kid.
    /// - Parameters:
    ///   - transaction: the payload.
    ///   - key: the submitter's private key.
    /// - Throws: `KeyError` when signing fails.
    public init(signing transaction: Transaction, with key: PrivateKey) throws(KeyError) {
        message = try COSESign1.sign(
            payload: transaction.payloadBytes(), keyID: Array(transaction.submitter.utf8), key: key)
        bytes = message.encoded()
        self.transaction = transaction
    }
}
