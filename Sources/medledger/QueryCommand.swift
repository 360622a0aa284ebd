import ArgumentParser
import Foundation
import MedLedgerCore
import MedLedgerStore

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query", abstract: "Read committed data from a store.", subcommands: [Readings.self])

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, csv, fhir
    }

    struct Readings: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print committed readings, optionally each with its inclusion proof.",
            discussion: """
                Times are ms since the Unix epoch or ISO 8601 (2026-11-25T10:00:00Z). With --proof, each reading
                carries its block's header, commit certificate and Merkle inclusion path: 'medledger verify-proof'
                checks such output against the channel's genesis alone. --format fhir writes a FHIR R4 Bundle of
                Observation resources (LOINC codes, UCUM units, the pseudonymous patient as subject).
                """)

        @Option(help: "The SQLite store.")
        var db: String
        @Option(help: "Only this device's readings.")
        var device: String?
        @Option(help: "Only readings of this pseudonymous patient.")
        var patient: String?
        @Option(help: "Only readings with a record of this LOINC code.")
        var code: String?
        @Option(help: "Only readings at or after this device time.")
        var from: String?
        @Option(help: "Only readings at or before this device time.")
        var to: String?
        @Option(help: "json, csv or fhir.")
        var format: Format = .json
        @Flag(help: "Add each reading's inclusion proof (json only).")
        var proof = false

        func validate() throws {
            if proof, format != .json { throw ValidationError("--proof goes with --format json") }
            _ = try from.map(Self.time)
            _ = try to.map(Self.time)
        }

        static func time(_ text: String) throws -> UInt64 {
            if let ms = UInt64(text) { return ms }
            let formatter = ISO8601DateFormatter()
            guard let date = formatter.date(from: text) else {
                throw ValidationError("'\(text)' is neither ms since the epoch nor an ISO 8601 time")
            }
            return UInt64(max(0, date.timeIntervalSince1970 * 1000))
        }

        func run() throws {
            let store: LedgerStore
            do {
                store = try LedgerStore(path: db)
            } catch {
                throw ToolError("\(db): \(error)")
            }
            let query = ReadingQuery(
                device: device, patient: patient, code: code, from: try from.map(Self.time), to: try to.map(Self.time))
            let readings = try store.readings(matching: query)
            let exported = readings.map {
                ExportedReading(
                    height: $0.height, position: $0.position, device: $0.device, seq: $0.seq, time: $0.time,
                    patient: $0.patient, bytes: $0.bytes, reading: $0.reading)
            }
            switch format {
            case .csv:
                print(ReadingOutput.csv(exported))
            case .fhir:
                print(
                    try JSONOutput.string(
                        FHIRExport.bundle(exported, channel: store.genesis.channel, kinds: store.state.kinds)))
            case .json:
                var items: [[String: Any]] = []
                for stored in readings {
                    var item = ReadingJSON.object(stored.reading)
                    item["height"] = stored.height
                    item["position"] = stored.position
                    item["patient"] = stored.patient ?? NSNull()
                    item["cose"] = Hex.encode(stored.bytes)
                    if proof {
                        item["proof"] = ProofJSON.object(
                            try store.proof(height: stored.height, position: stored.position))
                    }
                    items.append(item)
                }
                print(try JSONOutput.string(["channel": store.genesis.channel, "readings": items]))
            }
        }
    }
}

/// The JSON form of a reading's proof.
enum ProofJSON {
    static func object(_ proof: ReadingProof) -> [String: Any] {
        [
            "height": proof.header.height,
            "headerHash": proof.header.hash.hex,
            "header": Hex.encode(proof.header.encoded()),
            "certificate": Hex.encode(proof.certificate.encoded()),
            "leafIndex": proof.leafIndex,
            "treeSize": proof.header.readingCount,
            "path": proof.path.map(\.hex),
        ]
    }
}

struct VerifyProofCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-proof",
        abstract: "Check readings printed by 'query readings --proof' against the channel's genesis alone.",
        discussion: """
            For each reading: its header hash, the commit certificate (2f+1 council signatures over the header hash),
            the Merkle inclusion of the reading's exact bytes under the header's readings root, and that the reading
            decodes and names the channel. Exits 1 naming the first reading that fails.
            """)

    @Argument(help: "The JSON output of 'medledger query readings --proof' ('-' for standard input).")
    var file: String
    @Option(help: "The channel's genesis.json.")
    var genesis: String

    func run() throws {
        let genesis = try Files.genesis(genesis)
        let bytes =
            file == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : try Files.read(file, what: "proofs")
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let items = object["readings"] as? [[String: Any]]
        else { throw ToolError("\(file) is not the output of 'medledger query readings --proof'") }
        for (index, item) in items.enumerated() {
            do {
                try Self.check(item, genesis: genesis)
            } catch {
                print("FAIL reading \(index): \(error)")
                throw ExitCode(1)
            }
        }
        print("OK \(items.count) reading(s) proven committed on channel \(genesis.channel)")
    }

    static func check(_ item: [String: Any], genesis: Genesis) throws {
        guard let cose = (item["cose"] as? String).flatMap(Hex.decode), let proof = item["proof"] as? [String: Any],
            let headerBytes = (proof["header"] as? String).flatMap(Hex.decode),
            let certificateBytes = (proof["certificate"] as? String).flatMap(Hex.decode),
            let leafIndex = proof["leafIndex"] as? Int, let path = proof["path"] as? [String]
        else { throw ToolError("it lacks cose, proof.header, proof.certificate, proof.leafIndex or proof.path") }
        let header = try BlockHeader(decoding: headerBytes)
        let certificate = try CommitCertificate(decoding: certificateBytes)
        try certificate.verify(genesis: genesis, header: header)
        let hashes = try path.map { text in
            guard let hash = Hash256(hex: text) else { throw ToolError("path entry '\(text)' is not a hash") }
            return hash
        }
        try MerkleTree.verifyInclusion(
            leafIndex: UInt64(leafIndex), treeSize: UInt64(header.readingCount), leafHash: MerkleTree.leafHash(cose),
            proof: hashes, root: header.readingsRoot)
        let signed = try SignedReading(decoding: cose)
        guard signed.reading.channel == genesis.channel else {
            throw ToolError("the reading is for channel \(signed.reading.channel)")
        }
    }
}
