import MedLedgerCore
import MedLedgerTestSupport
import Testing

@Suite("Blocks and the ledger state")
struct LedgerStateTests {
    let channel = TestChannel()

    /// Block 1 registers three devices; block 2 carries readings from them.
    func chain() throws -> (LedgerState, [Block]) {
        var state = LedgerState(genesis: channel.genesis)
        let keys = (0..<3).map { TestChannel.deviceKey($0) }
        let block1 = channel.block(
            on: state,
            transactions: keys.enumerated().map { index, key in
                channel.transaction(
                    seq: UInt64(index + 1),
                    .registerDevice(device: "bp-\(index)", key: key.publicKey, patient: "p-\(index % 2)"))
            })
        state = try state.applying(block1)
        let readings = (1...5).flatMap { seq in
            keys.enumerated().map { channel.reading(device: "bp-\($0.offset)", key: $0.element, seq: UInt64(seq)) }
        }
        let block2 = channel.block(on: state, readings: readings)
        state = try state.applying(block2)
        return (state, [block1, block2])
    }

    @Test func applyingIsDeterministic() throws {
        let (state, blocks) = try chain()
        var again = LedgerState(genesis: channel.genesis)
        for block in blocks { again = try again.applying(block, verifier: SequentialSignatureVerifier()) }
        #expect(again == state)
        #expect(state.height == 2)
        #expect(state.devices.count == 3)
        #expect(state.devices["bp-1"]?.replay.highest == 5)
        #expect(state.devices["bp-1"]?.patient == "p-1")
    }

    @Test func blocksRoundTripThroughTheirEncodings() throws {
        let (_, blocks) = try chain()
        for block in blocks {
            let header = try BlockHeader(decoding: block.header.encoded())
            #expect(header == block.header)
            #expect(header.hash == block.header.hash)
            let body = try BlockBody(compressed: block.body.compressed(), parameters: channel.genesis.block)
            #expect(body == block.body)
        }
        let genesis = try Genesis(decoding: channel.genesis.encoded())
        #expect(genesis == channel.genesis)
    }

    @Test func certificatesNeedAQuorumOfDistinctValidators() throws {
        let (_, blocks) = try chain()
        let header = blocks[1].header
        let good = channel.certificate(for: header)
        try good.verify(genesis: channel.genesis, header: header)
        let decoded = try CommitCertificate(decoding: good.encoded())
        #expect(decoded == good)
        var short = good
        short.signatures.removeLast()
        #expect(throws: LedgerFormatError.self) { try short.verify(genesis: channel.genesis, header: header) }
        var repeated = short
        repeated.signatures.append(short.signatures[0])
        #expect(throws: LedgerFormatError.self) { try repeated.verify(genesis: channel.genesis, header: header) }
        var forged = good
        forged.signatures[0].signature[0] ^= 1
        #expect(throws: LedgerFormatError.self) { try forged.verify(genesis: channel.genesis, header: header) }
        #expect(throws: LedgerFormatError.self) { try good.verify(genesis: channel.genesis, header: blocks[0].header) }
        // Only a member's first entry counts: a bad first entry is not rescued by a good second one.
        var padded = good
        padded.signatures.insert(ValidatorSignature(validator: 0, signature: [UInt8](repeating: 0, count: 64)), at: 0)
        #expect(throws: LedgerFormatError.self) { try padded.verify(genesis: channel.genesis, header: header) }
    }

    @Test func votesSignDifferentBytesPerChannelHeightRoundAndStep() {
        let hash = Hash256.sha256([1, 2, 3])
        let base = voteSigningBytes(channel: "a", height: 1, round: 0, step: .precommit, blockHash: hash)
        #expect(base != voteSigningBytes(channel: "b", height: 1, round: 0, step: .precommit, blockHash: hash))
        #expect(base != voteSigningBytes(channel: "a", height: 2, round: 0, step: .precommit, blockHash: hash))
        #expect(base != voteSigningBytes(channel: "a", height: 1, round: 1, step: .precommit, blockHash: hash))
        #expect(base != voteSigningBytes(channel: "a", height: 1, round: 0, step: .prevote, blockHash: hash))
        #expect(base != voteSigningBytes(channel: "a", height: 1, round: 0, step: .precommit, blockHash: nil))
    }

    func rule(_ mutate: (inout Block) -> Void) throws -> String? {
        let (state, _) = try chain()
        var block = channel.block(
            on: state, readings: [channel.reading(device: "bp-0", key: TestChannel.deviceKey(0), seq: 6)])
        mutate(&block)
        do {
            _ = try state.applying(block)
            return nil
        } catch {
            return error.rule
        }
    }

