import FuzzSupport
import MedLedgerCore

/// The channel, and its state at height 1: built once.
private let fixture = IntakeFixture()

/// Writes the seed corpus when `scripts/fuzz.sh` asks for it; else builds the fixture.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    Fuzz.writeSeedsIfAsked(Seeds.intakeInputs)
    _ = fixture.state
    return 0
}

/// Checks every signature, one after another.
private let verifier = SequentialSignatureVerifier()

/// Checks every signature but those of readings verified already, as a manager's verifier does
/// for the readings it verified on arrival (`SignatureVerifier.isKnownValid`); the rules are
/// checked all the same.
private struct KnownReadingsVerifier: SignatureVerifier {
    let known: Set<[UInt8]>

    func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T] { (0..<count).map(transform) }

    func isKnownValid(_ bytes: [UInt8]) -> Bool { known.contains(bytes) }
}

/// One input (`IntakeInput`: two control bytes, then the payload): the payload, validly signed by
/// a device (with the kid and alg the control bytes choose), goes through a manager's intake
/// (with, maybe, a copy and a second reading, and a pending registrar transaction), then
/// `assemble`, the validator's `check`, `applying`, and the committed-block round trip. Anything
/// may be refused; nothing may trap; and every invariant below must hold.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = IntakeInput(Fuzz.bytes(data, size))
    let state = fixture.state
    let signer = fixture.signers[input.signer]

    // The batch a manager receives.
    let first = fixture.sign(
        payload: input.payload, signer: input.signer, keyID: input.keyID, algorithm: input.algorithm)
    let decoded = try? Reading(payload: input.payload)
    let topic = input.otherTopic ? fixture.signers[(input.signer + 2) % fixture.signers.count].id : signer.id
    var batch = [IncomingReading(topicDevice: topic, bytes: first)]
    if input.copy { batch.append(IncomingReading(topicDevice: topic, bytes: first)) }
    if input.second, let second = derived(input, decoded) {
        batch.append(IncomingReading(topicDevice: second.topic, bytes: second.bytes))
    }
    let now = input.clockIsReadingTime ? decoded?.time ?? fixture.now : fixture.now
    let pending: [SignedTransaction] =
        switch input.pending {
        case .none: []
        case .revoke: [fixture.transaction(.revokeDevice(device: signer.id))]
        case .register:
            [
                fixture.transaction(
                    .registerDevice(
                        device: fixture.signers[IntakeFixture.pendingDevice].id,
                        key: fixture.signers[IntakeFixture.pendingDevice].key.publicKey, patient: "patient-p"))
            ]
        case .assign: [fixture.transaction(.assignDevice(device: signer.id, patient: IntakeFixture.otherPatient))]
        }

    // Intake.
    var pool = Mempool(capacity: 16, byteCapacity: 1 << 16)
    let outcomes = state.intake(batch, now: now, pool: &pool, pendingTransactions: pending, verifier: verifier)
    precondition(outcomes.count == batch.count, "intake gives \(outcomes.count) outcomes for \(batch.count) readings")
    var accepted: [SignedReading] = []
    for (index, outcome) in outcomes.enumerated() {
        switch outcome {
        case .accepted(let signed):
            precondition(signed.bytes == batch[index].bytes, "intake accepted other bytes than it was given")
            accepted.append(signed)
        case .pending(let signed):
            precondition(
                accepted.contains { $0.bytes == signed.bytes }, "intake answers pending for bytes it did not accept")
        case .committedOrReplayed(_, let rejection):
            precondition(rejection.reason == .replayed, "committedOrReplayed with reason \(rejection.reason)")
        case .poolFull:
            preconditionFailure("a pool of 16 is full after \(accepted.count) readings")
        case .rejected:
            break
        }
    }
    if input.copy, case .accepted = outcomes[0] {
        guard case .pending = outcomes[1] else {
            preconditionFailure("a copy of an accepted reading is not pending but \(outcomes[1])")
        }
    }
    precondition(pool.count == accepted.count, "the pool holds \(pool.count) readings; \(accepted.count) were accepted")

    // Assembly.
    let reserved = pending.reduce(0) { $0 + $1.bytes.count }
    let readings = pool.batch(fixture.genesis.block, reservedBytes: reserved)
    precondition(readings.map(\.bytes) == accepted.map(\.bytes), "the pool's batch is not what intake accepted")
    let assembly = state.assemble(transactions: pending, readings: readings, time: now, proposer: fixture.manager)
    let block = assembly.block
    let transactionPasses = pending.first.map { state.check($0) == nil } ?? false
    precondition(
        assembly.refusedTransactions.isEmpty == (pending.isEmpty || transactionPasses),
        "assemble refused a transaction that passes on the state, or included one that does not")
    precondition(
        block.body.transactions == (transactionPasses ? pending.map(\.bytes) : []),
        "the block's transactions are not the pending ones that pass")
    let refused = Set(assembly.refusedReadings.map(\.0.bytes))
    let included = readings.map(\.bytes).filter { !refused.contains($0) }
    precondition(
        assembly.refusedReadings.count + block.body.readings.count == readings.count,
        "assemble neither included nor refused some readings")
    precondition(block.body.readings == included, "the block's readings are not the batch minus the refused ones")
    let revokesSigner = input.pending == .revoke && transactionPasses
    for (signed, rejection) in assembly.refusedReadings {
        // Accepted with the same clock on the same state: only the pending revocation may refuse it.
        precondition(
            revokesSigner && signed.keyID == signer.id && rejection.reason == .revokedDevice,
            "assemble refused a reading intake accepted: \(rejection)")
    }

    // The validator's check (every signature), and applying (trusting the signatures checked).
    let checked: CheckedBlock
    do {
        checked = try state.check(block, verifier: verifier)
    } catch {
        preconditionFailure("the validator refuses the block assemble made of accepted readings: \(error)")
    }
    var next = state
    next.apply(checked)
    let applied: LedgerState
    do {
        applied = try state.applying(block, verifier: KnownReadingsVerifier(known: Set(included)))
    } catch {
        preconditionFailure("applying refuses the block check passed: \(error)")
    }
    precondition(applied == next, "applying and check+apply give different states")
    precondition(next.height == 2 && next.headerHash == block.header.hash, "the state is not at the block")
    precondition(checked.readings.map(\.bytes) == included, "the applied block's readings are not the included ones")
    precondition(checked.transactions.map(\.bytes) == block.body.transactions, "the applied transactions differ")

    // What the applied block holds: readings that verify against their devices' keys, and roots.
    for (index, signed) in checked.readings.enumerated() {
        guard let record = next.devices[signed.keyID] else {
            preconditionFailure("an applied reading's device '\(signed.keyID)' is not registered")
        }
        precondition(!record.revoked, "an applied reading's device is revoked")
        precondition(signed.reading.device == signed.keyID, "an applied reading's payload names another device")
        precondition(signed.reading.channel == fixture.genesis.channel, "an applied reading is for another channel")
        precondition(record.replay.contains(signed.reading.seq), "an applied reading's seq is not in its window")
        precondition(checked.patients[index] == record.patient, "an applied reading's patient is not its device's")
        precondition(
            record.key.isValidSignature(signed.message.signature, for: signed.toBeSigned),
            "an applied reading's signature does not verify with its device's key")
        do {
            try signed.message.verify(with: record.key)
        } catch {
            preconditionFailure("an applied reading's COSE message does not verify: \(error)")
        }
    }
    let leaves = block.body.readings.map(MerkleTree.leafHash)
    precondition(MerkleTree.root(leafHashes: leaves) == block.header.readingsRoot, "the readings root is wrong")
    precondition(
        MerkleTree.root(entries: block.body.transactions) == block.header.transactionsRoot,
        "the transactions root is wrong")
    for (index, proof) in MerkleTree.inclusionProofs(leafHashes: leaves).enumerated() {
        do {
            try MerkleTree.verifyInclusion(
                leafIndex: UInt64(index), treeSize: UInt64(leaves.count), leafHash: leaves[index], proof: proof,
                root: block.header.readingsRoot)
        } catch {
            preconditionFailure("reading \(index)'s inclusion proof does not verify: \(error)")
        }
    }

    // The committed block's round trip: certified, encoded, decoded, verified, applied again.
    let body: BlockBody
    do {
        body = try BlockBody(compressed: block.body.compressed(), parameters: fixture.genesis.block)
    } catch {
        preconditionFailure("the block's compressed body does not decode: \(error)")
    }
    precondition(body == block.body, "the compressed body decodes to other readings")
    if !included.isEmpty {
        let committed = CommittedBlock(
            header: block.header, compressedBody: block.body.compressed(),
            certificate: fixture.certificate(for: block.header))
        let received: Block
        do {
            received = try CommittedBlock(decoding: committed.encoded(), parameters: fixture.genesis.block)
                .verifiedBlock(genesis: fixture.genesis)
        } catch {
            preconditionFailure("the committed block does not decode or verify: \(error)")
        }
        precondition(received == block, "the committed block decodes to another block")
        precondition(
            (try? state.applying(received, verifier: KnownReadingsVerifier(known: Set(included)))) == next,
            "the received block applies otherwise")
    }

    // Sent again after the commit, each included reading is a retransmission or a replay.
    var later = Mempool(capacity: 16, byteCapacity: 1 << 16)
    let again = next.intake(
        checked.readings.map { IncomingReading(topicDevice: $0.keyID, bytes: $0.bytes) }, now: now, pool: &later,
        verifier: verifier)
    for outcome in again {
        guard case .committedOrReplayed(_, let rejection) = outcome, rejection.reason == .replayed else {
            preconditionFailure("a committed reading sent again is not refused as replayed but \(outcome)")
        }
    }
    return 0
}

