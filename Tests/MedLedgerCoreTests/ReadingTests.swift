import MedLedgerCore
import MedLedgerTestSupport
import Testing

@Suite("Readings: decoding and the protocol's rules")
struct ReadingTests {
    let channel = TestChannel()
    let deviceKey = TestChannel.deviceKey(1)

    /// A state where `bp-1` is registered with `deviceKey`, `old-1` is revoked, and seq 5 of
    /// `bp-1` is committed.
    func state() throws -> LedgerState {
        var state = LedgerState(genesis: channel.genesis)
        let oldKey = TestChannel.deviceKey(2)
        let block1 = channel.block(
            on: state,
            transactions: [
                channel.transaction(seq: 1, .registerDevice(device: "bp-1", key: deviceKey.publicKey, patient: "p-1")),
                channel.transaction(seq: 2, .registerDevice(device: "old-1", key: oldKey.publicKey, patient: nil)),
                channel.transaction(seq: 3, .revokeDevice(device: "old-1")),
            ])
        state = try state.applying(block1)
        let block2 = channel.block(on: state, readings: [channel.reading(device: "bp-1", key: deviceKey, seq: 5)])
        return try state.applying(block2)
    }

    func verdict(_ bytes: [UInt8], topicDevice: String? = "bp-1", now: UInt64? = nil) throws -> RejectionReason? {
        let state = try state()
        let signed: SignedReading
        do {
            signed = try SignedReading(decoding: bytes)
        } catch {
            return error.reason
        }
        return state.check(
            signed, record: state.devices[signed.keyID], topicDevice: topicDevice,
            now: now ?? channel.genesis.createdAt + 100_000
        ) { record in record.key.isValidSignature(signed.message.signature, for: signed.toBeSigned) }?.reason
    }

    func signed(_ reading: Reading, key: PrivateKey? = nil) -> [UInt8] {
        try! SignedReading(signing: reading, with: key ?? deviceKey).bytes
    }

    func reading(
        device: String = "bp-1", seq: UInt64 = 6, time: UInt64 = 1_700_000_001_000, channelID: String? = nil,
        records: [ReadingRecord] = [ReadingRecord(code: "8480-6", unit: "mm[Hg]", value: .integer(120))]
    ) -> Reading {
        Reading(channel: channelID ?? channel.genesis.channel, device: device, seq: seq, time: time, records: records)
    }

    @Test func aGoodReadingIsAccepted() throws {
        #expect(try verdict(signed(reading())) == nil)
    }

    /// Seqs and times are unsigned integers up to 2^63-1 (docs/PROTOCOL.md): a value beyond is
    /// `malformed`, never a trap further on (a seq of 2^63 once stopped every node at the store).
    @Test(arguments: [
        (UInt64(0), false), (1, true), (1 << 31, true), (1 << 53, true), (UInt64(Int64.max), true),
        (UInt64(Int64.max) + 1, false), (UInt64.max, false),
    ])
    func seqsAndTimesOutsideTheirRangeAreMalformed(value: UInt64, inRange: Bool) throws {
        let asSeq = try verdict(signed(reading(seq: value)), now: UInt64(Int64.max))
        let asTime = try verdict(signed(reading(time: value)), now: UInt64(Int64.max))
        if inRange {
            #expect(asSeq == nil, "seq \(value)")
            #expect(asTime == nil, "time \(value)")
        } else {
            #expect(asSeq == .malformed, "seq \(value)")
            #expect(asTime == (value == 0 ? nil : .malformed), "time \(value)")
        }
    }

    @Test func signedReadingsRoundTrip() throws {
        let original = reading(records: [
            ReadingRecord(code: "8310-5", unit: "Cel", value: .float(36.6)),
            ReadingRecord(code: "8867-4", unit: "/min", value: .integer(61)),
        ])
        let bytes = signed(original)
        let decoded = try SignedReading(decoding: bytes)
        #expect(decoded.reading == original)
        #expect(decoded.bytes == bytes)
        #expect(decoded.keyID == "bp-1")
        #expect(CBOR.isDeterministic(decoded.message.payload))
    }

