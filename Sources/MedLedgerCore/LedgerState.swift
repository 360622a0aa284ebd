/// A registered device, as the ledger's state knows it.
public struct DeviceRecord: Hashable, Sendable {
    /// The device id.
    public var id: String
    /// The device's registered key (and so its algorithm).
    public var key: PublicKey
    /// The pseudonymous patient it is assigned to, if any.
    public var patient: String?
    /// Whether it was revoked.
    public var revoked: Bool
    /// The height of the block that registered it.
    public var registeredAt: UInt64
    /// Which sequence numbers were committed.
    public var replay: ReplayWindow

    /// Makes a record.
    public init(
        id: String, key: PublicKey, patient: String?, revoked: Bool, registeredAt: UInt64,
        replay: ReplayWindow = ReplayWindow()
    ) {
        self.id = id
        self.key = key
        self.patient = patient
        self.revoked = revoked
        self.registeredAt = registeredAt
        self.replay = replay
    }
}

/// One signature to check: the cost that dominates checking a block.
public struct SignatureJob: Sendable {
    /// The key to check with.
    public var key: PublicKey
    /// The signed bytes.
    public var message: [UInt8]
    /// The signature.
    public var signature: [UInt8]

    /// Makes a job.
    public init(key: PublicKey, message: [UInt8], signature: [UInt8]) {
        self.key = key
        self.message = message
        self.signature = signature
    }

    /// Whether the signature verifies.
    public func run() -> Bool { key.isValidSignature(signature, for: message) }
}

/// Checks a batch of signatures, and runs the other per-item work of checking a block (decoding
/// each reading beside its signature). The pure core does it one item after another; the node's
/// shell supplies a verifier that spreads it over every core.
public protocol SignatureVerifier: Sendable {
    /// Runs `transform` for every index in `0..<count`, in any order and on any thread.
    /// - Parameters:
    ///   - count: how many items.
    ///   - transform: the work for one item; it must not depend on the other items.
    /// - Returns: the results in index order.
    func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T]

    /// Whether these exact reading bytes were verified already by whoever supplies the verifier
    /// (a manager verified them when they arrived): a device's key never changes, so their
    /// signature need not be checked again. The rules are checked all the same.
    /// - Parameter bytes: a signed reading's bytes.
    func isKnownValid(_ bytes: [UInt8]) -> Bool
}

extension SignatureVerifier {
    /// Nothing is known: every signature is checked.
    public func isKnownValid(_ bytes: [UInt8]) -> Bool { false }

    /// Checks each job.
    /// - Parameter jobs: the signatures.
    /// - Returns: one result per job, in order.
    public func verify(_ jobs: [SignatureJob]) -> [Bool] { map(count: jobs.count) { jobs[$0].run() } }
}

/// Checks signatures one after another on the calling thread.
public struct SequentialSignatureVerifier: SignatureVerifier {
    /// Makes a verifier.
    public init() {}

    /// Runs each item in order on the calling thread.
    public func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T] { (0..<count).map(transform) }
}

/// A block that breaks a rule: which rule, and where.
public struct BlockRuleViolation: Error, Hashable, Sendable, CustomStringConvertible {
    /// The height of the block.
    public var height: UInt64
    /// The rule: `header.height`, `header.previous-hash`, `body.readings-root`, ...,
    /// `reading.<reason>` (PROTOCOL.md's reasons) or `transaction.<reason>`.
    public var rule: String
    /// The index of the reading or transaction that breaks it, if one does.
    public var index: Int?
    /// What is wrong, for a person.
    public var message: String

    /// Makes a violation.
    public init(height: UInt64, rule: String, index: Int? = nil, message: String) {
        self.height = height
        self.rule = rule
        self.index = index
        self.message = message
    }

    /// `height H: rule (item i): message`.
    public var description: String {
        "height \(height): \(rule)\(index.map { " (item \($0))" } ?? ""): \(message)"
    }
}

