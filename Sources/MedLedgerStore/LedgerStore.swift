public import MedLedgerContracts
public import MedLedgerCore

/// A committed reading as the store holds it.
public struct StoredReading: Hashable, Sendable {
    /// The height of its block.
    public var height: UInt64
    /// Its position among the block's readings (its Merkle leaf index).
    public var position: Int
    /// The device id.
    public var device: String
    /// The device's sequence number.
    public var seq: UInt64
    /// The device's time, ms.
    public var time: UInt64
    /// The patient the device was assigned to when the block was committed.
    public var patient: String?
    /// The exact signed bytes.
    public var bytes: [UInt8]
    /// The decoded reading.
    public var reading: Reading
}

/// What `readings(matching:)` selects; every field set narrows the result.
public struct ReadingQuery: Hashable, Sendable {
    /// Only this device's readings.
    public var device: String?
    /// Only readings committed while their device was assigned to this patient.
    public var patient: String?
    /// Only readings with a record of this LOINC code.
    public var code: String?
    /// Only readings whose device time is at or after this, ms.
    public var from: UInt64?
    /// Only readings whose device time is at or before this, ms.
    public var to: UInt64?

    /// Makes a query.
    public init(
        device: String? = nil, patient: String? = nil, code: String? = nil, from: UInt64? = nil, to: UInt64? = nil
    ) {
        self.device = device
        self.patient = patient
        self.code = code
        self.from = from
        self.to = to
    }
}

/// A reading's proof of inclusion: enough, with the commit certificate and the genesis, to check
/// that the council committed exactly these bytes.
public struct ReadingProof: Hashable, Sendable {
    /// The block's header.
    public var header: BlockHeader
    /// The block's commit certificate.
    public var certificate: CommitCertificate
    /// The reading's leaf index.
    public var leafIndex: Int
    /// The RFC 9162 inclusion proof of the reading's bytes under `header.readingsRoot`.
    public var path: [Hash256]
}

/// The ledger's SQLite store: blocks with their certificates, the ledger state, and the indexes
/// of readings. Appending a block is one SQLite transaction, so a crash leaves the store at the
/// previous height or the new one. Not thread-safe: its owner serializes calls.
public final class LedgerStore {
    /// The schema version this code writes.
    public static let schemaVersion: Int64 = 2

    let db: SQLiteConnection
    /// The channel's genesis.
    public let genesis: Genesis
    /// The state after the last stored block.
    public private(set) var state: LedgerState
    /// How block bodies are compressed.
    public var compressionLevel: Int32 = 6
    /// How the access contracts of appended blocks are run.
    public let contractRunner: any ContractRunner
    private var bodyCache: (height: UInt64, body: BlockBody)?

    /// Opens a store, creating it with a genesis if the file is new.
    /// - Parameters:
    ///   - path: the SQLite file.
    ///   - genesis: the genesis to create the store with; when the store exists it must match.
    ///   - contracts: how the access contracts of appended blocks are run (every replica must decide
    ///     alike: the default is the ledger's WebAssembly runner with the standard limits).
    /// - Throws: `StoreError` when the file cannot be opened, is not a store, or has another genesis.
    public init(path: String, genesis: Genesis? = nil, contracts: any ContractRunner = WasmContractRunner())
        throws(StoreError)
    {
        contractRunner = contracts
        db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON")
        try Self.migrate(db)
        let stored = try db.first("SELECT value FROM meta WHERE key = 'genesis'") { $0.blob(0) }
        let loaded: Genesis
        if let stored {
            do {
                loaded = try Genesis(decoding: stored)
            } catch {
                throw StoreError(.corrupt, "the stored genesis is invalid: \(error)")
            }
            if let genesis, genesis != loaded {
                throw StoreError(.rejected, "\(path) holds channel '\(loaded.channel)' with another genesis")
            }
        } else {
            guard let genesis else { throw StoreError(.notAStore, "\(path) holds no ledger and no genesis was given") }
            do {
                try genesis.validate()
            } catch {
                throw StoreError(.rejected, "invalid genesis: \(error)")
            }
            try db.run("INSERT INTO meta(key, value) VALUES ('genesis', ?)", [.blob(genesis.encoded())])
            loaded = genesis
        }
        self.genesis = loaded
        state = LedgerState(genesis: loaded)
        state = try loadState()
    }

