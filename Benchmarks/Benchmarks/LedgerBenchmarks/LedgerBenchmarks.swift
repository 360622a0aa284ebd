import Benchmark
import Foundation
import LedgerFixtures
import MedLedgerCore
import MedLedgerStore

/// The metrics every MedLedger benchmark reports.
private let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

/// Inputs built once, shared by the benchmarks.
private struct Inputs: Sendable {
    let fixture: LedgerFixture
    let registered: LedgerState
    let readingBytes: [UInt8]
    let ed25519Message: COSESign1
    let ed25519Key: PublicKey
    let es256Message: COSESign1
    let es256Key: PublicKey
    let block: Block
    let headerBytes: [UInt8]
    let compressedBody: [UInt8]
    let merkleEntries: [[UInt8]]
    let merkleLeafHashes: [Hash256]

    static let shared: Inputs = {
        // Devices 0 (bp-cuff-0001) and 1 (glucometer-0001) sign with different algorithms.
        let fixture = LedgerFixture(deviceCount: 500, algorithm: { $0 == 1 ? .es256 : .ed25519 })
        let registered = fixture.registeredState().state
        let readingBytes = fixture.signedReading(0)
        let ed25519 = try! SignedReading(decoding: readingBytes)
        let es256 = try! SignedReading(decoding: fixture.signedReading(1))
        // One Ed25519 reading per device but device 1, twice: a block of 1,000 Ed25519 readings.
        let indexes = (0..<1002).filter { $0 % 500 != 1 }
        let body = BlockBody(readings: indexes.map(fixture.signedReading), transactions: [])
        let block = fixture.block(extending: registered, body: body)
        let entries = (0..<10_000).map { index in (0..<160).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0) } }
        return Inputs(
            fixture: fixture, registered: registered, readingBytes: readingBytes,
            ed25519Message: ed25519.message, ed25519Key: fixture.devices[0].key.publicKey,
            es256Message: es256.message, es256Key: fixture.devices[1].key.publicKey, block: block,
            headerBytes: block.header.encoded(), compressedBody: block.body.compressed(), merkleEntries: entries,
            merkleLeafHashes: entries.map(MerkleTree.leafHash))
    }()
}

/// A store in a temporary file and a chain of checked blocks to append to it, one a time.
private final class StoreAppendState: @unchecked Sendable {
    // Used only from the benchmark's own thread: setup, then the measured closure, then teardown.
    let directory: URL
    let store: LedgerStore
    var blocks: [(Block, CommitCertificate)]
    var next = 0

    init(blockCount: Int) throws {
        let inputs = Inputs.shared
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("medledger-bench-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try LedgerStore(
            path: directory.appendingPathComponent("ledger.sqlite").path, genesis: inputs.fixture.genesis)
        let registration = inputs.fixture.registrationBlock(on: store.state)
        try store.append(registration, certificate: inputs.fixture.certificate(for: registration.header))
        var state = store.state
        blocks = []
        for index in 0..<blockCount {
            let body = inputs.fixture.readingBody(index * 1000..<(index + 1) * 1000, workers: ProcessorCount.active)
            let block = inputs.fixture.block(extending: state, body: body)
            state = try state.applying(block, verifier: ParallelSignatureVerifier())
            blocks.append((block, inputs.fixture.certificate(for: block.header)))
        }
    }

