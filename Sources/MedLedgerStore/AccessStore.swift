public import MedLedgerCore

/// Schema version 2: the access state and its history, all derived from the blocks.
let accessSchema = """
    CREATE TABLE professionals (
        id TEXT PRIMARY KEY, role TEXT NOT NULL, alg INTEGER NOT NULL, key BLOB NOT NULL, organisation TEXT,
        registered_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE consents (
        study TEXT NOT NULL, patient TEXT NOT NULL, from_height INTEGER NOT NULL, to_height INTEGER,
        PRIMARY KEY (study, patient, from_height)) WITHOUT ROWID;
    CREATE TABLE treatments (
        clinician TEXT NOT NULL, patient TEXT NOT NULL, from_height INTEGER NOT NULL, to_height INTEGER,
        PRIMARY KEY (clinician, patient, from_height)) WITHOUT ROWID;
    CREATE TABLE contracts (
        id BLOB PRIMARY KEY, name TEXT NOT NULL, module BLOB NOT NULL, parameters BLOB NOT NULL,
        deployer TEXT NOT NULL, deployed_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE access_requests (
        id BLOB PRIMARY KEY, height INTEGER NOT NULL, pos INTEGER NOT NULL, requester TEXT NOT NULL,
        contract BLOB NOT NULL, kinds BLOB NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL,
        purpose TEXT NOT NULL, patient TEXT, study TEXT, outcome TEXT NOT NULL, role TEXT, mode TEXT, k INTEGER,
        expires_at INTEGER, granted_time INTEGER, revoked_at INTEGER, denial_code TEXT, denial_message TEXT)
        WITHOUT ROWID;
    CREATE INDEX access_requests_by_requester ON access_requests(requester, height);
    CREATE TABLE access_log (
        height INTEGER NOT NULL, pos INTEGER NOT NULL, manager TEXT NOT NULL, grant_id BLOB NOT NULL,
        requester TEXT NOT NULL, fetch BLOB NOT NULL, count INTEGER NOT NULL, served_hash BLOB NOT NULL,
        served_at INTEGER NOT NULL, PRIMARY KEY (height, pos)) WITHOUT ROWID;
    CREATE INDEX access_log_by_grant ON access_log(grant_id);
    """

/// A served fetch as the ledger recorded it: the manager's access log, where it was committed.
public struct AccessLogRecord: Hashable, Sendable {
    /// The height of the block that carried it.
    public var height: UInt64
    /// Its position among the block's transactions.
    public var position: Int
    /// The manager that served and logged it.
    public var manager: String
    /// What it says.
    public var entry: AccessLogEntry
}

/// The columns and row values of the access tables: what the store writes and what `verify`
/// expects, from the same functions.
enum AccessRows {
    static let professionals = "id, role, alg, key, organisation, registered_at"
    static let consents = "study, patient, from_height, to_height"
    static let treatments = "clinician, patient, from_height, to_height"
    static let contracts = "id, name, module, parameters, deployer, deployed_at"
    static let requests = """
        id, height, pos, requester, contract, kinds, from_ms, to_ms, purpose, patient, study, outcome, role, mode, k, \
        expires_at, granted_time, revoked_at, denial_code, denial_message
        """
    static let log = "height, pos, manager, grant_id, requester, fetch, count, served_hash, served_at"

    static func placeholders(_ columns: String) -> String {
        Array(repeating: "?", count: columns.split(separator: ",").count).joined(separator: ", ")
    }

    static func optional(_ text: String?) -> SQLiteValue { text.map { .text($0) } ?? .null }
    static func optional(_ value: UInt64?) -> SQLiteValue {
        value.map { .integer(Int64(truncatingIfNeeded: $0)) } ?? .null
    }
    static func integer(_ value: UInt64) -> SQLiteValue { .integer(Int64(truncatingIfNeeded: value)) }

    static func professional(_ record: ProfessionalRecord) -> [SQLiteValue] {
        [
            .text(record.id), .text(record.role.rawValue), .integer(record.key.algorithm.coseIdentifier),
            .blob(record.key.rawBytes), optional(record.organisation), integer(record.registeredAt),
        ]
    }

    static func parameters(_ parameters: [String: Int64]) -> [UInt8] {
        CBOR.map(parameters.map { CBORMapEntry(.text($0.key), .int($0.value)) }).encoded()
    }