/// The second reading: derived from the first as the input says (nil when the payload does not
/// decode and the derivation needs it).
private func derived(_ input: IntakeInput, _ decoded: Reading?) -> (topic: String, bytes: [UInt8])? {
    let signer = fixture.signers[input.signer]
    switch input.derivation {
    case .nextSeq, .sameSeq:
        guard var reading = decoded else { return nil }
        if input.derivation == .nextSeq { reading.seq &+= 1 } else { reading.time &+= 1 }
        let bytes = fixture.sign(
            payload: reading.payloadBytes(), signer: input.signer, keyID: input.keyID, algorithm: input.algorithm)
        return (signer.id, bytes)
    case .otherSigner:
        let other = (input.signer + 1) % fixture.signers.count
        let bytes = fixture.sign(payload: input.payload, signer: other, keyID: .own, algorithm: .standard)
        return (fixture.signers[other].id, bytes)
    case .repaired:
        guard var reading = decoded else { return nil }
        reading.channel = fixture.genesis.channel
        reading.device = signer.id
        return (
            signer.id,
            fixture.sign(payload: reading.payloadBytes(), signer: input.signer, keyID: .own, algorithm: .standard)
        )
    }
}

/// The entry point SwiftPM links as `main`: hands over to libFuzzer's driver.
@_cdecl("fuzz_intake_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    Fuzz.run(argc, argv, testOneInput)
}
