internal import MedLedgerCore

/// A node's own durable records beside its ledger: the consensus state it must find again after
/// a restart (its own votes, its lock), and the evidence of equivocation it saw.
///
/// A separate SQLite file (WAL, `synchronous=FULL`), so that a write returns only once it is on
/// disk: a validator writes its state here before it sends the vote the state covers.
public final class NodeJournal {
    private let db: SQLiteConnection

    /// Opens or makes a journal.
    /// - Parameter path: the SQLite file.
    /// - Throws: `StoreError` when it cannot be opened.
    public init(path: String) throws(StoreError) {
        db = try SQLiteConnection(path: path)
        try db.execute(
            """
            PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
            CREATE TABLE IF NOT EXISTS consensus(id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS evidence(
                digest BLOB PRIMARY KEY, height INTEGER NOT NULL, evidence BLOB NOT NULL);
            """)
    }

    /// The last consensus state written, if any.
    /// - Throws: `StoreError` when the journal cannot be read.
    public func consensusState() throws(StoreError) -> [UInt8]? {
        try db.first("SELECT state FROM consensus WHERE id = 1") { $0.blob(0) }
    }

    /// Replaces the consensus state, durably (the call returns once it is synced).
    /// - Parameter state: the encoded state.
    /// - Throws: `StoreError` when it cannot be written.
    public func saveConsensusState(_ state: [UInt8]) throws(StoreError) {
        try db.run("INSERT OR REPLACE INTO consensus(id, state) VALUES (1, ?)", [.blob(state)])
    }

    /// Keeps a piece of evidence (once per key).
    /// - Parameters:
    ///   - evidence: its encoded form.
    ///   - height: the height it is about.
    ///   - key: what makes it one (default: its SHA-256); a node passes the slot it convicts, so
    ///     that evidence of one slot is kept once.
    /// - Returns: whether it was new.
    /// - Throws: `StoreError` when it cannot be written.
    @discardableResult
    public func recordEvidence(_ evidence: [UInt8], height: UInt64, key: [UInt8]? = nil) throws(StoreError) -> Bool {
        let digest = key ?? Hash256.sha256(evidence).bytes
        if try db.first("SELECT 1 FROM evidence WHERE digest = ?", [.blob(digest)], { $0.int(0) }) != nil {
            return false
        }
        try db.run(
            "INSERT INTO evidence(digest, height, evidence) VALUES (?, ?, ?)",
            [.blob(digest), .integer(Int64(truncatingIfNeeded: height)), .blob(evidence)])
        return true
    }

    /// All evidence kept, oldest height first.
    /// - Throws: `StoreError` when the journal cannot be read.
    public func evidence() throws(StoreError) -> [(height: UInt64, evidence: [UInt8])] {
        try db.rows("SELECT height, evidence FROM evidence ORDER BY height, digest") {
            ($0.uint(0), $0.blob(1))
        }
    }
}
