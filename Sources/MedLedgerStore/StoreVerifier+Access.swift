import MedLedgerCore

/// What the access tables must hold, rebuilt from the blocks as `verify` replays them.
struct AccessExpectation {
    private var consents: [String: [SQLiteValue]] = [:]
    private var openConsents: [String: String] = [:]
    private var treatments: [String: [SQLiteValue]] = [:]
    private var openTreatments: [String: String] = [:]
    private var requests: [String: [SQLiteValue]] = [:]
    private var logs: [String: [SQLiteValue]] = [:]

    private static func key(_ values: [SQLiteValue]) -> String { AccessRows.text(values) }

    /// Records what a checked block changes, given the access state before it.
    mutating func record(_ checked: CheckedBlock, before: AccessState) {
        let height = checked.block.header.height
        let access = checked.access
        let consentEvents = AccessRows.consentEvents(before: before, access)
        for (study, patient) in consentEvents.closed {
            let pair = Self.key([.text(study), .text(patient)])
            if let key = openConsents.removeValue(forKey: pair) { consents[key]?[3] = AccessRows.integer(height) }
        }
        for (study, patient) in consentEvents.opened {
            let row: [SQLiteValue] = [.text(study), .text(patient), AccessRows.integer(height), .null]
            let key = Self.key(Array(row.prefix(3)))
            consents[key] = row
            openConsents[Self.key([.text(study), .text(patient)])] = key
        }
        let treatmentEvents = AccessRows.treatmentEvents(before: before, access)
        for treatment in treatmentEvents.closed {
            let pair = Self.key([.text(treatment.clinician), .text(treatment.patient)])
            if let key = openTreatments.removeValue(forKey: pair) {
                treatments[key]?[3] = AccessRows.integer(height)
            }
        }
        for treatment in treatmentEvents.opened {
            let row: [SQLiteValue] = [
                .text(treatment.clinician), .text(treatment.patient), AccessRows.integer(height), .null,
            ]
            let key = Self.key(Array(row.prefix(3)))
            treatments[key] = row
            openTreatments[Self.key([.text(treatment.clinician), .text(treatment.patient)])] = key
        }
        for decision in access.decisions {
            requests[Self.key([.blob(decision.id.bytes)])] = AccessRows.request(decision, revokedAt: nil)
        }
        for (id, grant) in access.grants where before.grants[id] != nil {
            requests[Self.key([.blob(id.bytes)])]?[17] = AccessRows.optional(grant.revokedAt)
        }
        for (position, signed) in checked.transactions.enumerated() {
            guard case .accessLog(let entry) = signed.transaction.body else { continue }
            let row = AccessRows.log(height: height, position: position, manager: signed.transaction.submitter, entry)
            logs[Self.key(Array(row.prefix(2)))] = row
        }
    }

    /// Compares the access tables with what the blocks imply; the final state gives the tables that
    /// hold no history (professionals, contracts).
    func compare(_ db: SQLiteConnection, _ state: LedgerState, _ report: inout VerifyReport) throws(StoreError) {
        func rows(_ list: [[SQLiteValue]], keyColumns: Int) -> [String: [SQLiteValue]] {
            Dictionary(
                list.map { (Self.key(Array($0.prefix(keyColumns))), $0) }, uniquingKeysWith: { first, _ in first })
        }
        let professionals = rows(state.access.professionals.values.map(AccessRows.professional), keyColumns: 1)
        let contracts = rows(state.access.contracts.values.map(AccessRows.contract), keyColumns: 1)
        let tables: [(String, String, [String: [SQLiteValue]], Int, Int)] = [
            ("professionals", AccessRows.professionals, professionals, 1, 5),
            ("consents", AccessRows.consents, consents, 3, 2),
            ("treatments", AccessRows.treatments, treatments, 3, 2),
            ("contracts", AccessRows.contracts, contracts, 1, 5),
            ("access_requests", AccessRows.requests, requests, 1, 1),
            ("access_log", AccessRows.log, logs, 2, 0),
        ]
        for (table, columns, expected, keyColumns, heightColumn) in tables {
            let count = Int32(columns.split(separator: ",").count)
            var stored: [String: [SQLiteValue]] = [:]
            try db.query("SELECT \(columns) FROM \(table)") { row throws(StoreError) in
                let values = (0..<count).map { row.value($0) }
                stored[Self.key(Array(values.prefix(keyColumns)))] = values
            }
            func height(_ values: [SQLiteValue]) -> UInt64? {
                if case .integer(let value) = values[heightColumn] { return UInt64(clamping: value) }
                return nil
            }
            var problems: [VerifyProblem] = []
            for (key, values) in stored where expected[key] == nil {
                problems.append(
                    VerifyProblem(height: height(values), message: "\(table): a row is stored that no block implies"))
            }
            for (key, values) in expected {
                guard let found = stored[key] else {
                    problems.append(
                        VerifyProblem(height: height(values), message: "\(table): a row the blocks imply is missing"))
                    continue
                }
                if AccessRows.text(found) != AccessRows.text(values) {
                    problems.append(
                        VerifyProblem(
                            height: height(values), message: "\(table): a row differs from what the blocks imply"))
                }
            }
            report.problems += problems.sorted { ($0.height ?? 0, $0.message) < ($1.height ?? 0, $1.message) }
        }
    }
}