    static func contract(_ contract: DeployedContract) -> [SQLiteValue] {
        [
            .blob(contract.id.bytes), .text(contract.name), .blob(contract.module),
            .blob(parameters(contract.parameters)), .text(contract.deployer), integer(contract.deployedAt),
        ]
    }

    static func kinds(_ kinds: [String]) -> [UInt8] { CBOR.array(kinds.map(CBOR.text)).encoded() }

    static func request(_ decision: AccessDecision, revokedAt: UInt64?) -> [SQLiteValue] {
        let request = decision.request
        var values: [SQLiteValue] = [
            .blob(decision.id.bytes), integer(decision.height), .integer(Int64(truncatingIfNeeded: decision.position)),
            .text(decision.requester), .blob(request.contract.bytes), .blob(kinds(request.kinds)),
            integer(request.from), integer(request.to), .text(request.purpose), optional(request.patient),
            optional(request.study),
        ]
        switch decision.outcome {
        case .granted(let grant):
            var k: SQLiteValue = .null
            if case .aggregates(let value) = grant.scope.mode { k = .integer(Int64(truncatingIfNeeded: value)) }
            values += [
                .text("granted"), .text(grant.role.rawValue), .text(grant.scope.mode.name), k, integer(grant.expiresAt),
                integer(grant.grantedTime), optional(revokedAt), .null, .null,
            ]
        case .denied(let denial):
            values += [
                .text("denied"), .null, .null, .null, .null, .null, .null, .text(denial.code.rawValue),
                .text(denial.message),
            ]
        }
        return values
    }

    static func log(height: UInt64, position: Int, manager: String, _ entry: AccessLogEntry) -> [SQLiteValue] {
        [
            integer(height), .integer(Int64(truncatingIfNeeded: position)), .text(manager), .blob(entry.grant.bytes),
            .text(entry.requester), .blob(entry.fetch.bytes), integer(entry.count), .blob(entry.servedHash.bytes),
            integer(entry.servedAt),
        ]
    }

    /// The consents a block opens and closes, given the state before it.
    static func consentEvents(before: AccessState, _ changes: AccessChanges) -> (
        opened: [(study: String, patient: String)], closed: [(study: String, patient: String)]
    ) {
        var opened: [(String, String)] = []
        var closed: [(String, String)] = []
        for (study, patients) in changes.consents.sorted(by: { $0.key < $1.key }) {
            let previous = before.consents[study] ?? []
            for patient in patients.subtracting(previous).sorted() { opened.append((study, patient)) }
            for patient in previous.subtracting(patients).sorted() { closed.append((study, patient)) }
        }
        return (opened, closed)
    }

    /// The treating relationships a block opens and closes, given the state before it.
    static func treatmentEvents(before: AccessState, _ changes: AccessChanges) -> (
        opened: [Treatment], closed: [Treatment]
    ) {
        var opened: [Treatment] = []
        var closed: [Treatment] = []
        for (treatment, present) in changes.treatments.sorted(by: { $0.key < $1.key }) {
            let previous = before.treatments.contains(treatment)
            if present, !previous { opened.append(treatment) }
            if !present, previous { closed.append(treatment) }
        }
        return (opened, closed)
    }

    /// A row's values as one comparable text.
    static func text(_ values: [SQLiteValue]) -> String {
        values.map { value in
            switch value {
            case .integer(let int): "i\(int)"
            case .real(let double): "r\(double)"
            case .text(let text): "t\(text.count):\(text)"
            case .blob(let bytes): "b\(Hex.encode(bytes))"
            case .null: "n"
            }
        }.joined(separator: "|")
    }
}

extension LedgerStore {
    // MARK: - Writing