/// A block that passed every rule, with what it changes.
public struct CheckedBlock: Sendable {
    /// The block.
    public let block: Block
    /// Its header hash.
    public let headerHash: Hash256
    /// Its readings, decoded, in order.
    public let readings: [SignedReading]
    /// The patient each reading's device is assigned to once the block applies (index-aligned).
    public let patients: [String?]
    /// Its transactions, decoded, in order.
    public let transactions: [SignedTransaction]
    /// The device records the block creates or changes.
    public let devices: [String: DeviceRecord]
    /// The submitters' anti-replay windows the block changes.
    public let submitters: [String: ReplayWindow]
    /// What the block changes in the access state, with the decisions on its access requests.
    public let access: AccessChanges
    /// The runtime that decided them (`ContractRunner.runtime`).
    public let contractRuntime: String
}

/// What the items of one block change, collected as they are checked in order.
struct BlockChanges {
    /// The registry entries changed, with their new replay windows.
    var devices: [String: DeviceRecord] = [:]
    /// The submitters' transaction windows changed.
    var submitters: [String: ReplayWindow] = [:]
    /// The access state changed, and the decisions taken.
    var access = AccessChanges()
    /// How many transactions were admitted so far (the next one's position in the block).
    var admittedTransactions = 0
}

/// The ledger's state after some height: the registry, anti-replay windows and patient
/// assignments. Applying a block is a pure function of the state and the block.
public struct LedgerState: Hashable, Sendable {
    /// The channel's genesis.
    public let genesis: Genesis
    /// The genesis hash.
    public let genesisHash: Hash256
    /// The council hash every header must name.
    public let councilHash: Hash256
    /// The channel's kinds.
    public let kinds: KindTable
    /// The height of the last block applied; 0 at genesis.
    public private(set) var height: UInt64
    /// The hash of the last header; the genesis hash at height 0.
    public private(set) var headerHash: Hash256
    /// The time of the last block; the genesis time at height 0.
    public private(set) var time: UInt64
    /// Every registered device, revoked ones too.
    public private(set) var devices: [String: DeviceRecord]
    /// Each submitter's transaction anti-replay window (registrars, managers, professionals).
    public private(set) var submitters: [String: ReplayWindow]
    /// Professionals, consents, treatments, contracts and grants.
    public private(set) var access: AccessState

    /// The state at height 0.
    /// - Parameter genesis: the channel's genesis.
    public init(genesis: Genesis) {
        self.genesis = genesis
        genesisHash = genesis.hash
        councilHash = genesis.councilHash
        kinds = genesis.kindTable
        height = 0
        headerHash = genesisHash
        time = genesis.createdAt
        devices = [:]
        submitters = [:]
        access = AccessState()
    }

    /// A state restored from storage (the store re-checks it against its blocks in `verify`).
    public init(
        genesis: Genesis, height: UInt64, headerHash: Hash256, time: UInt64, devices: [String: DeviceRecord],
        submitters: [String: ReplayWindow], access: AccessState = AccessState()
    ) {
        self.init(genesis: genesis)
        self.height = height
        self.headerHash = headerHash
        self.time = time
        self.devices = devices
        self.submitters = submitters
        self.access = access
    }

    /// Applies a checked block. It must have been checked against this very state.
    /// - Parameter checked: the result of `check`.
    public mutating func apply(_ checked: CheckedBlock) {
        precondition(checked.block.header.height == height + 1, "apply takes a block checked against this state")
        height = checked.block.header.height
        headerHash = checked.headerHash
        time = checked.block.header.time
        for (id, record) in checked.devices { devices[id] = record }
        for (id, window) in checked.submitters { submitters[id] = window }
        access.apply(checked.access)
    }

    /// The state after a block, or the rule the block breaks.
    /// - Parameters:
    ///   - block: the next block.
    ///   - verifier: how signatures are checked.
    ///   - contracts: how access contracts are run (the default denies every request).
    /// - Throws: `BlockRuleViolation`.
    public func applying(
        _ block: Block, verifier: some SignatureVerifier = SequentialSignatureVerifier(),
        contracts: any ContractRunner = DenyingContractRunner()
    ) throws(BlockRuleViolation) -> LedgerState {
        var next = self
        next.apply(try check(block, verifier: verifier, contracts: contracts))
        return next
    }