    @Test func eachRejectionReason() throws {
        let unknownKey = TestChannel.deviceKey(9)
        #expect(try verdict([UInt8](repeating: 0, count: 1025)) == .tooLarge)
        #expect(try verdict([0xD2, 0x84, 0x40]) == .malformed)
        #expect(
            try verdict(signed(reading(device: "ghost-1"), key: unknownKey), topicDevice: "ghost-1") == .unknownDevice)
        #expect(
            try verdict(signed(reading(device: "old-1"), key: TestChannel.deviceKey(2)), topicDevice: "old-1")
                == .revokedDevice)
        #expect(try verdict(signed(reading(), key: unknownKey)) == .badSignature)
        #expect(try verdict(signed(reading(channelID: "other-channel"))) == .wrongChannel)
        #expect(try verdict(signed(reading()), topicDevice: "bp-2") == .wrongDevice)
        #expect(try verdict(signed(reading(seq: 5))) == .replayed)
        #expect(try verdict(signed(reading(time: 1_700_000_000_000 + 100_000 + 300_001))) == .clockSkew)
        #expect(try verdict(signed(reading(time: 1_700_000_000_000 + 100_000 + 300_000))) == nil)
        let record = { (code: String, unit: String, value: ReadingValue) in
            self.signed(self.reading(records: [ReadingRecord(code: code, unit: unit, value: value)]))
        }
        #expect(try verdict(record("1234-5", "mm[Hg]", .integer(1))) == .unknownCode)
        #expect(try verdict(record("8480-6", "mmHg", .integer(120))) == .unitMismatch)
        #expect(try verdict(record("8480-6", "mm[Hg]", .integer(301))) == .implausibleValue)
        #expect(try verdict(record("8310-5", "Cel", .float(.nan))) == .implausibleValue)
        #expect(try verdict(record("8310-5", "Cel", .float(37.2))) == nil)
    }

    @Test func aPayloadDeviceThatIsNotTheKidIsWrongDevice() throws {
        // Signed by bp-1's key with kid bp-1, but the payload names another device.
        let payload = reading(device: "bp-9").payloadBytes()
        let message = try COSESign1.sign(payload: payload, keyID: Array("bp-1".utf8), key: deviceKey)
        #expect(try verdict(message.encoded(), topicDevice: nil) == .wrongDevice)
    }

    @Test func malformedPayloadsAreNamed() throws {
        func payloadRejection(_ payload: CBOR) -> ReadingRejection? {
            let message = try! COSESign1.sign(payload: payload.encoded(), keyID: Array("bp-1".utf8), key: deviceKey)
            do {
                _ = try SignedReading(decoding: message.encoded())
                return nil
            } catch {
                return error
            }
        }
        let good: [CBORMapEntry] = [
            CBORMapEntry(1, "test-channel"), CBORMapEntry(2, "bp-1"), CBORMapEntry(3, 1), CBORMapEntry(4, 5),
            CBORMapEntry(5, [[0: "8480-6", 1: "mm[Hg]", 2: 120]]),
        ]
        #expect(payloadRejection(.map(good)) == nil)
        for index in good.indices {
            var missing = good
            missing.remove(at: index)
            #expect(payloadRejection(.map(missing))?.reason == .malformed)
        }
        var zeroSeq = good
        zeroSeq[2] = CBORMapEntry(3, 0)
        #expect(payloadRejection(.map(zeroSeq))?.message.contains("seq") == true)
        var noRecords = good
        noRecords[4] = CBORMapEntry(5, [])
        #expect(payloadRejection(.map(noRecords))?.reason == .malformed)
        var tooMany = good
        tooMany[4] = CBORMapEntry(5, .array(Array(repeating: [0: "8480-6", 1: "mm[Hg]", 2: 120], count: 17)))
        #expect(payloadRejection(.map(tooMany))?.reason == .malformed)
        var textValue = good
        textValue[4] = CBORMapEntry(5, [[0: "8480-6", 1: "mm[Hg]", 2: "120"]])
        #expect(payloadRejection(.map(textValue))?.reason == .malformed)
    }

    /// Another COSE implementation may encode differently: untagged, keys unsorted, integers in
    /// longer forms than needed. Such readings verify over their exact bytes and are accepted.
    @Test func anyValidEncodingIsAccepted() throws {
        // Payload: map(5) with keys in the order 5, 3, 1, 4, 2; seq 6 as a 4-byte integer.
        var payload: [UInt8] = [0xA5]
        payload += [0x05, 0x81, 0xA3, 0x00, 0x66] + Array("8480-6".utf8) + [0x01, 0x66] + Array("mm[Hg]".utf8)
        payload += [0x02, 0x18, 0x78]
        payload += [0x03, 0x1A, 0x00, 0x00, 0x00, 0x06]
        payload += [0x01, 0x6C] + Array("test-channel".utf8)
        payload += [0x04, 0x1B] + withUnsafeBytes(of: UInt64(1_700_000_001_000).bigEndian, Array.init)
        payload += [0x02, 0x64] + Array("bp-1".utf8)
        // Protected header {4: kid, 1: -8}: keys in reverse order.
        let protected: [UInt8] = [0xA2, 0x04, 0x44] + Array("bp-1".utf8) + [0x01, 0x27]
        let toBeSigned = COSESign1.sigStructure(protectedBytes: protected, payload: payload)
        let signature = try deviceKey.signature(for: toBeSigned)
        var message: [UInt8] =
            [0x84, 0x40 + UInt8(protected.count)] + protected + [0xA0, 0x58, UInt8(payload.count)] + payload
        message += [0x58, 0x40] + signature
        #expect(try verdict(message) == nil)
        let decoded = try SignedReading(decoding: message)
        #expect(decoded.reading.seq == 6)
        #expect(decoded.bytes == message)
        #expect(!decoded.message.isTagged)
    }
}