    /// Writes what a block changes in the access tables (inside the block's SQLite transaction,
    /// before the state applies it).
    func writeAccess(_ checked: CheckedBlock) throws(StoreError) {
        let access = checked.access
        let height = checked.block.header.height
        let before = state.access
        for record in access.professionals.values.sorted(by: { $0.id < $1.id }) {
            try db.run(
                "INSERT INTO professionals(\(AccessRows.professionals)) VALUES (\(AccessRows.placeholders(AccessRows.professionals)))",
                AccessRows.professional(record))
        }
        let consents = AccessRows.consentEvents(before: before, access)
        for (study, patient) in consents.closed {
            try db.run(
                "UPDATE consents SET to_height = ? WHERE study = ? AND patient = ? AND to_height IS NULL",
                [AccessRows.integer(height), .text(study), .text(patient)])
        }
        for (study, patient) in consents.opened {
            try db.run(
                "INSERT INTO consents(\(AccessRows.consents)) VALUES (?, ?, ?, NULL)",
                [.text(study), .text(patient), AccessRows.integer(height)])
        }
        let treatments = AccessRows.treatmentEvents(before: before, access)
        for treatment in treatments.closed {
            try db.run(
                "UPDATE treatments SET to_height = ? WHERE clinician = ? AND patient = ? AND to_height IS NULL",
                [AccessRows.integer(height), .text(treatment.clinician), .text(treatment.patient)])
        }
        for treatment in treatments.opened {
            try db.run(
                "INSERT INTO treatments(\(AccessRows.treatments)) VALUES (?, ?, ?, NULL)",
                [.text(treatment.clinician), .text(treatment.patient), AccessRows.integer(height)])
        }
        for contract in access.contracts.values.sorted(by: { $0.id < $1.id }) {
            try db.run(
                "INSERT INTO contracts(\(AccessRows.contracts)) VALUES (\(AccessRows.placeholders(AccessRows.contracts)))",
                AccessRows.contract(contract))
        }
        for decision in access.decisions {
            try db.run(
                "INSERT INTO access_requests(\(AccessRows.requests)) VALUES (\(AccessRows.placeholders(AccessRows.requests)))",
                AccessRows.request(decision, revokedAt: nil))
        }
        for (id, grant) in access.grants where before.grants[id] != nil {
            try db.run(
                "UPDATE access_requests SET revoked_at = ? WHERE id = ?",
                [AccessRows.optional(grant.revokedAt), .blob(id.bytes)])
        }
        for (position, signed) in checked.transactions.enumerated() {
            guard case .accessLog(let entry) = signed.transaction.body else { continue }
            try db.run(
                "INSERT INTO access_log(\(AccessRows.log)) VALUES (\(AccessRows.placeholders(AccessRows.log)))",
                AccessRows.log(height: height, position: position, manager: signed.transaction.submitter, entry))
        }
    }

    // MARK: - Loading

    func loadAccessState() throws(StoreError) -> AccessState {
        var professionals: [String: ProfessionalRecord] = [:]
        try db.query("SELECT \(AccessRows.professionals) FROM professionals") { row throws(StoreError) in
            let id = row.text(0) ?? ""
            guard let role = row.text(1).flatMap(ProfessionalRole.init(rawValue:)),
                let alg = SignatureAlgorithm(coseIdentifier: row.int(2)),
                let key = try? PublicKey(algorithm: alg, rawBytes: row.blob(3))
            else { throw StoreError(.corrupt, "professional '\(id)': the stored role or key is invalid") }
            professionals[id] = ProfessionalRecord(
                id: id, role: role, key: key, organisation: row.text(4), registeredAt: row.uint(5))
        }
        var consents: [String: Set<String>] = [:]
        try db.query("SELECT study, patient FROM consents WHERE to_height IS NULL") { row throws(StoreError) in
            consents[row.text(0) ?? "", default: []].insert(row.text(1) ?? "")
        }
        var treatments = Set<Treatment>()
        try db.query("SELECT clinician, patient FROM treatments WHERE to_height IS NULL") { row throws(StoreError) in
            treatments.insert(Treatment(clinician: row.text(0) ?? "", patient: row.text(1) ?? ""))
        }
        var contracts: [Hash256: DeployedContract] = [:]
        try db.query("SELECT \(AccessRows.contracts) FROM contracts") { row throws(StoreError) in
            let module = row.blob(2)
            guard let id = Hash256(bytes: row.blob(0)), id == Hash256.sha256(module),
                let parameters = Self.decodeParameters(row.blob(3))
            else { throw StoreError(.corrupt, "a stored contract's id, module or parameters are invalid") }
            contracts[id] = DeployedContract(
                id: id, name: row.text(1) ?? "", module: module, parameters: parameters, deployer: row.text(4) ?? "",
                deployedAt: row.uint(5))
        }
        var grants: [Hash256: AccessGrant] = [:]
        for decision in try accessDecisions(where: "outcome = 'granted'", []) {
            if case .granted(let grant) = decision.outcome { grants[grant.id] = grant }
        }
        return AccessState(
            professionals: professionals, consents: consents, treatments: treatments, contracts: contracts,
            grants: grants)
    }

