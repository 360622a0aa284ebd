import MedLedgerConsensus
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

@Suite("Nodes over a real broker: readings become committed blocks on every replica", .serialized, .network)
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
                    let waiting = Task { try await waitForCommitted(client, seqs: Set(seqs), channel: network.channel) }
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
        let network = try await TestNetwork(managers: 2, block: Self.block)
        do {
            try await network.startAll()
            let devices = devices(4)
            try await network.register(devices)
            let receipts = try await send(network, devices: devices, seqs: 1...40)
            let height = await network.node("manager-1").height
            try await network.waitForHeight(height)
            let ids = ["manager-1", "manager-2", "validator-1", "validator-2", "validator-3", "validator-4"]
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

@Suite("Nodes over a real broker: faults", .serialized, .network)
struct NodeFaultTests {
    static let block = BlockParameters(maxReadings: 100, maxBytes: 1 << 20, timeoutMs: 50)
    let helper = NodeTests()

    /// Runs `body` on a network and always shuts it down.
    func withNetwork(
        validators: Int = 4, managers: Int = 1, _ body: (TestNetwork) async throws -> Void
    ) async throws {
        let network = try await TestNetwork(validators: validators, managers: managers, block: Self.block)
        do {
            try await body(network)
        } catch {
            await network.shutdown()
            throw error
        }
        await network.shutdown()
    }

    @Test func oneValidatorDownTheChainGoesOnTwoDownItStopsSafelyAndARestartedOneCatchesUp() async throws {
        try await withNetwork { network in
            try await network.startAll()
            let devices = helper.devices(2)
            try await network.register(devices)
            _ = try await helper.send(network, devices: devices, seqs: 1...10)
            await network.stop("validator-4")
            _ = try await helper.send(network, devices: devices, seqs: 11...20)
            let before = await network.node("manager-1").height
            await network.stop("validator-3")
            // With two of four down no block can be committed: the manager proposes, the two left
            // vote, and they send their votes again and again, and nothing more happens.
            let proposedBefore = await network.node("manager-1").counters.proposalsSent
            let pending = Task { try await helper.send(network, devices: devices, seqs: 21...30) }
            try await eventually(.seconds(30), "the next block proposed") {
                await network.node("manager-1").counters.proposalsSent > proposedBefore
            }
            let retransmissions = await network.node("validator-1").counters.retransmissions
            try await eventually(.seconds(30), "five rounds of retransmission") {
                await network.node("validator-1").counters.retransmissions >= retransmissions + 5
            }
            for (_, height) in await network.heights() { #expect(height == before, "no commit without a quorum") }
            try await network.start("validator-3")
            _ = try await within(.seconds(60), "the readings sent during the outage") { try await pending.value }
            let height = await network.node("manager-1").height
            try await network.waitForHeight(height)
            try helper.expectIdenticalVerifiedReplicas(
                network, ["manager-1", "validator-1", "validator-2", "validator-3"], height: height)
            let stored = try network.store("validator-3").readings(matching: ReadingQuery(device: devices[0].id))
            #expect(stored.map(\.seq) == Array(1...30))
        }
    }

    @Test func aManagerStoppedWhileReadingsFlowLosesNoAcceptedReading() async throws {
        try await withNetwork(managers: 2) { network in
            try await network.startAll()
            let devices = helper.devices(3)
            try await network.register(devices)
            let sending = Task { try await helper.send(network, devices: devices, seqs: 1...60) }
            try await eventually(.seconds(30), "manager-1 has accepted readings") {
                await network.node("manager-1").counters.readingsAccepted > 20
            }
            await network.stop("manager-1")
            let receipts = try await within(.seconds(90), "every reading committed") { try await sending.value }
            #expect(receipts.values.allSatisfy { $0.count == 60 })
            let height = await network.node("manager-2").height
            try await network.waitForHeight(height)
            let store = try network.store("validator-1")
            for device in devices {
                #expect(try store.readings(matching: ReadingQuery(device: device.id)).map(\.seq) == Array(1...60))
            }
        }
    }

    @Test func aManagerWhoseClockRunsAYearAheadIsRefusedAndTheChainGoesOn() async throws {
        try await withNetwork(managers: 2) { network in
            let year: UInt64 = 365 * 24 * 3_600_000
            network.clocks["manager-2"] = { WallClock.nowMs() + year }
            try await network.startAll()
            let devices = helper.devices(2)
            try await network.register(devices)
            _ = try await helper.send(network, devices: devices, seqs: 1...30)
            let validators = (1...4).map { "validator-\($0)" }
            try await eventually(.seconds(30), "manager-2's proposals refused for their time") {
                var refused = 0
                for id in validators {
                    refused += await network.node(id).counters.invalidProposalsByRule["header.time-ahead"] ?? 0
                }
                return refused > 0
            }
            let height = await network.node("manager-1").height
            try await network.waitForHeight(height)
            try helper.expectIdenticalVerifiedReplicas(
                network, ["manager-1", "manager-2"] + validators, height: height)
            let store = try network.store("validator-1")
            let skew = network.channel.genesis.skewMs
            for level in 1...height {
                let header = try store.block(at: level).header
                #expect(header.proposer == "manager-1", "block \(level) was proposed by \(header.proposer)")
                #expect(header.time <= WallClock.nowMs() + skew, "block \(level)'s time \(header.time) is ahead")
            }
            for device in devices {
                #expect(try store.readings(matching: ReadingQuery(device: device.id)).map(\.seq) == Array(1...30))
            }
        }
    }

    /// With no validator up nothing is committed, so what the manager's pools hold is fixed: a
    /// device that floods gets `busy` past its share while another device is still taken, and a
    /// transaction past the transaction pool's capacity gets `busy` too.
    @Test func aDeviceThatFloodsIsBusyPastItsShareAndTheOthersAreNot() async throws {
        try await withNetwork { network in
            network.poolDeviceShare = 4
            network.transactionPoolCapacity = 1
            try await network.startAll()
            let devices = helper.devices(2)
            try await network.register(devices)
            for index in 1...4 { await network.stop("validator-\(index)") }
            let topics = ChannelTopics(channel: network.channel.genesis.channel)
            func answers(_ device: (id: String, key: PrivateKey, patient: String?), _ seqs: ClosedRange<UInt64>)
                async throws -> [UInt64: Receipt.Status]
            {
                let client = try await network.client(device.id)
                defer { client.shutdown() }
                try await client.subscribe(topics.receipts(device.id))
                for seq in seqs {
                    let reading = network.channel.reading(device: device.id, key: device.key, seq: seq)
                    try await client.publish(topic: topics.readings(device.id), payload: reading.bytes)
                }
                return try await within(.seconds(20), "\(device.id)'s answers") {
                    var answers: [UInt64: Receipt.Status] = [:]
                    for await message in client.messages {
                        guard let receipt = network.channel.trustedReceipt(message.payload, topic: message.topic)
                        else { continue }
                        answers[receipt.seq] = receipt.status
                        if answers.count == seqs.count { break }
                    }
                    return answers
                }
            }
            let flood = try await answers(devices[0], 1...12)
            #expect(flood.values.filter { $0 == .accepted }.count == 4, "\(flood)")
            #expect(flood.values.filter { $0 == .busy }.count == 8, "\(flood)")
            let other = try await answers(devices[1], 1...3)
            #expect(other.values.allSatisfy { $0 == .accepted }, "\(other)")

            // The transaction pool holds one: the second transaction is busy.
            let registrar = try await network.client("registrar-1")
            defer { registrar.shutdown() }
            try await registrar.subscribe(topics.transactionReceipts("registrar-1"))
            // Above the seqs the registrar used (its submitter takes them from the clock).
            let first = WallClock.nowMs() + 60_000
            for seq in first...first + 1 {
                let key = TestChannel.deviceKey(Int(seq % 1000) + 100)
                let transaction = network.channel.transaction(
                    seq: seq, .registerDevice(device: "cuff-\(seq)", key: key.publicKey, patient: nil))
                try await registrar.publish(topic: topics.transactions("registrar-1"), payload: transaction.bytes)
            }
            let statuses = try await within(.seconds(20), "the registrar's answers") {
                var statuses: [UInt64: TransactionReceipt.Status] = [:]
                for await message in registrar.messages {
                    guard let receipt = try? TransactionReceipt(decoding: message.payload) else { continue }
                    statuses[receipt.seq] = receipt.status
                    if statuses.count == 2 { break }
                }
                return statuses
            }
            #expect(statuses == [first: .accepted, first + 1: .busy], "\(statuses)")
            let busy = await network.node("manager-1").counters.transactionsBusy
            #expect(busy >= 1, "\(busy)")
        }
    }

    /// A byzantine validator signs many conflicting votes: a node keeps one piece of evidence per
    /// slot (validator, height, round, step), and none for heights far from its own; and its
    /// forged commit for a far height starts no catch-up.
    @Test func evidenceIsKeptOncePerSlotOnlyForRecentHeightsAndAForgedCommitStartsNothing() async throws {
        try await withNetwork { network in
            try await network.startAll()
            try await network.register(helper.devices(1))
            let channel = network.channel
            let name = channel.genesis.channel
            let key = channel.validatorKeys[3]
            func vote(height: UInt64, _ tag: String) throws -> Vote {
                var vote = Vote(
                    channel: name, height: height, round: 0, step: .prevote, blockHash: Hash256.sha256(Array(tag.utf8)),
                    validator: 3, signature: [])
                vote.signature = try key.signature(for: vote.signingBytes)
                return vote
            }
            let client = try await network.client("validator-4-byzantine")
            defer { client.shutdown() }
            let topic = CouncilTopics.evidence(channel: name, reporter: "validator-4")
            let first = try vote(height: 1, "a")
            for tag in ["b", "c", "d", "e", "f"] {
                let evidence = Evidence.conflictingVotes(first, try vote(height: 1, tag))
                try await client.publish(topic: topic, payload: evidence.encoded())
            }
            let far = Evidence.conflictingVotes(try vote(height: 100_000, "a"), try vote(height: 100_000, "b"))
            try await client.publish(topic: topic, payload: far.encoded())
            for id in ["validator-1", "manager-1"] {
                try await eventually(.seconds(20), "\(id) dropped the far evidence") {
                    await network.node(id).counters.evidenceIgnored == 1
                }
                #expect(await network.node(id).counters.evidence == 1, "\(id)")
            }
            await network.stop("validator-1")
            #expect(try NodeJournal(path: network.databasePath("validator-1") + ".journal").evidence().count == 1)

            // A retained commit for a far height whose certificate does not verify starts no
            // catch-up: it is counted and ignored.
            let height = await network.node("validator-2").height
            var stored = try network.store("validator-2").storedBlock(at: height)
            stored.header.height += 1_000
            let forged = CommittedBlock(
                header: stored.header, compressedBody: stored.compressedBody, certificate: stored.certificate)
            try await client.publish(topic: CouncilTopics.commits(channel: name), payload: forged.encoded())
            try await eventually(.seconds(20), "the forged commit refused") {
                await network.node("validator-2").counters.invalidCommits == 1
            }
            #expect(await network.node("validator-2").counters.blocksSynced == 0)
            #expect(await network.node("validator-2").height == height)
        }
    }

    @Test func badReadingsAreRejectedWithTheirReasonAndNoneIsCommitted() async throws {
        try await withNetwork { network in
            try await network.startAll()
            let devices = helper.devices(1)
            try await network.register(devices)
            _ = try await helper.send(network, devices: devices, seqs: 1...3)
            let channel = network.channel
            let topics = ChannelTopics(channel: channel.genesis.channel)
            let device = devices[0]
            let client = try await network.client(device.id)
            defer { client.shutdown() }
            try await client.subscribe(topics.receipts(device.id))
            let stranger = TestChannel.deviceKey(99)
            var otherChannel = channel.reading(device: device.id, key: device.key, seq: 5).reading
            otherChannel.channel = "ward-8"
            let cases: [(RejectionReason, [UInt8], String)] = [
                (.unknownDevice, channel.reading(device: "cuff-99", key: stranger, seq: 1).bytes, "cuff-99"),
                (
                    .replayed, channel.reading(device: device.id, key: device.key, seq: 2, systolic: 140).bytes,
                    device.id
                ),
                (.badSignature, channel.reading(device: device.id, key: stranger, seq: 6).bytes, device.id),
                (.wrongChannel, try SignedReading(signing: otherChannel, with: device.key).bytes, device.id),
            ]
            // The unknown device's receipts go to its own topic.
            try await client.subscribe(topics.receipts("cuff-99"))
            let expected = cases.count
            let waiting = Task {
                try await within(.seconds(30), "four rejections") {
                    var reasons: [RejectionReason] = []
                    for await message in client.messages {
                        if let receipt = network.channel.trustedReceipt(message.payload, topic: message.topic),
                            case .rejected(let reason) = receipt.status
                        {
                            reasons.append(reason)
                            if reasons.count == expected { break }
                        }
                    }
                    return reasons
                }
            }
            for (_, bytes, topicDevice) in cases {
                try await client.publish(topic: topics.readings(topicDevice), payload: bytes)
            }
            let reasons = try await waiting.value
            #expect(Set(reasons) == Set(cases.map(\.0)))
            // A retransmission of a committed reading gets `committed` again and no second copy.
            let again = try await helper.send(network, devices: devices, seqs: 3...3)
            #expect(again[device.id]?[3] != nil)
            let store = try network.store("manager-1")
            #expect(try store.readings(matching: ReadingQuery(device: device.id)).map(\.seq) == [1, 2, 3])
            #expect(try store.readings(matching: ReadingQuery(device: "cuff-99")).isEmpty)
            #expect(
                try store.committedReading(device: device.id, seq: 2)?.bytes
                    == channel.reading(
                        device: device.id, key: device.key, seq: 2, systolic: 102
                    ).bytes)
        }
    }
}

/// A byzantine council member on the wire: for every proposal it sees it votes for the proposed
/// block and for a block that does not exist, at both steps (equivocation), signed with its real
/// key, and it sends votes in another validator's name with a signature that does not verify.
final class ByzantineValidator: Sendable {
    let task: Task<Void, any Error>
    let client: MQTTClient

    init(network: TestNetwork, index: Int) async throws {
        let channel = network.channel
        let key = channel.validatorKeys[index]
        let client = try await network.client("validator-\(index + 1)-byzantine")
        self.client = client
        let name = channel.genesis.channel
        try await client.subscribe("medledger/v1/\(name)/council/proposal/+")
        let topic = "medledger/v1/\(name)/council/vote/validator-\(index + 1)"
        task = Task {
            for await message in client.messages {
                guard let proposal = try? Proposal(decoding: message.payload, maxBytes: 1 << 22) else { continue }
                for step in [VoteStep.prevote, .precommit] {
                    for hash in [proposal.value.id, Hash256.sha256(Array("nothing".utf8) + proposal.value.id.bytes)] {
                        var vote = Vote(
                            channel: name, height: proposal.height, round: proposal.round, step: step, blockHash: hash,
                            validator: index, signature: [])
                        vote.signature = try key.signature(for: vote.signingBytes)
                        try client.enqueue(topic: topic, payload: vote.encoded())
                    }
                    var forged = Vote(
                        channel: name, height: proposal.height, round: proposal.round, step: step,
                        blockHash: proposal.value.id, validator: (index + 1) % channel.validatorKeys.count,
                        signature: [UInt8](repeating: 7, count: 64))
                    forged.signature[0] = UInt8(proposal.round % 256)
                    try client.enqueue(topic: topic, payload: forged.encoded())
                }
            }
        }
    }

    func stop() {
        task.cancel()
        client.shutdown()
    }
}

@Suite("Nodes over a real broker: a byzantine validator", .serialized, .network)
struct ByzantineTests {
    @Test func theChainGoesOnAndTheEquivocationIsRecorded() async throws {
        let network = try await TestNetwork(block: NodeFaultTests.block)
        let byzantine: ByzantineValidator
        do {
            for index in 1...3 { try await network.start("validator-\(index)") }
            try await network.start("manager-1")
            byzantine = try await ByzantineValidator(network: network, index: 3)
        } catch {
            await network.shutdown()
            throw error
        }
        do {
            let helper = NodeTests()
            let devices = helper.devices(2)
            try await network.register(devices)
            let receipts = try await helper.send(network, devices: devices, seqs: 1...30)
            #expect(receipts.values.allSatisfy { $0.count == 30 })
            try await eventually(.seconds(30), "every honest node recorded evidence") {
                for id in ["validator-1", "validator-2", "validator-3", "manager-1"] {
                    if await network.node(id).counters.evidence == 0 { return false }
                }
                return true
            }
            // And in the metrics an operator scrapes (exported from the counters within a second).
            let url = try #require(await network.node("validator-1").httpURL, "the validator serves HTTP")
            try await eventually(.seconds(10), "the evidence in validator-1's metrics") {
                (try PrometheusText(try await httpGet(url + "metrics").body).value("medledger_evidence_total") ?? 0)
                    >= 1
            }
            let journal = try NodeJournal(path: network.databasePath("validator-1") + ".journal")
            let evidence = try journal.evidence()
            #expect(!evidence.isEmpty)
            for (_, bytes) in evidence {
                let decoded = try Evidence(decoding: bytes)
                #expect(decoded.verify(channel: "ward-7", verifier: GenesisVerifier(genesis: network.channel.genesis)))
                guard case .conflictingVotes(let a, _) = decoded else {
                    Issue.record("expected conflicting votes, got \(decoded)")
                    continue
                }
                #expect(a.validator == 3)
            }
            let height = await network.node("manager-1").height
            try await network.waitForHeight(height)
            try helper.expectIdenticalVerifiedReplicas(
                network, ["manager-1", "validator-1", "validator-2", "validator-3"], height: height)
        } catch {
            byzantine.stop()
            await network.shutdown()
            throw error
        }
        byzantine.stop()
        await network.shutdown()
    }
}