    func appendNext() throws {
        precondition(next < blocks.count, "the benchmark ran more iterations than blocks were built")
        let (block, certificate) = blocks[next]
        next += 1
        try store.append(block, certificate: certificate)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// A store holding a grant over 500 consenting patients and 3,000 of their readings, and a signed
/// fetch request for one page of 1,000: what a manager serves for one request (docs/CONTRACTS.md).
private final class ServeState: @unchecked Sendable {
    // Used only from the benchmark's own thread: setup, then the measured closure, then teardown.
    let directory: URL
    let store: LedgerStore
    let fetch: SignedFetchRequest
    let now: UInt64

    init() throws {
        let inputs = Inputs.shared
        let fixture = inputs.fixture
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent(
                "medledger-bench-serve-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try LedgerStore(path: directory.appendingPathComponent("ledger.sqlite").path, genesis: fixture.genesis)
        let registration = fixture.registrationBlock(on: store.state)
        try store.append(registration, certificate: fixture.certificate(for: registration.header))

        // The researcher, the consent-study contract and every patient's consent; then the request.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../..")
        let module = Array(try Data(contentsOf: root.appendingPathComponent("contracts/build/consent-study.wasm")))
        let researcherKey = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 7, count: 32))
        let registrar = fixture.genesis.registrars[0].id
        var seq = UInt64(fixture.devices.count)
        func registrarTransaction(_ body: TransactionBody) throws -> [UInt8] {
            seq += 1
            return try SignedTransaction(
                signing: Transaction(
                    channel: fixture.genesis.channel, submitter: registrar, seq: seq,
                    time: LedgerFixture.startTime - 20_000, body: body),
                with: fixture.registrarKey
            ).bytes
        }
        var setUp = [
            try registrarTransaction(
                .registerProfessional(
                    id: "researcher-1", role: .researcher, key: researcherKey.publicKey, organisation: nil)),
            try registrarTransaction(.deployContract(ContractDeployment(name: "study", module: module))),
        ]
        for patient in Set(store.state.devices.values.compactMap(\.patient)).sorted() {
            setUp.append(try registrarTransaction(.consent(patient: patient, study: "bench")))
        }
        let kinds = ["8480-6", "8462-4", "41653-7", "59408-5", "8867-4", "8310-5"]
        let request = try SignedTransaction(
            signing: Transaction(
                channel: fixture.genesis.channel, submitter: "researcher-1", seq: 1,
                time: LedgerFixture.startTime - 10_000,
                body: .accessRequest(
                    AccessRequest(
                        contract: Hash256.sha256(module), kinds: kinds, from: 0, to: .max / 2, purpose: "benchmark",
                        study: "bench"))),
            with: researcherKey)
        for (time, transactions) in [
            (LedgerFixture.startTime - 20_000, setUp), (LedgerFixture.startTime - 10_000, [request.bytes]),
        ] {
            let block = Block(
                extending: store.state, time: time, proposer: fixture.proposer,
                body: BlockBody(readings: [], transactions: transactions))
            try store.append(block, certificate: fixture.certificate(for: block.header))
        }
        guard store.state.access.grants[request.id] != nil else { fatalError("the benchmark's request was denied") }

        // 3,000 readings in three blocks.
        for index in 0..<3 {
            let body = fixture.readingBody(index * 1000..<(index + 1) * 1000, workers: ProcessorCount.active)
            let block = fixture.block(extending: store.state, body: body)
            try store.append(block, certificate: fixture.certificate(for: block.header))
        }
        now = store.state.time + 1000
        fetch = try SignedFetchRequest(
            signing: FetchRequest(
                channel: fixture.genesis.channel, requester: "researcher-1", grant: request.id, time: now,
                nonce: [1, 2, 3], limit: 1000),
            with: researcherKey)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: metrics, timeUnits: .automatic, warmupIterations: 3, maxDuration: .seconds(3), maxIterations: 10_000)

    Benchmark("CBOR decode: signed reading") { benchmark in
        let bytes = Inputs.shared.readingBytes
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try CBOR.decode(bytes, limits: .reading)) }
    }

    Benchmark("SignedReading(decoding:): CBOR + COSE + payload") { benchmark in
        let bytes = Inputs.shared.readingBytes
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try SignedReading(decoding: bytes)) }
    }

    Benchmark("COSE verify: Ed25519 reading") { benchmark in
        let (message, key) = (Inputs.shared.ed25519Message, Inputs.shared.ed25519Key)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try message.verify(with: key) }
    }

    Benchmark("COSE verify: ES256 reading") { benchmark in
        let (message, key) = (Inputs.shared.es256Message, Inputs.shared.es256Key)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try message.verify(with: key) }
    }

    Benchmark("Merkle root: 10,000 leaves (leaf hashes + tree)") { benchmark in
        let entries = Inputs.shared.merkleEntries
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(MerkleTree.root(entries: entries)) }
    }

    Benchmark("Merkle inclusion proof: leaf 6,789 of 10,000") { benchmark in
        let leaves = Inputs.shared.merkleLeafHashes
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try MerkleTree.inclusionProof(leafIndex: 6_789, leafHashes: leaves))
        }
    }

    for level: Int32 in [3, 6] {
        Benchmark("Block encode + compress: 1,000 readings, zstd \(level)") { benchmark in
            let block = Inputs.shared.block
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(block.header.encoded())
                blackHole(block.body.compressed(level: level))
            }
        }
    }

    let verifiers: [(String, any SignatureVerifier)] = [
        ("1 core, SequentialSignatureVerifier", SequentialSignatureVerifier()),
        ("all cores, ParallelSignatureVerifier", ParallelSignatureVerifier()),
    ]
    for (label, verifier) in verifiers {
        Benchmark("Block decode + check: 1,000 Ed25519 readings, \(label)") { benchmark in
            let inputs = Inputs.shared
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let header = try BlockHeader(decoding: inputs.headerBytes)
                let body = try BlockBody(compressed: inputs.compressedBody, parameters: inputs.fixture.genesis.block)
                blackHole(try inputs.registered.check(Block(header: header, body: body), verifier: verifier))
            }
        }
    }

    // Each iteration appends the next block of a prepared chain: check (all cores), certificate,
    // compress (zstd 6) and one SQLite transaction with its fsyncs.
    let appendIterations = 30
    let appendState = StateBox<StoreAppendState>()
    Benchmark(
        "LedgerStore append: block of 1,000 readings (temp SQLite file)",
        configuration: .init(
            warmupIterations: 2, maxDuration: .seconds(30), maxIterations: appendIterations,
            setup: { appendState.value = try StoreAppendState(blockCount: appendIterations + 8) },
            teardown: { appendState.value = nil })
    ) { benchmark in
        guard let state = appendState.value else { fatalError("setup did not run") }
        for _ in benchmark.scaledIterations { try state.appendNext() }
    }

    // What a manager does on its actor for one fetch: authorize on the committed state, read a page
    // of 1,000 covered readings (index, bodies), their batch inclusion paths and certified headers,
    // and encode the response.
    let serveState = StateBox<ServeState>()
    Benchmark(
        "LedgerStore serve + encode: a page of 1,000 readings with proofs (temp SQLite file)",
        configuration: .init(
            warmupIterations: 2, maxDuration: .seconds(10), maxIterations: 200,
            setup: { serveState.value = try ServeState() }, teardown: { serveState.value = nil })
    ) { benchmark in
        guard let state = serveState.value else { fatalError("setup did not run") }
        for _ in benchmark.scaledIterations {
            let response = try state.store.serve(state.fetch, now: state.now)
            guard response.servedCount == 1000 else { fatalError("served \(response.servedCount), not 1,000") }
            blackHole(response.encoded())
        }
    }
}

/// Holds a benchmark's state between its setup, runs and teardown.
private final class StateBox<Value>: @unchecked Sendable {
    // Benchmark runs setup, the measured closure and teardown one after another, never at once.
    var value: Value?
}