    static func decodeParameters(_ bytes: [UInt8]) -> [String: Int64]? {
        guard let entries = (try? CBOR.decode(bytes, limits: .deterministic))?.mapValue else { return nil }
        var out: [String: Int64] = [:]
        for entry in entries {
            guard let key = entry.key.textValue, let value = entry.value.int64Value else { return nil }
            out[key] = value
        }
        return out
    }

    static func decodeKinds(_ bytes: [UInt8]) -> [String]? {
        guard let items = (try? CBOR.decode(bytes, limits: .deterministic))?.arrayValue else { return nil }
        let kinds = items.compactMap(\.textValue)
        return kinds.count == items.count ? kinds : nil
    }

    // MARK: - Queries

    private func accessDecisions(where condition: String, _ values: [SQLiteValue]) throws(StoreError)
        -> [AccessDecision]
    {
        try db.rows(
            "SELECT \(AccessRows.requests) FROM access_requests WHERE \(condition) ORDER BY height, pos", values
        ) { row throws(StoreError) in
            guard let id = Hash256(bytes: row.blob(0)), let contract = Hash256(bytes: row.blob(4)),
                let kinds = Self.decodeKinds(row.blob(5))
            else { throw StoreError(.corrupt, "an access request row has an invalid id, contract or kinds") }
            let request = AccessRequest(
                contract: contract, kinds: kinds, from: row.uint(6), to: row.uint(7),
                purpose: row.text(8) ?? "", patient: row.text(9), study: row.text(10))
            let outcome: AccessOutcome
            switch row.text(11) {
            case "granted":
                guard let role = row.text(12).flatMap(ProfessionalRole.init(rawValue:)) else {
                    throw StoreError(.corrupt, "access request \(id.hex): the stored role is invalid")
                }
                let mode: AccessMode
                switch row.text(13) {
                case "readings": mode = .readings
                case "aggregates" where !row.isNull(14): mode = .aggregates(k: Int(row.int(14)))
                default: throw StoreError(.corrupt, "access request \(id.hex): the stored mode is invalid")
                }
                outcome = .granted(
                    AccessGrant(
                        id: id, requester: row.text(3) ?? "", role: role, contract: contract,
                        scope: AccessScope(
                            mode: mode, kinds: kinds, from: request.from, to: request.to, patient: request.patient,
                            study: request.study),
                        expiresAt: row.uint(15), grantedAt: row.uint(1),
                        grantedTime: row.uint(16), revokedAt: row.isNull(17) ? nil : row.uint(17)))
            case "denied":
                guard let code = row.text(18).flatMap(DenialCode.init(rawValue:)) else {
                    throw StoreError(.corrupt, "access request \(id.hex): the stored denial code is invalid")
                }
                outcome = .denied(AccessDenial(code, row.text(19) ?? ""))
            default:
                throw StoreError(.corrupt, "access request \(id.hex): the stored outcome is invalid")
            }
            return AccessDecision(
                id: id, requester: row.text(3) ?? "", request: request, height: row.uint(1),
                position: Int(row.int(2)), outcome: outcome)
        }
    }

    /// The decision on a committed access request; a grant carries its revocation, if any.
    /// - Parameter id: the request's (and grant's) id.
    /// - Returns: nil when no such request is committed.
    /// - Throws: `StoreError` when the store cannot be read.
    public func accessDecision(_ id: Hash256) throws(StoreError) -> AccessDecision? {
        try accessDecisions(where: "id = ?", [.blob(id.bytes)]).first
    }

    /// The decisions on committed access requests, in chain order.
    /// - Parameter requester: only this requester's.
    /// - Throws: `StoreError` when the store cannot be read.
    public func accessDecisions(requester: String? = nil) throws(StoreError) -> [AccessDecision] {
        guard let requester else { return try accessDecisions(where: "1", []) }
        return try accessDecisions(where: "requester = ?", [.text(requester)])
    }

