import Foundation
public import MedLedgerCore
public import MedLedgerStore

/// The contracts built by scripts/build-contracts.sh and committed in contracts/build.
public enum ShippedContracts {
    /// The repository's root.
    public static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
    }

    /// contracts/build.
    public static var directory: String { repositoryRoot + "/contracts/build" }

    /// A module's bytes: `consent-study`, `aggregate`, `clinician`, `test-loop-forever`, ...
    /// - Parameter name: the module's name without `.wasm`.
    public static func module(_ name: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(name).wasm") else {
            throw FixtureError("no contract module \(directory)/\(name).wasm (run scripts/build-contracts.sh)")
        }
        return Array(data)
    }
}

/// A failure of a test fixture.
public struct FixtureError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// Makes one.
    public init(_ description: String) { self.description = description }
}

/// A channel with patients, their devices, a researcher and a clinician, on which tests commit
/// consents, contracts, access requests and readings block by block (optionally into a store).
public struct AccessFixture {
    /// The channel.
    public let channel: TestChannel
    /// The runner every block is checked with.
    public let runner: any ContractRunner
    /// The state after the last block.
    public private(set) var state: LedgerState
    /// The store the blocks are also appended to, if any.
    public let store: LedgerStore?
    /// The blocks committed, in order.
    public private(set) var blocks: [Block] = []
    /// The patients (`patient-0`, ...), each with one device `dev-<n>`.
    public let patients: [String]
    /// The researcher `researcher-1` and clinician `clinician-1`, with their keys.
    public let researcherKey = TestChannel.key(seed: 31)
    /// The clinician's key.
    public let clinicianKey = TestChannel.key(seed: 32)
    private var seqs: [String: UInt64] = [:]
    private var readingSeqs: [Int: UInt64] = [:]

    /// The researcher's id.
    public static let researcher = "researcher-1"
    /// The clinician's id.
    public static let clinician = "clinician-1"

    /// Makes the fixture and commits block 1: the devices, the researcher and the clinician.
    /// - Parameters:
    ///   - channel: the channel.
    ///   - patients: how many patients (each with one device).
    ///   - runner: how contracts run.
    ///   - store: a store to append every block to as well.
    public init(
        channel: TestChannel = TestChannel(), patients: Int = 8, runner: any ContractRunner, store: LedgerStore? = nil
    ) throws {
        self.channel = channel
        self.runner = runner
        self.store = store
        state = LedgerState(genesis: channel.genesis)
        self.patients = (0..<patients).map { "patient-\($0)" }
        var transactions: [SignedTransaction] = []
        for index in 0..<patients {
            transactions.append(
                registrar(
                    .registerDevice(
                        device: "dev-\(index)", key: TestChannel.deviceKey(index).publicKey,
                        patient: "patient-\(index)")))
        }
        transactions.append(
            registrar(
                .registerProfessional(
                    id: Self.researcher, role: .researcher, key: researcherKey.publicKey, organisation: "Uni Lab")))
        transactions.append(
            registrar(
                .registerProfessional(
                    id: Self.clinician, role: .clinician, key: clinicianKey.publicKey, organisation: nil)))
        try commit(transactions)
    }

    /// The next seq of a submitter.
    public mutating func nextSeq(_ submitter: String) -> UInt64 {
        let seq = (seqs[submitter] ?? 0) + 1
        seqs[submitter] = seq
        return seq
    }

    /// A registrar transaction with the next seq.
    public mutating func registrar(_ body: TransactionBody) -> SignedTransaction {
        signed(body, by: "registrar-1", key: channel.registrarKey)
    }

    /// A transaction signed by any submitter, with its next seq.
    public mutating func signed(_ body: TransactionBody, by submitter: String, key: PrivateKey) -> SignedTransaction {
        let seq = nextSeq(submitter)
        return try! SignedTransaction(
            signing: Transaction(
                channel: channel.genesis.channel, submitter: submitter, seq: seq, time: state.time, body: body),
            with: key)
    }

    /// An access request by the researcher (or, with `by: clinician`, the clinician).
    public mutating func request(_ request: AccessRequest, by requester: String = researcher) -> SignedTransaction {
        signed(
            .accessRequest(request), by: requester,
            key: requester == Self.clinician ? clinicianKey : researcherKey)
    }

    /// A reading of a patient's device, at a time, of blood pressure (or the given records).
    public mutating func reading(patient index: Int, time: UInt64, records: [ReadingRecord]? = nil) -> SignedReading {
        let seq = (readingSeqs[index] ?? 0) + 1
        readingSeqs[index] = seq
        let reading = Reading(
            channel: channel.genesis.channel, device: "dev-\(index)", seq: seq, time: time,
            records: records ?? [
                ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(110 + Int64(index))),
                ReadingRecord(code: "8462-4", unit: "mm[Hg]", value: .integer(70 + Int64(index))),
            ])
        return try! SignedReading(signing: reading, with: TestChannel.deviceKey(index))
    }

    /// Commits a block of transactions and readings, at a time (default: 1 s after the last block).
    /// - Returns: the checked block.
    @discardableResult
    public mutating func commit(
        _ transactions: [SignedTransaction], readings: [SignedReading] = [], time: UInt64? = nil
    ) throws -> CheckedBlock {
        let block = channel.block(on: state, readings: readings, transactions: transactions, time: time)
        let checked = try state.check(block, verifier: SequentialSignatureVerifier(), contracts: runner)
        if let store {
            try store.append(checked, certificate: channel.certificate(for: block.header))
        }
        state.apply(checked)
        blocks.append(block)
        return checked
    }

    /// Deploys a contract and returns its id.
    public mutating func deploy(_ name: String, module: [UInt8], parameters: [String: Int64] = [:]) throws
        -> Hash256
    {
        let deployment = ContractDeployment(name: name, module: module, parameters: parameters)
        try commit([registrar(.deployContract(deployment))])
        return deployment.id
    }

    /// Records consents of patients (by index) to a study.
    public mutating func consent(_ indices: [Int], to study: String) throws {
        try commit(indices.map { registrar(.consent(patient: patients[$0], study: study)) })
    }

    /// Commits one access request and returns the decision on it.
    public mutating func decide(_ request: AccessRequest, by requester: String = researcher) throws -> AccessDecision {
        let signed = self.request(request, by: requester)
        let checked = try commit([signed])
        guard let decision = checked.access.decisions.first, decision.id == signed.id else {
            throw FixtureError("the block recorded no decision for the request")
        }
        return decision
    }
}
