internal import CFuzzDriver
public import MedLedgerCore

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// What each fuzz target needs besides its decoder: the input as an array, and seed inputs.
public enum Fuzz {
    /// Runs libFuzzer's driver with a target's `LLVMFuzzerTestOneInput`: what each target's
    /// `<module>_main` (the `main` SwiftPM links) does.
    /// - Parameters:
    ///   - argc: the argument count.
    ///   - argv: the arguments.
    ///   - testOneInput: the target's function for one input.
    /// - Returns: the exit status.
    public static func run(
        _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt {
        var count = argc
        var arguments = argv
        return LLVMFuzzerRunDriver(&count, &arguments, testOneInput)
    }

    /// The input libFuzzer hands to `LLVMFuzzerTestOneInput`, as an array.
    /// - Parameters:
    ///   - data: the bytes (nil when `size` is 0).
    ///   - size: their count.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// When the environment names a folder in `MEDLEDGER_FUZZ_SEEDS`, writes the seeds there
    /// as `seed-N` files and exits; `scripts/fuzz.sh` makes each target's corpus this way.
    /// - Parameter seeds: makes the seeds (only called when asked).
    public static func writeSeedsIfAsked(_ seeds: () -> [[UInt8]]) {
        guard let folder = getenv("MEDLEDGER_FUZZ_SEEDS").map({ String(cString: $0) }), !folder.isEmpty else {
            return
        }
        mkdir(folder, 0o755)
        for (index, seed) in seeds().enumerated() {
            let path = "\(folder)/seed-\(index)"
            guard let file = fopen(path, "wb") else {
                let message = Array("cannot write \(path)\n".utf8)
                _ = message.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
                exit(1)
            }
            _ = seed.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
        exit(0)
    }
}

/// Valid inputs for every decoder, so fuzzing starts from deep inside the formats.
public enum Seeds {
    static let channel = "city-hospitals"

    static func key(_ algorithm: SignatureAlgorithm, _ byte: UInt8) -> PrivateKey {
        // Fixed secret bytes make the seeds reproducible; these are valid for both curves.
        try! PrivateKey(algorithm: algorithm, rawBytes: [UInt8](repeating: byte, count: 32))
    }

    static let devices: [(String, PrivateKey, [ReadingRecord])] = [
        (
            "bp-cuff-0042", key(.ed25519, 1),
            [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(128)),
                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(84)),
            ]
        ),
        ("glucometer-0007", key(.es256, 2), [ReadingRecord(code: "41653-7", unit: "mg/dL", value: .integer(104))]),
        ("thermometer-0003", key(.ed25519, 3), [ReadingRecord(code: "8310-5", unit: "Cel", value: .float(36.6))]),
        (
            "pulse-ox-0011", key(.es256, 4),
            [
                ReadingRecord(code: "59408-5", unit: "%", value: .integer(97)),
                ReadingRecord(code: "8867-4", unit: "/min", value: .integer(72)),
            ]
        ),
        ("lab-7", key(.ed25519, 5), [ReadingRecord(code: "15074-8", unit: "mmol/L", value: .float(5.5))]),
        ("ecg.ward_2", key(.ed25519, 6), [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(-1))]),
    ]

    /// Signed readings of several kinds, both algorithms, and one of 16 records.
    public static func readings() -> [[UInt8]] {
        var out: [[UInt8]] = []
        for (index, (device, key, records)) in devices.enumerated() {
            let reading = Reading(
                channel: channel, device: device, seq: UInt64(index * 1000 + 1),
                time: 1_763_000_000_000 + UInt64(index) * 5_000, records: records)
            out.append(try! SignedReading(signing: reading, with: key).bytes)
        }
        let many = Reading(
            channel: "c", device: "d", seq: UInt64.max, time: 0,
            records: (0..<16).map { ReadingRecord(code: "2093-3", unit: "mg/dL", value: .float(Double($0) + 0.25)) })
        out.append(try! SignedReading(signing: many, with: key(.ed25519, 9)).bytes)
        return out
    }

    /// Signed transactions of each type.
    public static func transactions() -> [[UInt8]] {
        let registrar = key(.ed25519, 20)
        let bodies: [TransactionBody] = [
            .registerDevice(device: "bp-cuff-0042", key: key(.ed25519, 1).publicKey, patient: "patient-9f2c"),
            .registerDevice(device: "glucometer-0007", key: key(.es256, 2).publicKey, patient: nil),
            .assignDevice(device: "bp-cuff-0042", patient: "patient-0001"),
            .revokeDevice(device: "glucometer-0007"),
        ]
        return bodies.enumerated().map { index, body in
            let transaction = Transaction(
                channel: channel, submitter: "registrar-st-mary", seq: UInt64(index + 1),
                time: 1_763_000_000_000 + UInt64(index), body: body)
            return try! SignedTransaction(signing: transaction, with: registrar).bytes
        }
    }

    static func header(height: UInt64, body: BlockBody) -> BlockHeader {
        BlockHeader(
            channel: channel, height: height, previousHash: Hash256.sha256([UInt8(truncatingIfNeeded: height)]),
            time: 1_763_000_000_000 + height * 1_000, proposer: "manager-st-mary", readingsRoot: body.readingsRoot,
            transactionsRoot: body.transactionsRoot, councilHash: Hash256.sha256(Array("council".utf8)),
            readingCount: body.readings.count, transactionCount: body.transactions.count)
    }

    static func bodies() -> [BlockBody] {
        [
            BlockBody(readings: [], transactions: []),
            BlockBody(readings: readings(), transactions: []),
            BlockBody(readings: [], transactions: transactions()),
            BlockBody(readings: Array(readings().prefix(2)), transactions: Array(transactions().prefix(1))),
        ]
    }

    /// Encoded block headers.
    public static func headers() -> [[UInt8]] {
        bodies().enumerated().map { header(height: UInt64($0.offset + 1), body: $0.element).encoded() }
    }

    /// Compressed block bodies.
    public static func compressedBodies() -> [[UInt8]] {
        bodies().map { $0.compressed() } + [bodies()[1].compressed(level: 19)]
    }

    /// Encoded commit certificates.
    public static func certificates() -> [[UInt8]] {
        let council = (0..<4).map { key(.ed25519, 40 + UInt8($0)) }
        return bodies().enumerated().map { index, body in
            let signers = (0..<(index % 2 == 0 ? 3 : 4)).map { ($0, council[$0]) }
            return try! CommitCertificate.signing(
                header: header(height: UInt64(index + 1), body: body), round: UInt64(index), keys: signers
            ).encoded()
        }
    }
}