    /// The access logs committed, in chain order.
    /// - Parameter grant: only those under this grant.
    /// - Throws: `StoreError` when the store cannot be read.
    public func accessLog(grant: Hash256? = nil) throws(StoreError) -> [AccessLogRecord] {
        let condition = grant == nil ? "" : "WHERE grant_id = ?"
        return try db.rows(
            "SELECT \(AccessRows.log) FROM access_log \(condition) ORDER BY height, pos",
            grant.map { [.blob($0.bytes)] } ?? []
        ) { row throws(StoreError) in
            guard let grant = Hash256(bytes: row.blob(3)), let fetch = Hash256(bytes: row.blob(5)),
                let served = Hash256(bytes: row.blob(7))
            else { throw StoreError(.corrupt, "an access log row has an invalid hash") }
            return AccessLogRecord(
                height: row.uint(0), position: Int(row.int(1)), manager: row.text(2) ?? "",
                entry: AccessLogEntry(
                    grant: grant, requester: row.text(4) ?? "", fetch: fetch, count: row.uint(6),
                    servedHash: served, servedAt: row.uint(8)))
        }
    }

    /// The deployed contracts, in order of deployment.
    public var deployedContracts: [DeployedContract] {
        state.access.contracts.values.sorted { ($0.deployedAt, $0.id) < ($1.deployedAt, $1.id) }
    }

    /// The committed readings of some patients whose every record is of one of some kinds (or, with
    /// `everyRecord` false, that have any record of them), within a time range, in chain order: what
    /// a grant lets a manager serve.
    /// - Parameters:
    ///   - patients: the patients (a reading counts for the patient its device was assigned to when it
    ///     was committed).
    ///   - kinds: the kinds allowed.
    ///   - everyRecord: whether every record of a reading must be of those kinds.
    ///   - from: the earliest device time, ms.
    ///   - to: the latest device time, ms.
    ///   - after: only readings after this position.
    ///   - limit: at most this many (nil for all).
    /// - Throws: `StoreError` when the store cannot be read.
    public func readings(
        ofPatients patients: [String], kinds: [String], everyRecord: Bool = true, from: UInt64, to: UInt64,
        after: ReadingPosition? = nil, limit: Int? = nil
    ) throws(StoreError) -> [StoredReading] {
        guard !patients.isEmpty, !kinds.isEmpty, from <= to else { return [] }
        let allowed = Set(kinds)
        let kindsets = try db.rows("SELECT num, codes FROM kindsets") { row in (row.int(0), row.text(1) ?? "") }
            .filter { kindset in
                let codes = kindset.1.split(separator: ",").map(String.init)
                return everyRecord ? codes.allSatisfy(allowed.contains) : codes.contains(where: allowed.contains)
            }
            .map { String($0.0) }
        guard !kindsets.isEmpty else { return [] }
        var values: [SQLiteValue] = [
            .text(Self.jsonArray(patients)), .integer(Int64(truncatingIfNeeded: from)),
            .integer(Int64(truncatingIfNeeded: to)),
        ]
        var afterCondition = ""
        if let after {
            afterCondition = "AND (r.height > ? OR (r.height = ? AND r.pos > ?))"
            values += [
                .integer(Int64(truncatingIfNeeded: after.height)), .integer(Int64(truncatingIfNeeded: after.height)),
                .integer(Int64(truncatingIfNeeded: after.position)),
            ]
        }
        values.append(.integer(Int64(truncatingIfNeeded: limit ?? -1)))
        let rows = try db.rows(
            """
            SELECT r.height, r.pos, d.id, r.seq, r.time, a.patient FROM readings r
            JOIN devices d ON d.num = r.device
            JOIN assignments a ON a.device = r.device AND a.from_height <= r.height
                AND (a.to_height IS NULL OR r.height < a.to_height)
            WHERE a.patient IN (SELECT value FROM json_each(?)) AND r.kinds IN (\(kindsets.joined(separator: ",")))
                AND r.time >= ? AND r.time <= ? \(afterCondition)
            ORDER BY r.height, r.pos LIMIT ?
            """, values
        ) { row in
            (
                row.uint(0), Int(row.int(1)), row.text(2) ?? "", row.uint(3), row.uint(4),
                row.text(5)
            )
        }
        var out: [StoredReading] = []
        out.reserveCapacity(rows.count)
        for (height, pos, device, seq, time, patient) in rows {
            let body = try body(at: height)
            guard body.readings.indices.contains(pos) else {
                throw StoreError(.corrupt, "block \(height) has no reading \(pos), but the index names it")
            }
            let bytes = body.readings[pos]
            let signed: SignedReading
            do {
                signed = try SignedReading(decoding: bytes)
            } catch {
                throw StoreError(.corrupt, "block \(height) reading \(pos): \(error)")
            }
            out.append(
                StoredReading(
                    height: height, position: pos, device: device, seq: seq, time: time, patient: patient,
                    bytes: bytes, reading: signed.reading))
        }
        return out
    }