    /// Checks a reading against the ledger's rules 2 to 7 (PROTOCOL.md), as a manager does before
    /// accepting it and a validator does inside a block. Rule 1 (size, structure) is decoding.
    /// - Parameters:
    ///   - signed: the decoded reading.
    ///   - record: the device's record in the state that applies (nil when unregistered).
    ///   - topicDevice: the device of the topic it came on (nil inside a block).
    ///   - now: the checker's clock, ms (the block's time inside a block).
    ///   - signatureValid: whether the signature verifies with the record's key; asked only when
    ///     rules 2 pass, so the caller can verify lazily or in a batch.
    /// - Returns: nil when the reading is acceptable, else why not.
    public func check(
        _ signed: SignedReading, record: DeviceRecord?, topicDevice: String?, now: UInt64,
        signatureValid: (DeviceRecord) -> Bool
    ) -> ReadingRejection? {
        guard let record else {
            return ReadingRejection(.unknownDevice, "device '\(signed.keyID)' is not registered on this channel")
        }
        if record.revoked { return ReadingRejection(.revokedDevice, "device '\(record.id)' was revoked") }
        guard signed.message.algorithm == record.key.algorithm, signatureValid(record) else {
            return ReadingRejection(
                .badSignature, "the signature does not verify with the registered key of '\(record.id)'")
        }
        let reading = signed.reading
        guard reading.channel == genesis.channel else {
            return ReadingRejection(.wrongChannel, "the reading is for channel '\(reading.channel)'")
        }
        guard reading.device == signed.keyID, topicDevice == nil || topicDevice == reading.device else {
            return ReadingRejection(.wrongDevice, "the payload's device '\(reading.device)' is not the sender")
        }
        guard record.replay.isFresh(reading.seq) else {
            return ReadingRejection(
                .replayed, "seq \(reading.seq) was committed or is below the window (highest \(record.replay.highest))")
        }
        guard reading.time <= now &+ genesis.skewMs else {
            return ReadingRejection(.clockSkew, "time \(reading.time) is over \(genesis.skewMs) ms ahead of \(now)")
        }
        for (index, item) in reading.records.enumerated() {
            guard let kind = kinds[item.code] else {
                return ReadingRejection(
                    .unknownCode, "record \(index): code '\(item.code)' is not known on the channel")
            }
            guard item.unit == kind.unit else {
                return ReadingRejection(
                    .unitMismatch, "record \(index): \(item.code) is in '\(kind.unit)', not '\(item.unit)'")
            }
            guard kind.isPlausible(item.value.doubleValue) else {
                return ReadingRejection(
                    .implausibleValue,
                    "record \(index): \(item.value.doubleValue) is outside \(kind.minimum)...\(kind.maximum) \(kind.unit)"
                )
            }
        }
        return nil
    }

    /// A proposer's clock, checked by a validator before it votes: a proposed block whose time is
    /// more than the channel's skew ahead of `now` (the validator's clock) is refused. This is not a
    /// rule of `check`: a decided block is applied whatever the replica's clock says (2f+1 validators
    /// judged its time when they voted), and a block's time never goes back (`check`), so a proposer
    /// whose clock runs ahead cannot move the ledger's time beyond its validators' clocks.
    /// - Throws: `BlockRuleViolation` with the rule `header.time-ahead`.
    public func checkTimely(_ header: BlockHeader, now: UInt64) throws(BlockRuleViolation) {
        guard header.time <= now &+ genesis.skewMs else {
            throw BlockRuleViolation(
                height: header.height, rule: "header.time-ahead",
                message: "time \(header.time) is over \(genesis.skewMs) ms ahead of this validator's clock (\(now))")
        }
    }

