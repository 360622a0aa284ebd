import MedLedgerCore
import MedLedgerTestSupport
import Testing

@Suite("The manager's mempool")
struct MempoolTests {
    let channel = TestChannel()
    let key = TestChannel.deviceKey(1)

    func reading(_ seq: UInt64, systolic: Int64 = 120) -> SignedReading {
        channel.reading(device: "bp-1", key: key, seq: seq, systolic: systolic)
    }

    @Test func admitsInOrderAndRecognisesRetransmissionsAndConflicts() {
        var pool = Mempool(capacity: 10, byteCapacity: 10_000)
        #expect(pool.admit(reading(1), now: 100) == .added)
        #expect(pool.admit(reading(2), now: 150) == .added)
        #expect(pool.admit(reading(1), now: 160) == .duplicate)
        #expect(pool.admit(reading(1, systolic: 130), now: 160) == .conflict)
        #expect(pool.count == 2)
        #expect(pool.oldestAdmission == 100)
        let params = BlockParameters(maxReadings: 10, maxBytes: 100_000, timeoutMs: 200)
        #expect(pool.batch(params).map(\.reading.seq) == [1, 2])
        pool.remove([(device: "bp-1", seq: 1)])
        #expect(pool.oldestAdmission == 150)
        #expect(pool.batch(params).map(\.reading.seq) == [2])
    }

    @Test func saysWhenFullByCountOrBytes() {
        var pool = Mempool(capacity: 2, byteCapacity: 10_000)
        #expect(pool.admit(reading(1), now: 0) == .added)
        #expect(pool.admit(reading(2), now: 0) == .added)
        #expect(pool.admit(reading(3), now: 0) == .full)
        var small = Mempool(capacity: 100, byteCapacity: reading(1).bytes.count + 10)
        #expect(small.admit(reading(1), now: 0) == .added)
        #expect(small.admit(reading(2), now: 0) == .full)
        #expect(small.byteCount == reading(1).bytes.count)
    }

    @Test func aDeviceHoldsAtMostItsShareAndTheOthersAreStillTaken() {
        var pool = Mempool(capacity: 10, byteCapacity: 100_000, deviceShare: 3)
        for seq: UInt64 in 1...3 { #expect(pool.admit(reading(seq), now: 0) == .added) }
        #expect(pool.admit(reading(4), now: 0) == .deviceFull)
        #expect(pool.admit(reading(1), now: 0) == .duplicate)
        let other = TestChannel.deviceKey(2)
        for seq: UInt64 in 1...3 {
            #expect(pool.admit(channel.reading(device: "bp-2", key: other, seq: seq), now: 0) == .added)
        }
        #expect(pool.pendingCount(device: "bp-1") == 3 && pool.pendingCount(device: "bp-2") == 3)
        // A committed reading frees its device's place.
        pool.remove([(device: "bp-1", seq: 2)])
        #expect(pool.pendingCount(device: "bp-1") == 2)
        #expect(pool.admit(reading(4), now: 0) == .added)
        #expect(pool.admit(reading(5), now: 0) == .deviceFull)
        pool.remove((1...5).map { (device: "bp-1", seq: $0) })
        #expect(pool.pendingCount(device: "bp-1") == 0)
        // The default share: an eighth of the pool, at least 256, never more than the pool.
        #expect(Mempool.defaultDeviceShare(capacity: 20_000) == 2_500)
        #expect(Mempool.defaultDeviceShare(capacity: 1_000) == 256)
        #expect(Mempool.defaultDeviceShare(capacity: 5) == 5)
    }

    @Test func cutsByCountBytesOrTimeout() {
        var pool = Mempool(capacity: 100, byteCapacity: 100_000)
        let params = BlockParameters(maxReadings: 3, maxBytes: 100_000, timeoutMs: 200)
        #expect(!pool.shouldCut(params, now: 1_000))
        _ = pool.admit(reading(1), now: 1_000)
        #expect(!pool.shouldCut(params, now: 1_199))
        #expect(pool.shouldCut(params, now: 1_200))
        _ = pool.admit(reading(2), now: 1_001)
        _ = pool.admit(reading(3), now: 1_002)
        #expect(pool.shouldCut(params, now: 1_003))
        _ = pool.admit(reading(4), now: 1_003)
        #expect(pool.batch(params).count == 3)
        let tight = BlockParameters(maxReadings: 100, maxBytes: 2 * reading(1).bytes.count, timeoutMs: 200)
        #expect(pool.batch(tight).count == 2)
    }
}