    static func jsonArray(_ texts: [String]) -> String {
        // Patient ids are [A-Za-z0-9._-]: nothing in them needs escaping in JSON.
        "[" + texts.map { "\"\($0)\"" }.joined(separator: ",") + "]"
    }

    /// A block's header with its commit certificate.
    /// - Throws: `StoreError.Code.notFound` when there is no such block.
    public func certifiedHeader(at height: UInt64) throws(StoreError) -> CertifiedHeader {
        let stored = try storedBlock(at: height)
        return CertifiedHeader(header: stored.header, certificate: stored.certificate)
    }

    /// The inclusion paths of several readings of one block, building its tree once.
    /// - Throws: `StoreError.Code.notFound` when the block or a position does not exist.
    public func inclusionPaths(height: UInt64, positions: [Int]) throws(StoreError) -> [[Hash256]] {
        let body = try body(at: height)
        do {
            return try MerkleTree.inclusionProofs(
                leafIndices: positions, leafHashes: body.readings.map(MerkleTree.leafHash))
        } catch {
            throw StoreError(.notFound, "block \(height): \(error)")
        }
    }

    /// Serves a fetch from the committed state: authorizes it (`LedgerState.authorize`), then
    /// answers with the readings the grant covers, each with its inclusion path and its block's
    /// certified header, or with the aggregates, or with the refusal. The manager then signs
    /// `response.accessLog(requester:)` as an access-log transaction.
    /// - Parameters:
    ///   - fetch: the researcher's signed request.
    ///   - now: the manager's clock, ms.
    /// - Throws: `StoreError` when the store cannot be read (a refusal is a response, not an error).
    public func serve(_ fetch: SignedFetchRequest, now: UInt64) throws(StoreError) -> FetchResponse {
        func response(_ content: FetchResponse.Content) -> FetchResponse {
            FetchResponse(
                grant: fetch.request.grant, fetch: fetch.id, servedAt: now, height: state.height, content: content)
        }
        let plan: ServingPlan
        switch state.authorize(fetch, now: now) {
        case .failure(let refusal): return response(.refused(refusal))
        case .success(let value): plan = value
        }
        switch plan.grant.scope.mode {
        case .aggregates(let k):
            // Aggregates count each record of a covered kind, so a reading need not be all of them.
            let readings = try readings(
                ofPatients: plan.patients, kinds: plan.kinds, everyRecord: false, from: plan.from, to: plan.to)
            let (rows, suppressed) = AggregateRow.aggregate(
                readings.map { ($0.patient ?? "", $0.reading) }, kinds: plan.kinds, k: k)
            return response(.aggregates(rows, suppressed: suppressed))
        case .readings:
            var readings = try readings(
                ofPatients: plan.patients, kinds: plan.kinds, from: plan.from, to: plan.to, after: plan.after,
                limit: plan.limit + 1)
            var next: ReadingPosition?
            if readings.count > plan.limit {
                readings.removeLast(readings.count - plan.limit)
                next = readings.last.map { ReadingPosition(height: $0.height, position: $0.position) }
            }
            var served: [ServedReading] = []
            var headers: [CertifiedHeader] = []
            var index = 0
            while index < readings.count {
                let height = readings[index].height
                var end = index
                while end < readings.count, readings[end].height == height { end += 1 }
                let group = readings[index..<end]
                let paths = try inclusionPaths(height: height, positions: group.map(\.position))
                for (stored, path) in zip(group, paths) {
                    served.append(
                        ServedReading(
                            position: ReadingPosition(height: stored.height, position: stored.position),
                            bytes: stored.bytes, patient: stored.patient ?? "", path: path))
                }
                headers.append(try certifiedHeader(at: height))
                index = end
            }
            return response(.readings(served, headers: headers, next: next))
        }
    }
}