    /// Checks a block against every rule: header links, roots, limits, each transaction and each
    /// reading (with every signature), and decides its access requests by running their contracts.
    /// Nothing is changed. Whether a block is valid never depends on a contract's decision; what the
    /// state becomes does, so every replica must pass a runner that decides alike.
    /// - Parameters:
    ///   - block: the next block.
    ///   - verifier: how the readings' signatures are checked.
    ///   - contracts: how access contracts are run (the default denies every request with `no-runner`).
    /// - Returns: what the block changes, for `apply`.
    /// - Throws: `BlockRuleViolation` naming the first rule it breaks.
    public func check(
        _ block: Block, verifier: some SignatureVerifier, contracts: any ContractRunner = DenyingContractRunner()
    ) throws(BlockRuleViolation) -> CheckedBlock {
        let header = block.header
        let body = block.body
        func violation(_ rule: String, _ index: Int? = nil, _ message: String) -> BlockRuleViolation {
            BlockRuleViolation(height: header.height, rule: rule, index: index, message: message)
        }
        guard header.channel == genesis.channel else {
            throw violation("header.channel", nil, "the block is for channel '\(header.channel)'")
        }
        guard header.height == height + 1 else {
            throw violation("header.height", nil, "the block is at height \(header.height); the next is \(height + 1)")
        }
        guard header.previousHash == headerHash else {
            throw violation("header.previous-hash", nil, "it names \(header.previousHash.hex), not \(headerHash.hex)")
        }
        guard header.time >= time else {
            throw violation("header.time", nil, "time \(header.time) is before the previous block's \(time)")
        }
        guard genesis.managers.contains(where: { $0.id == header.proposer }) else {
            throw violation("header.proposer", nil, "'\(header.proposer)' is not a manager of the channel")
        }
        guard header.councilHash == councilHash else {
            throw violation("header.council-hash", nil, "the header names another council")
        }
        guard header.readingCount == body.readings.count, header.transactionCount == body.transactions.count else {
            throw violation("header.counts", nil, "the header's counts don't match the body")
        }
        guard body.readings.count <= genesis.block.maxReadings else {
            throw violation(
                "body.max-readings", nil, "\(body.readings.count) readings, over \(genesis.block.maxReadings)")
        }
        guard body.payloadByteCount <= genesis.block.maxBytes else {
            throw violation("body.max-bytes", nil, "\(body.payloadByteCount) bytes, over \(genesis.block.maxBytes)")
        }
        guard body.readingsRoot == header.readingsRoot else {
            throw violation("body.readings-root", nil, "the readings' Merkle root is not the header's")
        }
        guard body.transactionsRoot == header.transactionsRoot else {
            throw violation("body.transactions-root", nil, "the transactions' Merkle root is not the header's")
        }

        var changes = BlockChanges()
        var transactions: [SignedTransaction] = []
        for (index, bytes) in body.transactions.enumerated() {
            let signed: SignedTransaction
            do {
                signed = try SignedTransaction(decoding: bytes)
            } catch {
                throw violation("transaction.malformed", index, error.message)
            }
            if let rejection = admit(
                signed, height: header.height, time: header.time, contracts: contracts, into: &changes)
            {
                throw violation("transaction.\(rejection.reason.rawValue)", index, rejection.message)
            }
            transactions.append(signed)
        }

        // Decoding and the signature of each reading are independent of the others: one pass the
        // verifier may spread over every core. The rules that depend on order run after it.
        let registered = devices
        let registeredInBlock = changes.devices
        let decoded = verifier.map(count: body.readings.count) {
            index -> Result<(SignedReading, Bool), ReadingRejection> in
            let signed: SignedReading
            do throws(ReadingRejection) {
                signed = try SignedReading(decoding: body.readings[index])
            } catch {
                return .failure(error)
            }
            guard let record = registeredInBlock[signed.keyID] ?? registered[signed.keyID],
                signed.message.algorithm == record.key.algorithm
            else { return .success((signed, false)) }
            if verifier.isKnownValid(body.readings[index]) { return .success((signed, true)) }
            return .success((signed, record.key.isValidSignature(signed.message.signature, for: signed.toBeSigned)))
        }
        var readings: [SignedReading] = []
        readings.reserveCapacity(body.readings.count)
        var signatureValid: [Bool] = []
        signatureValid.reserveCapacity(body.readings.count)
        for (index, result) in decoded.enumerated() {
            switch result {
            case .success(let (signed, valid)):
                readings.append(signed)
                signatureValid.append(valid)
            case .failure(let error):
                throw violation("reading.\(error.reason.rawValue)", index, error.message)
            }
        }
        var patients: [String?] = []
        patients.reserveCapacity(readings.count)
        for (index, signed) in readings.enumerated() {
            switch admit(signed, signatureValid: signatureValid[index], now: header.time, into: &changes) {
            case .success(let patient): patients.append(patient)
            case .failure(let rejection):
                throw violation("reading.\(rejection.reason.rawValue)", index, rejection.message)
            }
        }
        return CheckedBlock(
            block: block, headerHash: header.hash, readings: readings, patients: patients,
            transactions: transactions, devices: changes.devices, submitters: changes.submitters,
            access: changes.access, contractRuntime: contracts.runtime)
    }

