import MedLedgerCore
import MedLedgerTestSupport
import Testing

@Suite("Committed blocks and sync messages")
struct NodeMessageTests {
    let channel = TestChannel()

    func committed() throws -> (CommittedBlock, Block) {
        let state = LedgerState(genesis: channel.genesis)
        let key = TestChannel.deviceKey(1)
        let block1 = channel.block(
            on: state,
            transactions: [channel.transaction(seq: 1, .registerDevice(device: "d", key: key.publicKey, patient: nil))])
        let block2 = channel.block(
            on: try state.applying(block1), readings: [channel.reading(device: "d", key: key, seq: 1)])
        let committed = CommittedBlock(
            header: block2.header, compressedBody: block2.body.compressed(),
            certificate: channel.certificate(for: block2.header))
        return (committed, block2)
    }

    @Test func aCommittedBlockRoundTripsAndVerifies() throws {
        let (committed, block) = try committed()
        let decoded = try CommittedBlock(decoding: committed.encoded(), parameters: channel.genesis.block)
        #expect(decoded == committed)
        #expect(try decoded.verifiedBlock(genesis: channel.genesis) == block)
    }

    @Test func aCommittedBlockWithAnotherBodyOrAShortCertificateIsRefused() throws {
        let (committed, _) = try committed()
        var otherBody = committed
        otherBody.compressedBody = BlockBody(readings: [], transactions: []).compressed()
        #expect(throws: LedgerFormatError.self) { try otherBody.verifiedBlock(genesis: channel.genesis) }
        var short = committed
        short.certificate.signatures.removeLast(2)
        #expect(throws: LedgerFormatError.self) { try short.verifiedBlock(genesis: channel.genesis) }
        #expect(throws: LedgerFormatError.self) {
            try CommittedBlock(decoding: Array(committed.encoded().dropLast()), parameters: channel.genesis.block)
        }
    }

    @Test func syncMessagesRoundTripAndRefuseNonsense() throws {
        let request = SyncRequest(channel: "c", from: 5, count: 1000)
        #expect(request.count == SyncRequest.maxCount)
        #expect(try SyncRequest(decoding: request.encoded()) == request)
        let zero = CBOR.map([CBORMapEntry(1, "c"), CBORMapEntry(2, 0), CBORMapEntry(3, 1)]).encoded()
        #expect(throws: LedgerFormatError.self) { try SyncRequest(decoding: zero) }
        let (committed, _) = try committed()
        let response = SyncResponse(blocks: [committed.encoded()], height: 9)
        #expect(try SyncResponse(decoding: response.encoded(), parameters: channel.genesis.block) == response)
        #expect(throws: LedgerFormatError.self) {
            try SyncResponse(decoding: CBOR.map([CBORMapEntry(1, 3)]).encoded(), parameters: channel.genesis.block)
        }
    }
}
