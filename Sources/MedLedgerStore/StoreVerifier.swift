public import MedLedgerContracts
public import MedLedgerCore

/// One thing `verify` found wrong in a store.
public struct VerifyProblem: Hashable, Sendable, CustomStringConvertible {
    /// The height it concerns, when it concerns one.
    public var height: UInt64?
    /// What is wrong.
    public var message: String

    /// `height H: message`.
    public var description: String { height.map { "height \($0): \(message)" } ?? message }
}

/// What `verify` found.
public struct VerifyReport: Hashable, Sendable {
    /// The channel id.
    public var channel: String = ""
    /// The blocks checked.
    public var blocks: UInt64 = 0
    /// The readings checked (signature, rules, Merkle root, index row).
    public var readings: Int = 0
    /// The transactions checked.
    public var transactions: Int = 0
    /// The header hash of the last good block.
    public var headHash: Hash256?
    /// Everything found wrong; empty when the store is intact.
    public var problems: [VerifyProblem] = []

    /// Whether nothing was found wrong.
    public var isIntact: Bool { problems.isEmpty }
}

/// Re-checks a store from its genesis: every header link, Merkle root, certificate and reading
/// signature, and that the state tables and indexes are exactly what the blocks imply.
public enum StoreVerifier {
    /// Verifies the store at a path.
    /// - Parameters:
    ///   - path: the SQLite file.
    ///   - verifier: how signatures are checked.
    ///   - contracts: how access contracts are run to re-decide every access request (the ledger's
    ///     WebAssembly runner by default).
    /// - Returns: the report (problems are in it; nothing is thrown for them).
    /// - Throws: `StoreError` only when the file cannot be read as a store at all.
    public static func verify(
        path: String, verifier: some SignatureVerifier = ParallelSignatureVerifier(),
        contracts: any ContractRunner = WasmContractRunner()
    ) throws(StoreError) -> VerifyReport {
        let db = try SQLiteConnection(path: path)
        // One read transaction: every table is read from one snapshot, so a node that commits
        // blocks while it is verified (a live replica) cannot make its tables seem to disagree.
        try db.execute("BEGIN")
        defer { try? db.execute("COMMIT") }
        guard try db.userVersion >= 1 else { throw StoreError(.notAStore, "\(path) is not a MedLedger store") }
        guard let genesisBytes = try db.first("SELECT value FROM meta WHERE key = 'genesis'", [], { $0.blob(0) }) else {
            throw StoreError(.notAStore, "\(path) holds no genesis")
        }
        var report = VerifyReport()
        let genesis: Genesis
        do {
            genesis = try Genesis(decoding: genesisBytes)
        } catch {
            report.problems.append(VerifyProblem(height: nil, message: "the genesis is invalid: \(error)"))
            return report
        }
        report.channel = genesis.channel
        var state = LedgerState(genesis: genesis)
        var expectedReadings: [ReadingKey: ExpectedReading] = [:]
        var expectedAssignments: Set<Assignment> = []
        var openAssignment: [String: Assignment] = [:]
        var expectedTransactions: [String] = []
        var expectedHeight: UInt64 = 1
        var chainBroken = false
        var expectedAccess = AccessExpectation()

        try db.query("SELECT height, hash, header, body, certificate FROM blocks ORDER BY height") {
            row throws(StoreError) in
            guard !chainBroken else { return }
            let height = row.uint(0)
            func fail(_ message: String) {
                report.problems.append(VerifyProblem(height: height, message: message))
                chainBroken = true
            }
            guard height == expectedHeight else {
                return fail("the chain has no block at height \(expectedHeight)")
            }
            expectedHeight += 1
            let header: BlockHeader
            let body: BlockBody
            let certificate: CommitCertificate
            do {
                header = try BlockHeader(decoding: row.blob(2))
                body = try BlockBody(compressed: row.blob(3), parameters: genesis.block)
                certificate = try CommitCertificate(decoding: row.blob(4))
            } catch {
                return fail("\(error)")
            }
            guard header.hash.bytes == row.blob(1) else { return fail("the stored hash is not the header's hash") }
            let checked: CheckedBlock
            do {
                checked = try state.check(Block(header: header, body: body), verifier: verifier, contracts: contracts)
                try certificate.verify(genesis: genesis, header: header)
            } catch let violation as BlockRuleViolation {
                return fail("\(violation.rule)\(violation.index.map { " (item \($0))" } ?? ""): \(violation.message)")
            } catch {
                return fail("certificate: \(error)")
            }
            for (id, record) in checked.devices where state.devices[id]?.patient != record.patient {
                if var open = openAssignment.removeValue(forKey: id) {
                    expectedAssignments.remove(open)
                    open.toHeight = height
                    expectedAssignments.insert(open)
                }
                if let patient = record.patient {
                    let assignment = Assignment(patient: patient, device: id, fromHeight: height, toHeight: nil)
                    openAssignment[id] = assignment
                    expectedAssignments.insert(assignment)
                }
            }
            expectedAccess.record(checked, before: state.access)
            state.apply(checked)
            for (pos, signed) in checked.readings.enumerated() {
                let reading = signed.reading
                expectedReadings[ReadingKey(device: reading.device, seq: reading.seq)] = ExpectedReading(
                    height: height, pos: pos, time: reading.time, kinds: LedgerStore.kindsetKey(reading.records))
            }
            for (pos, signed) in checked.transactions.enumerated() {
                let tx = signed.transaction
                expectedTransactions.append(
                    "\(height)|\(pos)|\(tx.submitter)|\(tx.seq)|\(tx.body.typeName)|\(tx.body.device)")
            }
            report.blocks = height
            report.readings += checked.readings.count
            report.transactions += checked.transactions.count
            report.headHash = checked.headerHash
        }

        // The index of readings must hold exactly one row per committed reading, as the blocks say.
        try db.query(
            """
            SELECT d.id, r.seq, r.height, r.pos, r.time, k.codes FROM readings r
            LEFT JOIN devices d ON d.num = r.device LEFT JOIN kindsets k ON k.num = r.kinds
            """
        ) { row throws(StoreError) in
            let key = ReadingKey(device: row.text(0) ?? "?", seq: row.uint(1))
            let found = ExpectedReading(
                height: row.uint(2), pos: Int(row.int(3)), time: row.uint(4),
                kinds: row.text(5) ?? "?")
            guard let expected = expectedReadings.removeValue(forKey: key) else {
                report.problems.append(
                    VerifyProblem(
                        height: found.height,
                        message: "index row for \(key.device) seq \(key.seq) names no committed reading"))
                return
            }
            if expected != found {
                report.problems.append(
                    VerifyProblem(
                        height: expected.height,
                        message:
                            "index row for \(key.device) seq \(key.seq) says height \(found.height) pos \(found.pos) "
                            + "time \(found.time) kinds \(found.kinds); the block says height \(expected.height) "
                            + "pos \(expected.pos) time \(expected.time) kinds \(expected.kinds)"))
            }
        }
        for (key, expected) in expectedReadings.sorted(by: { $0.value.height < $1.value.height }).prefix(20) {
            report.problems.append(
                VerifyProblem(height: expected.height, message: "reading \(key.device) seq \(key.seq) has no index row")
            )
        }

        try compareState(db, state, &report)
        if try db.userVersion >= 2 { try expectedAccess.compare(db, state, &report) }
        var storedAssignments: Set<Assignment> = []
        try db.query(
            "SELECT a.patient, d.id, a.from_height, a.to_height FROM assignments a LEFT JOIN devices d ON d.num = a.device"
        ) { row throws(StoreError) in
            storedAssignments.insert(
                Assignment(
                    patient: row.text(0) ?? "?", device: row.text(1) ?? "?", fromHeight: row.uint(2),
                    toHeight: row.isNull(3) ? nil : row.uint(3)))
        }
        for assignment in storedAssignments.symmetricDifference(expectedAssignments) {
            let stored = storedAssignments.contains(assignment)
            report.problems.append(
                VerifyProblem(
                    height: assignment.fromHeight,
                    message: "assignment of \(assignment.device) to \(assignment.patient) "
                        + (stored ? "is stored but not in the blocks" : "is in the blocks but not stored")))
        }
        let storedTransactions = try db.rows(
            "SELECT height, pos, submitter, seq, type, device FROM transactions ORDER BY height, pos"
        ) { row in
            "\(row.int(0))|\(row.int(1))|\(row.text(2) ?? "")|\(row.int(3))|\(row.text(4) ?? "")|\(row.text(5) ?? "")"
        }
        if storedTransactions != expectedTransactions {
            let index =
                zip(storedTransactions, expectedTransactions).enumerated().first { $0.element.0 != $0.element.1 }?
                .offset
                ?? min(storedTransactions.count, expectedTransactions.count)
            let height = (index < expectedTransactions.count ? expectedTransactions[index] : storedTransactions[index])
                .split(separator: "|").first.flatMap { UInt64($0) }
            report.problems.append(
                VerifyProblem(height: height, message: "the transaction index differs from the blocks"))
        }
        return report
    }

