import Foundation
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

@Suite("A manager serves fetch requests over MQTT 5 and logs each on the ledger", .serialized, .network)
struct ServingTests {
    static let block = BlockParameters(maxReadings: 100, maxBytes: 1 << 20, timeoutMs: 50)
    static let study = "bp-2026"

    @Test func pagesAreServedVerifiedAndLoggedAndARepeatedRequestIsDropped() async throws {
        let network = try await TestNetwork(managers: 1, block: Self.block)
        do {
            try await run(network)
            await network.shutdown()
        } catch {
            await network.shutdown()
            throw error
        }
    }

    /// Devices of three patients with five readings each, a researcher, two patients' consents, the
    /// consent-study contract and the researcher's granted request.
    func prepare(_ network: TestNetwork) async throws -> (grant: Hash256, key: PrivateKey, client: MQTTClient) {
        let channel = network.channel.genesis.channel
        let devices = (0..<3).map { ("cuff-\($0)", TestChannel.deviceKey($0), "patient-\($0)") }
        try await network.register(devices.map { (id: $0.0, key: $0.1, patient: Optional($0.2)) })

        // A researcher, consents of two of the three patients, the consent-study contract.
        let researcherKey = TestChannel.key(seed: 71)
        let registrar = try await network.client("registrar-1")
        let module = try ShippedContracts.module("consent-study")
        let setUp = try await TransactionSubmitter(
            client: registrar, channel: channel, submitter: "registrar-1", key: network.channel.registrarKey
        ).submit(
            [
                .registerProfessional(
                    id: "researcher-1", role: .researcher, key: researcherKey.publicKey, organisation: nil),
                .consent(patient: "patient-0", study: Self.study), .consent(patient: "patient-1", study: Self.study),
                .deployContract(ContractDeployment(name: "study", module: module)),
            ], timeout: transactionWait)
        registrar.shutdown()
        #expect(setUp.allSatisfy { if case .committed = $0 { true } else { false } }, "\(setUp)")

        // Five readings of each device.
        let topics = ChannelTopics(channel: channel)
        for (id, key, _) in devices {
            let client = try await network.client(id)
            try await client.subscribe(topics.receipts(id))
            let waiting = Task { try await waitForCommitted(client, seqs: Set(1...5), channel: network.channel) }
            for seq in UInt64(1)...5 {
                let reading = network.channel.reading(
                    device: id, key: key, seq: seq, time: UInt64(Date().timeIntervalSince1970 * 1000) - 10_000 + seq)
                try await client.publish(topic: topics.readings(id), payload: reading.bytes)
            }
            _ = try await waiting.value
            client.shutdown()
        }

        // The researcher's request, decided by the contract.
        let researcher = try await network.client("researcher-1")
        let requested = try await TransactionSubmitter(
            client: researcher, channel: channel, submitter: "researcher-1", key: researcherKey
        ).submitSigned(
            [
                .accessRequest(
                    AccessRequest(
                        contract: Hash256.sha256(module), kinds: ["8480-6", "8462-4"], from: 0, to: .max / 2,
                        purpose: "cohort", study: Self.study))
            ], timeout: transactionWait)
        guard case .committed = requested[0].outcome else {
            throw FixtureError("the request was not committed: \(requested[0].outcome)")
        }
        return (requested[0].transaction.id, researcherKey, researcher)
    }