@Suite("The anti-replay window")
struct ReplayWindowTests {
    @Test func matchesABruteForceModel() {
        let seed: UInt64 = 0xA11_CE
        var random = SeededRandom(seed: seed)
        var window = ReplayWindow()
        var committed = Set<UInt64>()
        var highest: UInt64 = 0
        for step in 0..<20_000 {
            let seq =
                Bool.random(using: &random)
                ? highest + UInt64.random(in: 1...40, using: &random)
                : UInt64.random(in: 1...max(1, highest + 5), using: &random)
            let fresh =
                seq >= 1 && !committed.contains(seq)
                && (highest < ReplayWindow.size || seq > highest - ReplayWindow.size)
            #expect(window.isFresh(seq) == fresh, "seed \(seed) step \(step) seq \(seq) highest \(highest)")
            if fresh {
                window.insert(seq)
                committed.insert(seq)
                highest = max(highest, seq)
            }
            #expect(window.highest == highest)
        }
    }

    @Test func aBigJumpClearsTheWindow() {
        var window = ReplayWindow()
        window.insert(1)
        window.insert(5000)
        #expect(!window.isFresh(1))
        #expect(!window.isFresh(3976))
        #expect(window.isFresh(3977))
        #expect(!window.isFresh(5000))
        #expect(window.contains(5000))
        #expect(!window.isFresh(0))
    }
}

@Suite("Receipts")
struct ReceiptTests {
    @Test(arguments: [
        Receipt(seq: 7, status: .accepted),
        Receipt(seq: 8, status: .committed(height: 12, blockHash: Hash256.sha256([1]))),
        Receipt(seq: 9, status: .rejected(.clockSkew)),
        Receipt(seq: 10, status: .busy),
    ])
    func roundTrip(_ receipt: Receipt) throws {
        #expect(try Receipt(decoding: receipt.encoded()) == receipt)
    }

    @Test func transactionReceiptsRoundTripWithTheirOwnReasons() throws {
        for receipt in [
            TransactionReceipt(seq: 3, status: .accepted),
            TransactionReceipt(seq: 4, status: .committed(height: 2, blockHash: Hash256.sha256([2]))),
            TransactionReceipt(seq: 5, status: .rejected(.deviceExists)),
        ] {
            #expect(try TransactionReceipt(decoding: receipt.encoded()) == receipt)
        }
        // A reading's receipt cannot carry a transaction's reason.
        #expect(throws: LedgerFormatError.self) {
            try Receipt(decoding: TransactionReceipt(seq: 5, status: .rejected(.deviceExists)).encoded())
        }
    }

    @Test func theWireFormIsTheProtocols() {
        // {1: 9, 2: "rejected", 5: "replayed"}
        let expected: [UInt8] =
            [0xA3, 0x01, 0x09, 0x02, 0x68] + Array("rejected".utf8) + [0x05, 0x68] + Array("replayed".utf8)
        #expect(Receipt(seq: 9, status: .rejected(.replayed)).encoded() == expected)
    }

    @Test func badReceiptsAreNamed() {
        #expect(throws: LedgerFormatError.self) { try Receipt(decoding: CBOR.map([CBORMapEntry(1, 1)]).encoded()) }
        #expect(throws: LedgerFormatError.self) {
            try Receipt(decoding: CBOR.map([CBORMapEntry(1, 1), CBORMapEntry(2, "committed")]).encoded())
        }
        #expect(throws: LedgerFormatError.self) {
            try Receipt(
                decoding: CBOR.map([CBORMapEntry(1, 1), CBORMapEntry(2, "rejected"), CBORMapEntry(5, "nope")]).encoded()
            )
        }
    }
}