    private static func compareState(_ db: SQLiteConnection, _ state: LedgerState, _ report: inout VerifyReport)
        throws(StoreError)
    {
        var stored: [String: DeviceRecord] = [:]
        try db.query(
            "SELECT id, alg, key, patient, revoked, registered_at, replay_highest, replay_bits FROM devices"
        ) { row throws(StoreError) in
            let id = row.text(0) ?? "?"
            guard let alg = SignatureAlgorithm(coseIdentifier: row.int(1)),
                let key = try? PublicKey(algorithm: alg, rawBytes: row.blob(2)),
                let window = ReplayWindow(highest: row.uint(6), words: LedgerStore.words(row.blob(7)))
            else {
                report.problems.append(
                    VerifyProblem(height: nil, message: "device \(id): stored key or window is invalid"))
                return
            }
            stored[id] = DeviceRecord(
                id: id, key: key, patient: row.text(3), revoked: row.int(4) != 0, registeredAt: row.uint(5),
                replay: window)
        }
        for id in Set(stored.keys).union(state.devices.keys).sorted() where stored[id] != state.devices[id] {
            report.problems.append(
                VerifyProblem(
                    height: state.devices[id]?.registeredAt,
                    message: "device \(id): the stored registry row differs from what the blocks imply"))
        }
        var submitters: [String: ReplayWindow] = [:]
        try db.query("SELECT id, replay_highest, replay_bits FROM submitters") { row throws(StoreError) in
            submitters[row.text(0) ?? "?"] = ReplayWindow(
                highest: row.uint(1), words: LedgerStore.words(row.blob(2)))
        }
        if submitters != state.submitters {
            report.problems.append(
                VerifyProblem(height: nil, message: "the submitters' replay windows differ from what the blocks imply"))
        }
    }

    private struct ReadingKey: Hashable {
        var device: String
        var seq: UInt64
    }

    private struct ExpectedReading: Hashable {
        var height: UInt64
        var pos: Int
        var time: UInt64
        var kinds: String
    }

    private struct Assignment: Hashable {
        var patient: String
        var device: String
        var fromHeight: UInt64
        var toHeight: UInt64?
    }
}