    /// Checks a transaction of a block against the ledger's rules, given the changes of the
    /// block's earlier items, and records what it changes.
    /// - Parameters:
    ///   - signed: the transaction.
    ///   - height: the block's height.
    ///   - time: the block's time (the clock of contract decisions).
    ///   - contracts: the runner that decides access requests; nil decides nothing (block assembly,
    ///     where decisions do not change which items pass).
    ///   - changes: the block's changes so far; updated when the transaction passes.
    /// - Returns: nil when it passed, else why not (nothing is changed then).
    func admit(
        _ signed: SignedTransaction, height: UInt64, time: UInt64 = 0, contracts: (any ContractRunner)? = nil,
        into changes: inout BlockChanges
    ) -> TransactionRejection? {
        if let rejection = checkTransaction(signed, changes: changes) {
            return rejection
        }
        let tx = signed.transaction
        var window = changes.submitters[tx.submitter] ?? submitters[tx.submitter] ?? ReplayWindow()
        window.insert(tx.seq)
        changes.submitters[tx.submitter] = window
        let position = changes.admittedTransactions
        changes.admittedTransactions += 1
        switch tx.body {
        case .registerDevice(let device, let key, let patient):
            changes.devices[device] = DeviceRecord(
                id: device, key: key, patient: patient, revoked: false, registeredAt: height)
        case .assignDevice(let device, let patient):
            changes.devices[device]?.patient = patient
            if changes.devices[device] == nil, var record = devices[device] {
                record.patient = patient
                changes.devices[device] = record
            }
        case .revokeDevice(let device):
            changes.devices[device]?.revoked = true
            if changes.devices[device] == nil, var record = devices[device] {
                record.revoked = true
                changes.devices[device] = record
            }
        case .registerProfessional(let id, let role, let key, let organisation):
            changes.access.professionals[id] = ProfessionalRecord(
                id: id, role: role, key: key, organisation: organisation, registeredAt: height)
        case .consent(let patient, let study):
            var patients = changes.access.consents[study] ?? access.consents[study] ?? []
            patients.insert(patient)
            changes.access.consents[study] = patients
        case .withdrawConsent(let patient, let study):
            var patients = changes.access.consents[study] ?? access.consents[study] ?? []
            patients.remove(patient)
            changes.access.consents[study] = patients
        case .recordTreatment(let clinician, let patient):
            changes.access.treatments[Treatment(clinician: clinician, patient: patient)] = true
        case .endTreatment(let clinician, let patient):
            changes.access.treatments[Treatment(clinician: clinician, patient: patient)] = false
        case .deployContract(let deployment):
            let id = deployment.id
            changes.access.contracts[id] = DeployedContract(
                id: id, name: deployment.name, module: deployment.module, parameters: deployment.parameters,
                deployer: tx.submitter, deployedAt: height)
        case .accessRequest(let request):
            guard let contracts, let requester = professional(tx.submitter, changes) else { break }
            let decision = decide(
                request, id: signed.id, requester: requester, height: height, time: time, position: position,
                changes: changes, contracts: contracts)
            if case .granted(let grant) = decision.outcome { changes.access.grants[grant.id] = grant }
            changes.access.decisions.append(decision)
        case .revokeGrant(let id):
            if var grant = changes.access.grants[id] ?? access.grants[id] {
                grant.revokedAt = height
                changes.access.grants[id] = grant
            }
        case .accessLog:
            break
        }
        return nil
    }

