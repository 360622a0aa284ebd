import CBenchSQLite
import Foundation
import LedgerFixtures
import MedLedgerCore
import MedLedgerStore

extension LedgerFigures {
    /// Figure 3: the bytes on disk per stored reading, for a realistic chain.
    static func storageFigure(options: Options) throws -> Figure {
        let fixture = LedgerFixture(deviceCount: options.devices, algorithm: { $0 % 10 == 9 ? .es256 : .ed25519 })
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("medledger-figures-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("ledger.sqlite").path

        print("")
        print("3. Bytes on disk per stored reading")
        print("   building \(options.blocks) blocks x 1000 readings from \(options.devices) devices (10% ES256) ...")
        let clock = ContinuousClock()
        let started = clock.now
        var readingCount = 0
        var signedBytes = 0
        var signTime = Duration.zero
        var appendTime = Duration.zero
        do {
            let store = try LedgerStore(path: path, genesis: fixture.genesis)
            let registration = fixture.registrationBlock(on: store.state)
            try store.append(registration, certificate: fixture.certificate(for: registration.header))
            let workers = ProcessorCount.active
            for index in 0..<options.blocks {
                let signStart = clock.now
                let body = fixture.readingBody(index * 1000..<(index + 1) * 1000, workers: workers)
                let block = fixture.block(extending: store.state, body: body)
                let certificate = fixture.certificate(for: block.header)
                let appendStart = clock.now
                signTime += appendStart - signStart
                try store.append(block, certificate: certificate)
                appendTime += clock.now - appendStart
                readingCount += body.readings.count
                signedBytes += body.payloadByteCount
            }
            // The store closes here: SQLite checkpoints the WAL when its last connection closes.
        }
        print("   built in \(clock.now - started) (signing \(signTime), LedgerStore.append \(appendTime))")

        let database = try BenchDatabase(path: path)
        let checkpoint = try database.rows("PRAGMA wal_checkpoint(TRUNCATE)").first ?? []
        let fileBytes = try fileSize(path)
        let walBytes = (try? fileSize(path + "-wal")) ?? 0
        let pageSize = try database.integer("PRAGMA page_size")
        let pageCount = try database.integer("PRAGMA page_count")
        let freePages = try database.integer("PRAGMA freelist_count")
        let perReading = Double(fileBytes + walBytes) / Double(readingCount)
        print(
            "   checkpoint (TRUNCATE) after close: \(checkpoint.joined(separator: "/")); file \(fileBytes) B, "
                + "WAL \(walBytes) B, \(pageCount) pages of \(pageSize) B, \(freePages) free")
        print(
            "   \(readingCount) readings; signed reading \(String(format: "%.1f", Double(signedBytes) / Double(readingCount))) B raw"
        )

        var details: [String: Double] = [
            "file_bytes": Double(fileBytes), "wal_bytes": Double(walBytes), "readings": Double(readingCount),
            "signed_reading_bytes": Double(signedBytes) / Double(readingCount), "page_size": Double(pageSize),
            "pages": Double(pageCount), "free_pages": Double(freePages),
        ]
        let blobs = try database.rows(
            "SELECT SUM(length(body)), SUM(length(header)), SUM(length(certificate)), SUM(length(hash)) FROM blocks")
        if let row = blobs.first, row.count == 4 {
            let body = Double(row[0]) ?? 0
            print(
                "   blocks table blobs: bodies \(row[0]) B (\(String(format: "%.1f", body / Double(readingCount))) B a reading, "
                    + "zstd level 6), headers \(row[1]) B, certificates \(row[2]) B, hashes \(row[3]) B")
            details["compressed_body_bytes_per_reading"] = body / Double(readingCount)
        }
        do {
            let breakdown = try database.rows(
                """
                SELECT name, COUNT(*), SUM(pgsize), SUM(payload), SUM(unused) FROM dbstat
                GROUP BY name ORDER BY SUM(pgsize) DESC
                """)
            print("   dbstat breakdown (table/index: pages, bytes, payload, unused, bytes a reading):")
            for row in breakdown where row.count == 5 {
                let bytes = Double(row[2]) ?? 0
                let name = row[0].padding(toLength: 34, withPad: " ", startingAt: 0)
                print(
                    "     \(name) \(row[1]) pages, \(row[2]) B, payload \(row[3]) B, unused \(row[4]) B, "
                        + String(format: "%.1f B/reading", bytes / Double(readingCount)))
                details["dbstat_\(row[0])_bytes"] = bytes
            }
        } catch {
            print("   (no dbstat breakdown: \(error))")
        }
        print(String(format: "   %.1f bytes on disk a reading", perReading))
        return Figure(
            name: "bytes on disk per stored reading", value: perReading, unit: "B", target: "<= 160",
            pass: perReading <= 160, details: details)
    }

    static func fileSize(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.size] as? NSNumber)?.intValue ?? 0
    }
}

/// A bare SQLite connection for inspecting a store file after the store closed it.
final class BenchDatabase {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private var handle: OpaquePointer?

    init(path: String) throws {
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else {
            defer { sqlite3_close_v2(handle) }
            throw Failure(description: "cannot open \(path)")
        }
    }

    deinit { sqlite3_close_v2(handle) }

    /// Every row of a statement, each column as text.
    func rows(_ sql: String) throws -> [[String]] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else {
            throw Failure(description: String(cString: sqlite3_errmsg(handle)))
        }
        defer { sqlite3_finalize(statement) }
        var out: [[String]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw Failure(description: String(cString: sqlite3_errmsg(handle))) }
            out.append(
                (0..<sqlite3_column_count(statement)).map { column in
                    sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""
                })
        }
        return out
    }

    /// The first column of the first row, as an integer.
    func integer(_ sql: String) throws -> Int { Int(try rows(sql).first?.first ?? "") ?? 0 }
}
