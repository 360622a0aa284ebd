import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

@Suite("Nodes over a real broker: readings become committed blocks on every replica", .serialized)
struct NodeTests {
    static let block = BlockParameters(maxReadings: 100, maxBytes: 1 << 20, timeoutMs: 50)

    func devices(_ count: Int, from: Int = 0) -> [(id: String, key: PrivateKey, patient: String?)] {
        (from..<from + count).map { ("cuff-\($0)", TestChannel.deviceKey($0), "patient-\($0 % 3)") }
    }

    /// Publishes `count` readings of each device and waits for all their committed receipts.
    func send(
        _ network: TestNetwork, devices: [(id: String, key: PrivateKey, patient: String?)], seqs: ClosedRange<UInt64>
    ) async throws -> [String: [UInt64: Receipt]] {
        let topics = ChannelTopics(channel: network.channel.genesis.channel)
        var results: [String: [UInt64: Receipt]] = [:]
        try await withThrowingTaskGroup(of: (String, [UInt64: Receipt]).self) { group in
            for device in devices {
                let client = try await network.client(device.id)
                try await client.subscribe(topics.receipts(device.id))
                group.addTask {
                    defer { client.shutdown() }
                    let waiting = Task { try await waitForCommitted(client, seqs: Set(seqs)) }
                    for seq in seqs {
                        let reading = network.channel.reading(
                            device: device.id, key: device.key, seq: seq, systolic: 100 + Int64(seq % 50))
                        try await client.publish(topic: topics.readings(device.id), payload: reading.bytes)
                    }
                    return (device.id, try await waiting.value)
                }
            }
            for try await (id, receipts) in group { results[id] = receipts }
        }
        return results
    }

    /// Every replica holds the same chain, and it verifies from genesis.
    func expectIdenticalVerifiedReplicas(_ network: TestNetwork, _ ids: [String], height: UInt64) throws {
        let reference = try network.store(ids[0])
        for id in ids {
            let store = try network.store(id)
            #expect(store.height >= height, "\(id) is at \(store.height)")
            for level in 1...height {
                #expect(try store.block(at: level) == reference.block(at: level), "\(id) differs at \(level)")
            }
            let report = try StoreVerifier.verify(path: network.databasePath(id))
            #expect(report.isIntact, "\(id): \(report.problems)")
        }
    }

    @Test func readingsAreCommittedOnceAndEveryReplicaAgrees() async throws {
        let network = try await TestNetwork(block: Self.block)
        do {
            try network.startAll()
            let devices = devices(4)
            try await network.register(devices)
            let receipts = try await send(network, devices: devices, seqs: 1...40)
            let height = await network.node("manager-1").height
            try await network.waitForHeight(height)
            let ids = ["manager-1", "validator-1", "validator-2", "validator-3", "validator-4"]
            try expectIdenticalVerifiedReplicas(network, ids, height: height)
            let store = try network.store("validator-2")
            for device in devices {
                let stored = try store.readings(matching: ReadingQuery(device: device.id))
                #expect(stored.map(\.seq) == Array(1...40), "each reading of \(device.id) exactly once")
                for reading in stored {
                    guard case .committed(let height, let hash) = receipts[device.id]?[reading.seq]?.status else {
                        Issue.record("no committed receipt for \(device.id) \(reading.seq)")
                        continue
                    }
                    #expect(height == reading.height)
                    #expect(hash == (try store.block(at: height)).header.hash)
                }
            }
        } catch {
            await network.shutdown()
            throw error
        }
        await network.shutdown()
    }
}