    func professional(_ id: String, _ changes: BlockChanges) -> ProfessionalRecord? {
        changes.access.professionals[id] ?? access.professionals[id]
    }

    /// Runs an access request's contract and turns its verdict into the recorded decision.
    func decide(
        _ request: AccessRequest, id: Hash256, requester: ProfessionalRecord, height: UInt64, time: UInt64,
        position: Int, changes: BlockChanges, contracts: any ContractRunner
    ) -> AccessDecision {
        func decision(_ outcome: AccessOutcome) -> AccessDecision {
            AccessDecision(
                id: id, requester: requester.id, request: request, height: height, position: position, outcome: outcome)
        }
        func denied(_ code: DenialCode, _ message: String) -> AccessDecision {
            decision(.denied(AccessDenial(code, message)))
        }
        guard let contract = changes.access.contracts[request.contract] ?? access.contracts[request.contract] else {
            return denied(.unknownContract, "no contract \(request.contract.hex) is deployed")
        }
        let context = ContractRequestContext(id: id, requester: requester, request: request, height: height, time: time)
        let view = AccessLedgerView(state: self, devices: changes.devices, changes: changes.access)
        switch contracts.decide(contract: contract, context: context, ledger: view) {
        case .deny(let denial):
            return decision(.denied(denial))
        case .grant(let mode, let expiresAt):
            guard expiresAt > time else {
                return denied(
                    .invalidDecision, "the grant would expire at \(expiresAt), not after the decision at \(time)")
            }
            if case .aggregates(let k) = mode, k < 1 {
                return denied(.invalidDecision, "an aggregates-only grant needs k of at least 1, not \(k)")
            }
            guard request.patient != nil || request.study != nil else {
                return denied(.invalidDecision, "a grant must cover a patient or a study; the request names neither")
            }
            return decision(
                .granted(
                    AccessGrant(
                        id: id, requester: requester.id, role: requester.role, contract: contract.id,
                        scope: AccessScope(
                            mode: mode, kinds: request.kinds, from: request.from, to: request.to,
                            patient: request.patient, study: request.study),
                        expiresAt: expiresAt, grantedAt: height, grantedTime: time)))
        }
    }

    /// Checks a reading of a block against rules 2 to 7, given the changes of the block's earlier
    /// items, and records its seq in the device's window.
    /// - Parameters:
    ///   - signed: the reading.
    ///   - signatureValid: whether its signature verifies with the device's registered key.
    ///   - now: the block's time.
    ///   - changes: the block's changes so far; updated when the reading passes.
    /// - Returns: the device's patient when it passed, else why not (nothing is changed then).
    func admit(_ signed: SignedReading, signatureValid: Bool, now: UInt64, into changes: inout BlockChanges)
        -> Result<String?, ReadingRejection>
    {
        let record = changes.devices[signed.keyID] ?? devices[signed.keyID]
        if let rejection = check(
            signed, record: record, topicDevice: nil, now: now, signatureValid: { _ in signatureValid })
        {
            return .failure(rejection)
        }
        guard var updated = record else {
            return .failure(ReadingRejection(.unknownDevice, "device '\(signed.keyID)' is not registered"))
        }
        updated.replay.insert(signed.reading.seq)
        changes.devices[signed.keyID] = updated
        return .success(updated.patient)
    }

    /// Checks a transaction against the ledger's rules, given the changes of earlier transactions
    /// of the same block.
    /// - Returns: nil when it may be committed, else why not.
    func checkTransaction(
        _ signed: SignedTransaction, changed: [String: DeviceRecord], windows: [String: ReplayWindow]
    ) -> TransactionRejection? {
        var changes = BlockChanges()
        changes.devices = changed
        changes.submitters = windows
        return checkTransaction(signed, changes: changes)
    }