    func run(_ network: TestNetwork) async throws {
        try await network.startAll()
        let (grant, researcherKey, researcher) = try await prepare(network)
        defer { researcher.shutdown() }
        let topics = ChannelTopics(channel: network.channel.genesis.channel)

        // Pages of four: ten readings of the two consenting patients, each page verified.
        let access = AccessClient(
            client: researcher, genesis: network.channel.genesis, requester: "researcher-1", key: researcherKey)
        var query = AccessClient.Query(grant: grant, limit: 4)
        var pages: [AccessClient.Page] = []
        while true {
            let page = try await access.fetch(query, from: "manager-1")
            pages.append(page)
            guard case .readings(_, _, let next) = page.response.content, let next else { break }
            query.after = next
        }
        #expect(pages.map(\.readings.count) == [4, 4, 2])
        let served = pages.flatMap(\.readings)
        #expect(Set(served.map(\.patient)) == ["patient-0", "patient-1"])
        #expect(Set(served.map { "\($0.device)/\($0.reading.seq)" }).count == 10)

        // Each page was logged, and committed, before it was answered.
        let logs = try network.store("manager-1").accessLog(grant: grant)
        #expect(logs.map(\.entry.fetch) == pages.map(\.request.id))
        #expect(logs.map(\.entry.count) == [4, 4, 2])
        #expect(logs.map(\.entry.servedHash) == pages.map(\.response.servedHash))
        #expect(logs.allSatisfy { $0.manager == "manager-1" && $0.entry.requester == "researcher-1" })

        // The same signed request again (a replay) is dropped: no answer, nothing logged. The fresh
        // request after it is answered, so the manager has taken the repeat by then.
        let repeated = pages[0].request
        try await researcher.publish(
            topic: topics.fetch("manager-1"), payload: repeated.bytes,
            properties: MQTTProperties(responseTopic: researcher.responseTopic, correlationData: [1, 2, 3]))
        let fresh = try await access.fetch(AccessClient.Query(grant: grant, limit: 1), from: "manager-1")
        #expect(fresh.readings.count == 1)
        let counters = await network.node("manager-1").fetchCounters
        #expect(counters.duplicates == 1)
        #expect(counters.served == 4)
        #expect(try network.store("manager-1").accessLog(grant: grant).count == 4)

        // Someone else's key: refused before anything is read, and nothing is logged.
        let impostor = AccessClient(
            client: researcher, genesis: network.channel.genesis, requester: "researcher-1",
            key: TestChannel.key(seed: 72))
        let refused = try await impostor.fetch(AccessClient.Query(grant: grant), from: "manager-1")
        guard case .refused(let refusal) = refused.response.content else {
            Issue.record("a request signed with another key was served")
            return
        }
        #expect(refusal.reason == .badSignature)
        #expect(await network.node("manager-1").fetchCounters.refused["bad-signature"] == 1)
        // Its id was not kept (only requests whose signature verifies are remembered): the very
        // same bytes again are refused again, not dropped as a repeat.
        let again = try await researcher.request(
            topic: topics.fetch("manager-1"), payload: refused.request.bytes, timeout: .seconds(20))
        guard case .refused(let second) = try FetchResponse(decoding: again.payload).content else {
            Issue.record("the repeated impostor request was served")
            return
        }
        #expect(second.reason == .badSignature)
        let after = await network.node("manager-1").fetchCounters
        #expect(after.refused["bad-signature"] == 2 && after.duplicates == 1, "\(after)")
    }

    @Test func aFetchWhoseAccessLogCannotBeCommittedServesNothing() async throws {
        let network = try await TestNetwork(managers: 1, block: Self.block)
        var configuration = network.configuration("manager-1")
        configuration.accessLogWaitMs = 1500
        let manager = try LedgerNode(configuration: configuration, logger: testLogger)
        let running = Task { try await manager.run() }
        do {
            for index in 1...4 { try await network.start("validator-\(index)") }
            try await eventually(.seconds(20), "manager-1 subscribed") { await manager.isReady }
            let (grant, key, researcher) = try await prepare(network)
            defer { researcher.shutdown() }

            // Two of the four validators stop: no block can be committed, so no access log either.
            await network.stop("validator-3")
            await network.stop("validator-4")
            let access = AccessClient(
                client: researcher, genesis: network.channel.genesis, requester: "researcher-1", key: key)
            let page = try await access.fetch(AccessClient.Query(grant: grant), from: "manager-1")
            guard case .refused(let refusal) = page.response.content else {
                Issue.record("data was served though its access log could not be committed")
                throw FixtureError("served")
            }
            #expect(refusal.reason == .unavailable, "\(refusal)")
            #expect(page.readings.isEmpty)
            let counters = await manager.fetchCounters
            #expect(counters.served == 0 && counters.logsPublished == 1)
            #expect(try network.store("manager-1").accessLog(grant: grant).isEmpty)
        } catch {
            await manager.stop()
            _ = try? await running.value
            await network.shutdown()
            throw error
        }
        await manager.stop()
        _ = try? await running.value
        await network.shutdown()
    }
}