@Suite("Signed receipts")
struct SignedReceiptTests {
    static let topic = "medledger/v1/ward-7/receipts/cuff-1"
    static let final: [Receipt] = [
        Receipt(seq: 8, status: .committed(height: 12, blockHash: Hash256.sha256([1]))),
        Receipt(seq: 9, status: .rejected(.clockSkew)),
        Receipt(seq: 0, status: .rejected(.malformed)),
    ]
    let es256 = PrivateKey(generating: .es256)
    let ed25519 = TestChannel.deviceKey(90)
    var managers: [Member] {
        [Member(id: "manager-1", publicKey: ed25519.publicKey), Member(id: "manager-2", publicKey: es256.publicKey)]
    }

    func open(_ bytes: [UInt8], topic: String = Self.topic) -> Result<Receipt, ReceiptError> {
        Result { () throws(ReceiptError) in try Receipt.open(bytes, topic: topic, managers: managers).receipt }
    }

    func code(_ bytes: [UInt8], topic: String = Self.topic) -> ReceiptError.Code? {
        if case .failure(let error) = open(bytes, topic: topic) { return error.code }
        return nil
    }

    @Test(arguments: final)
    func aFinalReceiptIsSignedAndVerifiesWithItsManagersKeyForItsTopic(_ receipt: Receipt) throws {
        for (id, key) in [("manager-1", ed25519), ("manager-2", es256)] {
            let bytes = try receipt.published(topic: Self.topic, manager: id, key: key)
            #expect(bytes.first == 0xD2, "COSE_Sign1, tag 18")
            let opened = try Receipt.open(bytes, topic: Self.topic, managers: managers)
            #expect(opened.receipt == receipt && opened.signer == id)
            // Another device's or channel's topic, another manager's name, a changed byte.
            #expect(code(bytes, topic: "medledger/v1/ward-7/receipts/cuff-2") == .badSignature)
            #expect(code(bytes, topic: "medledger/v1/ward-8/receipts/cuff-1") == .badSignature)
            let other = id == "manager-1" ? "manager-2" : "manager-1"
            #expect(code(try receipt.published(topic: Self.topic, manager: other, key: key)) != nil)
            #expect(code(try receipt.published(topic: Self.topic, manager: "mallory", key: key)) == .unknownSigner)
            var changed = bytes
            changed[changed.count - 70] ^= 0x01
            #expect(code(changed) != nil)
            // Unsigned, it is refused; unverified (no genesis), it is read.
            #expect(code(receipt.encoded()) == .unsigned)
            #expect(try Receipt.open(receipt.encoded(), topic: Self.topic, managers: nil).receipt == receipt)
        }
    }

    @Test func acceptedAndBusyStayBareMapsAndNeedNoSignature() throws {
        for receipt in [Receipt(seq: 7, status: .accepted), Receipt(seq: 10, status: .busy)] {
            let bytes = try receipt.published(topic: Self.topic, manager: "manager-1", key: ed25519)
            #expect(bytes == receipt.encoded())
            #expect(try open(bytes).get() == receipt)
        }
    }

    @Test func garbageIsMalformedNotATrap() {
        for bytes: [UInt8] in [[], [0xD2], [0xD2, 0x84], [0xD2, 0x84, 0x40, 0xA0, 0x40, 0x40], [0xFF], [0xA1, 0x01]] {
            #expect(code(bytes) == .malformed || code(bytes) == .unknownSigner, "\(bytes)")
        }
    }
}