    /// Checks a transaction against the ledger's rules, given the changes of earlier items of the
    /// same block. Grants are looked up in the state before the block only, so that whether a
    /// block is valid never depends on a contract's decision.
    /// - Returns: nil when it may be committed, else why not.
    func checkTransaction(_ signed: SignedTransaction, changes: BlockChanges) -> TransactionRejection? {
        let tx = signed.transaction
        guard tx.channel == genesis.channel else {
            return TransactionRejection(.wrongChannel, "the transaction is for channel '\(tx.channel)'")
        }
        guard signed.bytes.count <= genesis.block.maxBytes else {
            return TransactionRejection(
                .tooLarge, "\(signed.bytes.count) bytes do not fit in a block of \(genesis.block.maxBytes)")
        }
        let key: PublicKey
        switch tx.body.signer {
        case .registrar:
            guard let registrar = genesis.registrar(tx.submitter) else {
                return TransactionRejection(.unknownSubmitter, "'\(tx.submitter)' is not a registrar of the channel")
            }
            key = registrar.publicKey
        case .manager:
            guard let manager = genesis.managers.first(where: { $0.id == tx.submitter }) else {
                return TransactionRejection(.unknownSubmitter, "'\(tx.submitter)' is not a manager of the channel")
            }
            key = manager.publicKey
        case .professional:
            guard let professional = professional(tx.submitter, changes) else {
                return TransactionRejection(
                    .unknownSubmitter, "'\(tx.submitter)' is not a registered researcher or clinician")
            }
            key = professional.key
        }
        do {
            try signed.message.verify(with: key)
        } catch {
            return TransactionRejection(.badSignature, "\(error)")
        }
        let window = changes.submitters[tx.submitter] ?? submitters[tx.submitter] ?? ReplayWindow()
        guard window.isFresh(tx.seq) else {
            return TransactionRejection(.replayed, "seq \(tx.seq) of '\(tx.submitter)' was committed or is too old")
        }
        switch tx.body {
        case .registerDevice(let device, _, _):
            guard changes.devices[device] ?? devices[device] == nil else {
                return TransactionRejection(.deviceExists, "device '\(device)' is registered already")
            }
        case .assignDevice(let device, _), .revokeDevice(let device):
            guard let existing = changes.devices[device] ?? devices[device] else {
                return TransactionRejection(.unknownDevice, "device '\(device)' is not registered")
            }
            guard !existing.revoked else {
                return TransactionRejection(.revokedDevice, "device '\(device)' was revoked")
            }
        case .registerProfessional(let id, _, _, _):
            let members = genesis.council + genesis.managers + genesis.registrars
            guard professional(id, changes) == nil, !members.contains(where: { $0.id == id }) else {
                return TransactionRejection(
                    .professionalExists, "'\(id)' is registered already or a member of the channel")
            }
        case .consent(let patient, let study):
            guard
                !AccessLedgerView(state: self, devices: [:], changes: changes.access)
                    .hasConsented(patient: patient, study: study)
            else {
                return TransactionRejection(.consentExists, "'\(patient)' consents to '\(study)' already")
            }
        case .withdrawConsent(let patient, let study):
            guard
                AccessLedgerView(state: self, devices: [:], changes: changes.access)
                    .hasConsented(patient: patient, study: study)
            else {
                return TransactionRejection(.noConsent, "'\(patient)' does not consent to '\(study)'")
            }
        case .recordTreatment(let clinician, let patient), .endTreatment(let clinician, let patient):
            guard let record = professional(clinician, changes) else {
                return TransactionRejection(.unknownProfessional, "'\(clinician)' is not registered")
            }
            guard record.role == .clinician else {
                return TransactionRejection(.notAClinician, "'\(clinician)' is registered as a \(record.role.rawValue)")
            }
            let treating = AccessLedgerView(state: self, devices: [:], changes: changes.access)
                .isTreating(clinician: clinician, patient: patient)
            if case .recordTreatment = tx.body, treating {
                return TransactionRejection(.treatmentExists, "'\(clinician)' treats '\(patient)' already")
            }
            if case .endTreatment = tx.body, !treating {
                return TransactionRejection(.noTreatment, "'\(clinician)' does not treat '\(patient)'")
            }
        case .deployContract(let deployment):
            let id = deployment.id
            guard changes.access.contracts[id] ?? access.contracts[id] == nil else {
                return TransactionRejection(.contractExists, "contract \(id.hex) is deployed already")
            }
        case .accessRequest(let request):
            for code in request.kinds where kinds[code] == nil {
                return TransactionRejection(.unknownCode, "code '\(code)' is not known on the channel")
            }
        case .revokeGrant(let id):
            guard let grant = access.grants[id] else {
                return TransactionRejection(.unknownGrant, "no grant \(id.hex) was committed before this block")
            }
            guard (changes.access.grants[id] ?? grant).revokedAt == nil else {
                return TransactionRejection(.grantRevoked, "grant \(id.hex) was revoked already")
            }
        case .accessLog(let entry):
            guard let grant = access.grants[entry.grant] else {
                return TransactionRejection(
                    .unknownGrant, "no grant \(entry.grant.hex) was committed before this block")
            }
            guard grant.requester == entry.requester else {
                return TransactionRejection(
                    .wrongRequester, "grant \(entry.grant.hex) is \(grant.requester)'s, not \(entry.requester)'s")
            }
        }
        return nil
    }