    static func migrate(_ db: SQLiteConnection) throws(StoreError) {
        let version = try db.userVersion
        guard version <= schemaVersion else {
            throw StoreError(
                .notAStore, "the store's schema is version \(version); this build reads up to \(schemaVersion)")
        }
        let migrations: [String] = [
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE blocks (
                height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL,
                body BLOB NOT NULL, certificate BLOB NOT NULL);
            CREATE TABLE devices (
                num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, alg INTEGER NOT NULL, key BLOB NOT NULL,
                patient TEXT, revoked INTEGER NOT NULL, registered_at INTEGER NOT NULL,
                replay_highest INTEGER NOT NULL, replay_bits BLOB NOT NULL);
            CREATE TABLE submitters (
                id TEXT PRIMARY KEY, replay_highest INTEGER NOT NULL, replay_bits BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE kindsets (num INTEGER PRIMARY KEY, codes TEXT NOT NULL UNIQUE);
            CREATE TABLE readings (
                device INTEGER NOT NULL, seq INTEGER NOT NULL, height INTEGER NOT NULL, pos INTEGER NOT NULL,
                time INTEGER NOT NULL, kinds INTEGER NOT NULL, PRIMARY KEY (device, seq)) WITHOUT ROWID;
            CREATE TABLE device_kindsets (device INTEGER NOT NULL, kinds INTEGER NOT NULL,
                PRIMARY KEY (device, kinds)) WITHOUT ROWID;
            CREATE TABLE assignments (
                patient TEXT NOT NULL, device INTEGER NOT NULL, from_height INTEGER NOT NULL, to_height INTEGER,
                PRIMARY KEY (patient, device, from_height)) WITHOUT ROWID;
            CREATE TABLE transactions (
                height INTEGER NOT NULL, pos INTEGER NOT NULL, submitter TEXT NOT NULL, seq INTEGER NOT NULL,
                type TEXT NOT NULL, device TEXT NOT NULL, PRIMARY KEY (height, pos)) WITHOUT ROWID;
            """,
            accessSchema,
        ]
        for (index, sql) in migrations.enumerated() where Int64(index) >= version {
            try db.transaction { () throws(StoreError) in
                try db.execute(sql)
                try db.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }

    // MARK: - State

    private func loadState() throws(StoreError) -> LedgerState {
        guard
            let (height, hashBytes, headerBytes) = try db.first(
                "SELECT height, hash, header FROM blocks ORDER BY height DESC LIMIT 1", [],
                { ($0.int(0), $0.blob(1), $0.blob(2)) })
        else { return LedgerState(genesis: genesis) }
        guard let hash = Hash256(bytes: hashBytes) else { throw StoreError(.corrupt, "block \(height): bad hash") }
        let header: BlockHeader
        do {
            header = try BlockHeader(decoding: headerBytes)
        } catch {
            throw StoreError(.corrupt, "block \(height): \(error)")
        }
        guard header.height == UInt64(bitPattern: height) else {
            throw StoreError(.corrupt, "the block stored at height \(height) is block \(header.height)")
        }
        return LedgerState(
            genesis: genesis, height: header.height, headerHash: hash, time: header.time,
            devices: try loadDevices().mapValues(\.record), submitters: try loadSubmitters(),
            access: try loadAccessState())
    }

    struct StoredDevice {
        var num: Int64
        var record: DeviceRecord
    }

    func loadDevices() throws(StoreError) -> [String: StoredDevice] {
        var out: [String: StoredDevice] = [:]
        try db.query(
            "SELECT num, id, alg, key, patient, revoked, registered_at, replay_highest, replay_bits FROM devices"
        ) { row throws(StoreError) in
            let id = row.text(1) ?? ""
            guard let alg = SignatureAlgorithm(coseIdentifier: row.int(2)),
                let key = try? PublicKey(algorithm: alg, rawBytes: row.blob(3)),
                let window = ReplayWindow(highest: row.uint(7), words: Self.words(row.blob(8)))
            else { throw StoreError(.corrupt, "device '\(id)': the stored key or replay window is invalid") }
            out[id] = StoredDevice(
                num: row.int(0),
                record: DeviceRecord(
                    id: id, key: key, patient: row.text(4), revoked: row.int(5) != 0,
                    registeredAt: row.uint(6), replay: window))
        }
        return out
    }

    func loadSubmitters() throws(StoreError) -> [String: ReplayWindow] {
        var out: [String: ReplayWindow] = [:]
        try db.query("SELECT id, replay_highest, replay_bits FROM submitters") { row throws(StoreError) in
            let id = row.text(0) ?? ""
            guard let window = ReplayWindow(highest: row.uint(1), words: Self.words(row.blob(2))) else {
                throw StoreError(.corrupt, "submitter '\(id)': the stored replay window is invalid")
            }
            out[id] = window
        }
        return out
    }

    static func words(_ blob: [UInt8]) -> [UInt64] {
        stride(from: 0, to: blob.count - 7, by: 8).map { start in
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(blob[start + $1]) << (8 * UInt64($1)) }
        }
    }

    static func blob(_ words: [UInt64]) -> [UInt8] {
        words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * UInt64($0))) } }
    }

    /// The height of the last stored block; 0 when none is.
    public var height: UInt64 { state.height }

    // MARK: - Appending

    /// Checks a block and its certificate against the store's state and appends it.
    /// - Parameters:
    ///   - block: the next block.
    ///   - certificate: its commit certificate.
    ///   - verifier: how the readings' signatures are checked.
    /// - Returns: the checked block.
    /// - Throws: `StoreError.Code.rejected` naming the rule broken, or an SQLite failure.
    @discardableResult
    public func append(
        _ block: Block, certificate: CommitCertificate,
        verifier: some SignatureVerifier = ParallelSignatureVerifier()
    ) throws(StoreError) -> CheckedBlock {
        let checked: CheckedBlock
        do {
            checked = try state.check(block, verifier: verifier, contracts: contractRunner)
        } catch {
            throw StoreError(.rejected, "\(error)")
        }
        try append(checked, certificate: certificate)
        return checked
    }

    /// Appends a block already checked against the store's state, with its certificate. When the
    /// block decided access requests, they must have been decided by a runner of the same runtime as
    /// the store's (`contractRunner`): pass it to `LedgerState.check`.
    /// - Throws: `StoreError` when the certificate is invalid, the decisions came from another
    ///   contract runtime, or SQLite fails.
    public func append(_ checked: CheckedBlock, certificate: CommitCertificate) throws(StoreError) {
        let header = checked.block.header
        guard checked.access.decisions.isEmpty || checked.contractRuntime == contractRunner.runtime else {
            throw StoreError(
                .rejected,
                "block \(header.height) was checked with contract runtime '\(checked.contractRuntime)'; this store "
                    + "decides with '\(contractRunner.runtime)'")
        }
        guard header.height == state.height + 1, header.previousHash == state.headerHash else {
            throw StoreError(.rejected, "block \(header.height) does not extend height \(state.height)")
        }
        do {
            try certificate.verify(genesis: genesis, header: header)
        } catch {
            throw StoreError(.rejected, "block \(header.height): \(error)")
        }
        let compressed = checked.block.body.compressed(level: compressionLevel)
        try db.transaction { () throws(StoreError) in
            try writeBlock(checked, compressed: compressed, certificate: certificate)
        }
        state.apply(checked)
        bodyCache = (header.height, checked.block.body)
    }

    private var kindsetCache: [String: Int64] = [:]

    private func writeBlock(_ checked: CheckedBlock, compressed: [UInt8], certificate: CommitCertificate)
        throws(StoreError)
    {
        let header = checked.block.header
        let height = Int64(truncatingIfNeeded: header.height)
        try db.run(
            "INSERT INTO blocks(height, hash, header, body, certificate) VALUES (?, ?, ?, ?, ?)",
            [
                .integer(height), .blob(checked.headerHash.bytes), .blob(header.encoded()), .blob(compressed),
                .blob(certificate.encoded()),
            ])
        for (pos, signed) in checked.transactions.enumerated() {
            let tx = signed.transaction
            try db.run(
                "INSERT INTO transactions(height, pos, submitter, seq, type, device) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    .integer(height), .integer(Int64(truncatingIfNeeded: pos)), .text(tx.submitter),
                    .integer(Int64(truncatingIfNeeded: tx.seq)),
                    .text(tx.body.typeName), .text(tx.body.device),
                ])
        }
        try writeAccess(checked)
        for (id, window) in checked.submitters {
            try db.run(
                "INSERT OR REPLACE INTO submitters(id, replay_highest, replay_bits) VALUES (?, ?, ?)",
                [.text(id), .integer(Int64(truncatingIfNeeded: window.highest)), .blob(Self.blob(window.words))])
        }
        var nums: [String: Int64] = [:]
        for (id, record) in checked.devices.sorted(by: { $0.key < $1.key }) {
            let previous = state.devices[id]
            try db.run(
                """
                INSERT INTO devices(id, alg, key, patient, revoked, registered_at, replay_highest, replay_bits)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET patient = excluded.patient, revoked = excluded.revoked,
                    replay_highest = excluded.replay_highest, replay_bits = excluded.replay_bits
                """,
                [
                    .text(id), .integer(record.key.algorithm.coseIdentifier), .blob(record.key.rawBytes),
                    record.patient.map { .text($0) } ?? .null, .integer(record.revoked ? 1 : 0),
                    .integer(Int64(truncatingIfNeeded: record.registeredAt)),
                    .integer(Int64(truncatingIfNeeded: record.replay.highest)),
                    .blob(Self.blob(record.replay.words)),
                ])
            let num = try deviceNumber(id)
            nums[id] = num
            if previous?.patient != record.patient {
                try db.run(
                    "UPDATE assignments SET to_height = ? WHERE device = ? AND to_height IS NULL",
                    [.integer(height), .integer(num)])
                if let patient = record.patient {
                    try db.run(
                        "INSERT INTO assignments(patient, device, from_height, to_height) VALUES (?, ?, ?, NULL)",
                        [.text(patient), .integer(num), .integer(height)])
                }
            }
        }
        for (pos, signed) in checked.readings.enumerated() {
            let reading = signed.reading
            let kinds = try kindsetNumber(reading.records)
            guard let num = nums[reading.device] else {
                throw StoreError(.corrupt, "reading of unknown device '\(reading.device)'")
            }
            try db.run(
                "INSERT INTO readings(device, seq, height, pos, time, kinds) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    .integer(num), .integer(Int64(truncatingIfNeeded: reading.seq)), .integer(height),
                    .integer(Int64(truncatingIfNeeded: pos)),
                    .integer(Int64(truncatingIfNeeded: reading.time)), .integer(kinds),
                ])
            try db.run(
                "INSERT OR IGNORE INTO device_kindsets(device, kinds) VALUES (?, ?)", [.integer(num), .integer(kinds)])
        }
    }

    private func deviceNumber(_ id: String) throws(StoreError) -> Int64 {
        guard let num = try db.first("SELECT num FROM devices WHERE id = ?", [.text(id)], { $0.int(0) }) else {
            throw StoreError(.notFound, "device '\(id)' is not in the store")
        }
        return num
    }

    static func kindsetKey(_ records: [ReadingRecord]) -> String {
        Set(records.map(\.code)).sorted().joined(separator: ",")
    }

    private func kindsetNumber(_ records: [ReadingRecord]) throws(StoreError) -> Int64 {
        let key = Self.kindsetKey(records)
        if let num = kindsetCache[key] { return num }
        try db.run("INSERT OR IGNORE INTO kindsets(codes) VALUES (?)", [.text(key)])
        guard let num = try db.first("SELECT num FROM kindsets WHERE codes = ?", [.text(key)], { $0.int(0) }) else {
            throw StoreError(.corrupt, "kind set '\(key)' vanished")
        }
        kindsetCache[key] = num
        return num
    }

    // MARK: - Reading

    /// The header, compressed body and certificate stored at a height.
    /// - Throws: `StoreError.Code.notFound` when there is no such block.
    public func storedBlock(at height: UInt64) throws(StoreError) -> (
        header: BlockHeader, compressedBody: [UInt8], certificate: CommitCertificate
    ) {
        guard
            let (headerBytes, body, certBytes) = try db.first(
                "SELECT header, body, certificate FROM blocks WHERE height = ?",
                [.integer(Int64(truncatingIfNeeded: height))],
                { ($0.blob(0), $0.blob(1), $0.blob(2)) })
        else { throw StoreError(.notFound, "no block at height \(height)") }
        do {
            return (try BlockHeader(decoding: headerBytes), body, try CommitCertificate(decoding: certBytes))
        } catch {
            throw StoreError(.corrupt, "block \(height): \(error)")
        }
    }

    /// The block at a height, its body decompressed.
    /// - Throws: `StoreError` when there is no such block or it doesn't decode.
    public func block(at height: UInt64) throws(StoreError) -> Block {
        let stored = try storedBlock(at: height)
        return Block(header: stored.header, body: try body(at: height, compressed: stored.compressedBody))
    }

    func body(at height: UInt64, compressed: [UInt8]? = nil) throws(StoreError) -> BlockBody {
        if let cache = bodyCache, cache.height == height { return cache.body }
        let bytes: [UInt8]
        if let compressed {
            bytes = compressed
        } else {
            guard
                let stored = try db.first(
                    "SELECT body FROM blocks WHERE height = ?", [.integer(Int64(truncatingIfNeeded: height))],
                    { $0.blob(0) })
            else { throw StoreError(.notFound, "no block at height \(height)") }
            bytes = stored
        }
        do {
            let body = try BlockBody(compressed: bytes, parameters: genesis.block)
            bodyCache = (height, body)
            return body
        } catch {
            throw StoreError(.corrupt, "block \(height): \(error)")
        }
    }

    /// The committed readings a query selects, in order of device, then sequence number.
    /// - Parameter query: the selection.
    /// - Throws: `StoreError` when the store cannot be read.
    public func readings(matching query: ReadingQuery) throws(StoreError) -> [StoredReading] {
        var conditions: [String] = []
        var values: [SQLiteValue] = []
        if let device = query.device {
            conditions.append("d.id = ?")
            values.append(.text(device))
        }
        if let patient = query.patient {
            conditions.append(
                """
                EXISTS (SELECT 1 FROM assignments a WHERE a.patient = ? AND a.device = r.device
                    AND a.from_height <= r.height AND (a.to_height IS NULL OR r.height < a.to_height))
                """)
            values.append(.text(patient))
        }
        if let code = query.code {
            let matching = try db.rows("SELECT num, codes FROM kindsets") { row in (row.int(0), row.text(1) ?? "") }
                .filter { $0.1.split(separator: ",").contains(Substring(code)) }.map { String($0.0) }
            conditions.append("r.kinds IN (\(matching.isEmpty ? "-1" : matching.joined(separator: ",")))")
        }
        if let from = query.from {
            conditions.append("r.time >= ?")
            values.append(.integer(Int64(truncatingIfNeeded: from)))
        }
        if let to = query.to {
            conditions.append("r.time <= ?")
            values.append(.integer(Int64(truncatingIfNeeded: to)))
        }
        let sql = """
            SELECT r.height, r.pos, d.id, r.seq, r.time,
                (SELECT a.patient FROM assignments a WHERE a.device = r.device AND a.from_height <= r.height
                    AND (a.to_height IS NULL OR r.height < a.to_height))
            FROM readings r JOIN devices d ON d.num = r.device
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY r.device, r.seq
            """
        let rows = try db.rows(sql, values) { row in
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

    /// Where a device's reading with a seq was committed, and its exact bytes (how a manager
    /// tells a retransmission of a committed reading from a replay).
    /// - Parameters:
    ///   - device: the device id.
    ///   - seq: the reading's seq.
    /// - Returns: nil when no such reading is committed.
    /// - Throws: `StoreError` when the store cannot be read.
    public func committedReading(device: String, seq: UInt64) throws(StoreError) -> (
        height: UInt64, blockHash: Hash256, bytes: [UInt8]
    )? {
        guard
            let (height, pos, hash) = try db.first(
                """
                SELECT r.height, r.pos, b.hash FROM readings r JOIN devices d ON d.num = r.device
                JOIN blocks b ON b.height = r.height WHERE d.id = ? AND r.seq = ?
                """, [.text(device), .integer(Int64(truncatingIfNeeded: seq))],
                { ($0.uint(0), Int($0.int(1)), $0.blob(2)) })
        else { return nil }
        let body = try body(at: height)
        guard body.readings.indices.contains(pos), let blockHash = Hash256(bytes: hash) else {
            throw StoreError(.corrupt, "block \(height) has no reading \(pos), but the index names it")
        }
        return (height, blockHash, body.readings[pos])
    }

    /// Where a submitter's transaction with a seq was committed, and its exact bytes (how a
    /// manager tells a transaction sent again from a replay).
    /// - Returns: nil when no such transaction is committed.
    /// - Throws: `StoreError` when the store cannot be read.
    public func committedTransaction(submitter: String, seq: UInt64) throws(StoreError) -> (
        height: UInt64, blockHash: Hash256, bytes: [UInt8]
    )? {
        guard
            let (height, pos, hash) = try db.first(
                """
                SELECT t.height, t.pos, b.hash FROM transactions t JOIN blocks b ON b.height = t.height
                WHERE t.submitter = ? AND t.seq = ?
                """, [.text(submitter), .integer(Int64(truncatingIfNeeded: seq))],
                { ($0.uint(0), Int($0.int(1)), $0.blob(2)) })
        else { return nil }
        let body = try body(at: height)
        guard body.transactions.indices.contains(pos), let blockHash = Hash256(bytes: hash) else {
            throw StoreError(.corrupt, "block \(height) has no transaction \(pos), but the index names it")
        }
        return (height, blockHash, body.transactions[pos])
    }

    /// The proof that the council committed a stored reading.
    /// - Parameters:
    ///   - height: the reading's block height.
    ///   - position: its index in the block.
    /// - Throws: `StoreError.Code.notFound` when there is no such reading.
    public func proof(height: UInt64, position: Int) throws(StoreError) -> ReadingProof {
        let stored = try storedBlock(at: height)
        let body = try body(at: height, compressed: stored.compressedBody)
        do {
            let path = try MerkleTree.inclusionProof(
                leafIndex: position, leafHashes: body.readings.map(MerkleTree.leafHash))
            return ReadingProof(
                header: stored.header, certificate: stored.certificate, leafIndex: position, path: path)
        } catch {
            throw StoreError(.notFound, "block \(height) has no reading \(position): \(error)")
        }
    }
}
