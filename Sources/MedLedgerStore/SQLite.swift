internal import CSQLite

/// An error from SQLite, with its result code and message.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Hashable, Sendable {
        /// SQLite returned an error (its code is in `sqliteCode`).
        case sqlite
        /// The file is not a MedLedger store, or is of a newer schema.
        case notAStore
        /// The store holds something that contradicts the ledger's rules.
        case corrupt
        /// A block does not extend the store's chain, or breaks a rule.
        case rejected
        /// What was asked for is not in the store.
        case notFound
    }
    /// What kind of failure.
    public var code: Code
    /// SQLite's result code, when SQLite failed.
    public var sqliteCode: Int32?
    /// What is wrong, for a person.
    public var message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String, sqliteCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.sqliteCode = sqliteCode
    }

    /// The message, with SQLite's code when there is one.
    public var description: String {
        sqliteCode.map { "\(message) (SQLite code \($0))" } ?? message
    }
}

/// A value bound to or read from a statement.
enum SQLiteValue: Sendable, Hashable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null
}

/// One connection to an SQLite database file. Not thread-safe: one owner uses it at a time
/// (the store serializes access).
final class SQLiteConnection {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    let path: String

    /// Opens (or creates) a database.
    init(path: String, readOnly: Bool = false) throws(StoreError) {
        self.path = path
        let flags =
            readOnly
            ? SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            handle = nil
            throw StoreError(.sqlite, "cannot open \(path): \(message)", sqliteCode: rc)
        }
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, 10_000)
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    private func error(_ rc: Int32, _ what: String) -> StoreError {
        StoreError(.sqlite, "\(what): \(String(cString: sqlite3_errmsg(handle)))", sqliteCode: rc)
    }

    /// Runs SQL text of one or more statements without results.
    func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(message)
            throw StoreError(.sqlite, "\(text) in: \(sql.prefix(80))", sqliteCode: rc)
        }
    }

    private func prepared(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let statement = statements[sql] {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            return statement
        }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc, "cannot prepare '\(sql)'") }
        statements[sql] = statement
        return statement
    }

    private func bind(_ statement: OpaquePointer, _ values: [SQLiteValue]) throws(StoreError) {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .integer(let v): rc = sqlite3_bind_int64(statement, index, v)
            case .real(let v): rc = sqlite3_bind_double(statement, index, v)
            case .text(let v): rc = sqlite3_bind_text(statement, index, v, -1, SQLiteConnection.transient)
            case .blob(let v):
                rc = v.withUnsafeBytes { raw in
                    // A zero-length blob must not be bound as NULL: give SQLite a valid pointer.
                    sqlite3_bind_blob(
                        statement, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(v.count),
                        SQLiteConnection.transient)
                }
            case .null: rc = sqlite3_bind_null(statement, index)
            }
            guard rc == SQLITE_OK else { throw error(rc, "cannot bind parameter \(index)") }
        }
    }

    /// SQLITE_TRANSIENT: SQLite copies the bound bytes.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    /// Runs one statement that returns no rows.
    func run(_ sql: String, _ values: [SQLiteValue] = []) throws(StoreError) {
        let statement = try prepared(sql)
        try bind(statement, values)
        let rc = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw error(rc, "cannot run '\(sql.prefix(80))'") }
    }

    /// Runs a query and hands each row to `body`.
    func query(_ sql: String, _ values: [SQLiteValue] = [], _ body: (Row) throws(StoreError) -> Void) throws(StoreError)
    {
        let statement = try prepared(sql)
        defer { sqlite3_reset(statement) }
        try bind(statement, values)
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { throw error(rc, "cannot query '\(sql.prefix(80))'") }
            try body(Row(statement: statement))
        }
    }

    /// The rows of a query, each mapped by `transform`.
    func rows<T>(_ sql: String, _ values: [SQLiteValue] = [], _ transform: (Row) throws(StoreError) -> T)
        throws(StoreError) -> [T]
    {
        var out: [T] = []
        try query(sql, values) { row throws(StoreError) in out.append(try transform(row)) }
        return out
    }

    /// The first row of a query, mapped, or nil.
    func first<T>(_ sql: String, _ values: [SQLiteValue] = [], _ transform: (Row) throws(StoreError) -> T)
        throws(StoreError) -> T?
    {
        var out: T?
        try query(sql, values) { row throws(StoreError) in
            if out == nil { out = try transform(row) }
        }
        return out
    }

    /// Runs `body` in an IMMEDIATE transaction: committed if it returns, rolled back if it throws.
    func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// The schema version (PRAGMA user_version).
    var userVersion: Int64 {
        get throws(StoreError) { try first("PRAGMA user_version") { $0.int(0) } ?? 0 }
    }

    /// A row of a query result, valid only inside the query's callback.
    struct Row {
        let statement: OpaquePointer

        func int(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
        /// An unsigned column (heights, seqs, times: the store writes them all below 2^63). A negative
        /// value, which only a tampered file holds, reads as one of 2^63 or more, which no decoder
        /// or rule accepts and no stored block matches: it is reported, never a trap.
        func uint(_ column: Int32) -> UInt64 { UInt64(bitPattern: sqlite3_column_int64(statement, column)) }
        func double(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }
        func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }
        func text(_ column: Int32) -> String? {
            guard let pointer = sqlite3_column_text(statement, column) else { return nil }
            return String(cString: pointer)
        }
        func value(_ column: Int32) -> SQLiteValue {
            switch sqlite3_column_type(statement, column) {
            case SQLITE_INTEGER: .integer(int(column))
            case SQLITE_FLOAT: .real(double(column))
            case SQLITE_TEXT: text(column).map { .text($0) } ?? .null
            case SQLITE_BLOB: .blob(blob(column))
            default: .null
            }
        }
        func blob(_ column: Int32) -> [UInt8] {
            let count = Int(sqlite3_column_bytes(statement, column))
            guard count > 0, let pointer = sqlite3_column_blob(statement, column) else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        }
    }
}