    /// Whether a transaction could be committed on this state now (a manager's check).
    /// - Parameter signed: the decoded transaction.
    /// - Returns: nil when it may be committed, else why not.
    public func check(_ signed: SignedTransaction) -> TransactionRejection? {
        checkTransaction(signed, changes: BlockChanges())
    }
}

/// Why a transaction is refused.
public struct TransactionRejection: Error, Hashable, Sendable, CustomStringConvertible {
    /// The reason.
    public enum Reason: String, Hashable, Sendable, CaseIterable {
        /// Not a valid signed transaction.
        case malformed
        /// For another channel.
        case wrongChannel = "wrong-channel"
        /// The submitter is not a registrar named in genesis.
        case unknownSubmitter = "unknown-submitter"
        /// The signature does not verify with the submitter's key.
        case badSignature = "bad-signature"
        /// The submitter's seq was committed or is below its window.
        case replayed
        /// The device to register exists already.
        case deviceExists = "device-exists"
        /// The device is not registered.
        case unknownDevice = "unknown-device"
        /// The device was revoked.
        case revokedDevice = "revoked-device"
        /// The transaction does not fit in a block of the channel.
        case tooLarge = "too-large"
        /// The professional's id is registered already, or is a member of the channel.
        case professionalExists = "professional-exists"
        /// The professional is not registered.
        case unknownProfessional = "unknown-professional"
        /// The professional is not a clinician.
        case notAClinician = "not-a-clinician"
        /// The patient consents to the study already.
        case consentExists = "consent-exists"
        /// The patient does not consent to the study.
        case noConsent = "no-consent"
        /// The clinician treats the patient already.
        case treatmentExists = "treatment-exists"
        /// The clinician does not treat the patient.
        case noTreatment = "no-treatment"
        /// A contract with the same module is deployed already.
        case contractExists = "contract-exists"
        /// A requested kind is not known on the channel.
        case unknownCode = "unknown-code"
        /// The grant is not committed (in an earlier block).
        case unknownGrant = "unknown-grant"
        /// The grant was revoked already.
        case grantRevoked = "grant-revoked"
        /// The access log names another requester than the grant's.
        case wrongRequester = "wrong-requester"
    }
    /// The reason.
    public var reason: Reason
    /// What is wrong, for a person.
    public var message: String

    /// Makes a rejection.
    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    /// `reason: message`.
    public var description: String { "\(reason.rawValue): \(message)" }
}