    @Test func eachHeaderAndBodyRuleIsNamed() throws {
        #expect(try rule { _ in } == nil)
        #expect(try rule { $0.header.channel = "other" } == "header.channel")
        #expect(try rule { $0.header.height += 1 } == "header.height")
        #expect(try rule { $0.header.previousHash = .zero } == "header.previous-hash")
        #expect(try rule { $0.header.time = 0 } == "header.time")
        #expect(try rule { $0.header.proposer = "mallory" } == "header.proposer")
        #expect(try rule { $0.header.councilHash = .zero } == "header.council-hash")
        #expect(try rule { $0.header.readingCount = 2 } == "header.counts")
        #expect(try rule { $0.header.readingsRoot = .zero } == "body.readings-root")
        #expect(try rule { $0.header.transactionsRoot = .zero } == "body.transactions-root")
        #expect(
            try rule { block in
                block.body.readings[0][block.body.readings[0].count - 1] ^= 1
                block.header.readingsRoot = block.body.readingsRoot
            } == "reading.bad-signature")
        #expect(
            try rule { block in
                block.body.readings.append(block.body.readings[0])
                block.header.readingCount = 2
                block.header.readingsRoot = block.body.readingsRoot
            } == "reading.replayed")
    }

    @Test func aProposalMoreThanTheSkewAheadOfTheValidatorsClockIsNotTimely() throws {
        let (state, _) = try chain()
        let skew = state.genesis.skewMs
        let time = state.time + 10 * skew
        let block = channel.block(
            on: state, readings: [channel.reading(device: "bp-0", key: TestChannel.deviceKey(0), seq: 6)], time: time)
        try state.checkTimely(block.header, now: time)
        try state.checkTimely(block.header, now: time - skew)
        #expect(throws: BlockRuleViolation.self) { try state.checkTimely(block.header, now: time - skew - 1) }
        do {
            try state.checkTimely(block.header, now: state.time)
            Issue.record("a block far ahead of the clock passed")
        } catch {
            #expect(error.rule == "header.time-ahead")
        }
        // A decided block is applied whatever the replica's clock: timeliness is not a rule of `check`.
        #expect(throws: Never.self) { try state.applying(block) }
    }

    @Test func transactionRules() throws {
        let (state, _) = try chain()
        let key = TestChannel.deviceKey(50)
        func txRule(_ transactions: [SignedTransaction]) -> String? {
            do {
                _ = try state.applying(channel.block(on: state, transactions: transactions))
                return nil
            } catch {
                return error.rule
            }
        }
        #expect(
            txRule([channel.transaction(seq: 10, .registerDevice(device: "new-1", key: key.publicKey, patient: nil))])
                == nil)
        #expect(
            txRule([channel.transaction(seq: 2, .registerDevice(device: "new-1", key: key.publicKey, patient: nil))])
                == "transaction.replayed")
        #expect(
            txRule([channel.transaction(seq: 10, .registerDevice(device: "bp-0", key: key.publicKey, patient: nil))])
                == "transaction.device-exists")
        #expect(
            txRule([channel.transaction(seq: 10, .assignDevice(device: "nope", patient: "p-1"))])
                == "transaction.unknown-device")
        #expect(
            txRule([
                channel.transaction(seq: 10, .revokeDevice(device: "bp-0")),
                channel.transaction(seq: 11, .assignDevice(device: "bp-0", patient: "p-9")),
            ]) == "transaction.revoked-device")
        let stranger = try SignedTransaction(
            signing: Transaction(
                channel: channel.genesis.channel, submitter: "registrar-1", seq: 10, time: 0,
                body: .revokeDevice(device: "bp-0")),
            with: TestChannel.deviceKey(77))
        #expect(txRule([stranger]) == "transaction.bad-signature")
        let outsider = try SignedTransaction(
            signing: Transaction(
                channel: channel.genesis.channel, submitter: "admin-9", seq: 1, time: 0,
                body: .revokeDevice(device: "bp-0")),
            with: TestChannel.deviceKey(77))
        #expect(txRule([outsider]) == "transaction.unknown-submitter")
    }

    @Test func aRevokedDevicesReadingsAreRefusedFromTheNextBlock() throws {
        var (state, _) = try chain()
        state = try state.applying(
            channel.block(on: state, transactions: [channel.transaction(seq: 4, .revokeDevice(device: "bp-2"))]))
        let block = channel.block(
            on: state, readings: [channel.reading(device: "bp-2", key: TestChannel.deviceKey(2), seq: 9)])
        #expect(throws: BlockRuleViolation.self) { try state.applying(block) }
    }

    @Test func genesisRulesAreChecked() {
        var genesis = channel.genesis
        genesis.council.removeLast()
        #expect(throws: LedgerFormatError.self) { try genesis.validate() }
        genesis = channel.genesis
        genesis.channel = "Bad_Channel"
        #expect(throws: LedgerFormatError.self) { try genesis.validate() }
        genesis = channel.genesis
        genesis.managers.append(genesis.managers[0])
        #expect(throws: LedgerFormatError.self) { try genesis.validate() }
    }
}
