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
}

/// Holds a benchmark's state between its setup, runs and teardown.
private final class StateBox<Value>: @unchecked Sendable {
    // Benchmark runs setup, the measured closure and teardown one after another, never at once.
    var value: Value?
}
