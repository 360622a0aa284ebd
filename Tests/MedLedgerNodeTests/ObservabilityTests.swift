import Foundation
import MedLedgerBroker
import MedLedgerCore
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

@Suite("Metrics, the web page and a real browser, from running nodes", .serialized, .network)
struct ObservabilityTests {
    static let block = BlockParameters(maxReadings: 100, maxBytes: 1 << 20, timeoutMs: 50)
    let helper = NodeTests()

    /// A network (4 validators, 1 manager, each serving HTTP) that committed `count` readings of
    /// each of `devices` devices and refused one reading with a bad signature, one from an
    /// unknown device and one transaction that does not decode.
    func withTraffic(
        devices deviceCount: Int, readings count: UInt64, _ body: (TestNetwork, String) async throws -> Void
    ) async throws {
        let network = try await TestNetwork(managers: 1, block: Self.block)
        do {
            try await network.startAll()
            let devices = helper.devices(deviceCount)
            try await network.register(devices)
            _ = try await helper.send(network, devices: devices, seqs: 1...count)
            let topics = ChannelTopics(channel: network.channel.genesis.channel)
            let intruder = try await network.client("intruder")
            defer { intruder.shutdown() }
            let forged = network.channel.reading(device: "cuff-0", key: TestChannel.deviceKey(99), seq: count + 1)
            try await intruder.publish(topic: topics.readings("cuff-0"), payload: forged.bytes)
            let ghost = network.channel.reading(device: "ghost-1", key: TestChannel.deviceKey(98), seq: 1)
            try await intruder.publish(topic: topics.readings("ghost-1"), payload: ghost.bytes)
            try await intruder.publish(topic: topics.transactions("intruder"), payload: [0xA0])
            let manager = network.node("manager-1")
            try await eventually(.seconds(20), "both bad readings and the bad transaction refused") {
                let counters = await manager.counters
                let rejected = counters.readingsRejected
                return rejected["bad-signature"] == 1 && rejected["unknown-device"] == 1
                    && counters.transactionsRejected == 1
            }
            try await network.waitForHeight(await manager.height)
            let url = try #require(await manager.httpURL, "the manager serves HTTP")
            try await body(network, url)
        } catch {
            await network.shutdown()
            throw error
        }
        await network.shutdown()
    }

    @Test func everyNodeServesItsOwnMetricsThePagesAndItsStatus() async throws {
        try await withTraffic(devices: 2, readings: 20) { network, managerURL in
            let manager = network.node("manager-1")
            let height = await manager.height
            let counters = await manager.counters

            // The manager's metrics, scraped over HTTP.
            let scraped = try await httpGet(managerURL + "metrics")
            #expect(scraped.status == 200 && scraped.type.hasPrefix("text/plain; version=0.0.4"))
            let metrics = try PrometheusText(scraped.body)
            let me = ["channel": "ward-7", "node": "manager-1"]
            #expect(metrics.samples.allSatisfy { $0.labels["node"] == "manager-1" && $0.labels["channel"] == "ward-7" })
            #expect(metrics.value("medledger_readings_received_total", me) == 42)
            #expect(metrics.value("medledger_readings_accepted_total", me) == 40)
            #expect(metrics.value("medledger_readings_rejected_total", ["reason": "bad-signature"]) == 1)
            #expect(metrics.value("medledger_readings_rejected_total", ["reason": "unknown-device"]) == 1)
            #expect(metrics.value("medledger_readings_rejected_total", ["reason": "replayed"]) == 0)
            #expect(metrics.value("medledger_readings_committed_total") == Double(counters.readingsCommitted))
            #expect(counters.readingsCommitted > 0)
            let committed = try #require(metrics.value("medledger_blocks_committed_total"))
            let synced = try #require(metrics.value("medledger_blocks_synced_total"))
            #expect(committed >= 1 && committed + synced == Double(height))
            #expect(metrics.value("medledger_transactions_accepted_total") == 2)
            #expect(metrics.value("medledger_transactions_rejected_total") == 1)
            #expect(try #require(metrics.value("medledger_blocks_proposed_total")) >= 1)
            #expect(metrics.value("medledger_height") == Double(height))
            #expect(metrics.value("medledger_mempool_readings") == 0)
            #expect(metrics.value("medledger_mempool_bytes") == 0)
            #expect(metrics.value("medledger_mempool_transactions") == 0)
            #expect(try #require(metrics.value("medledger_store_size_bytes")) > 4096)
            #expect(try #require(metrics.value("medledger_mqtt_received_messages_total")) > 42)
            #expect(metrics.value("medledger_mqtt_dropped_messages_total") == 0)
            #expect(try #require(metrics.value("medledger_intake_verification_seconds_count")) >= 1)
            let commits = try #require(metrics.value("medledger_commit_latency_seconds_count"))
            #expect(commits >= 1 && commits <= committed)
            // Every council member is seen voting at the chain's height or above (idle rounds go on).
            try await eventually(.seconds(10), "the manager sees every validator at height \(height)") {
                let now = try PrometheusText(try await httpGet(managerURL + "metrics").body)
                return (1...4).allSatisfy { index in
                    (now.value("medledger_peer_height", ["peer": "validator-\(index)"]) ?? 0) >= Double(height)
                }
            }

            // The catalog is what is exported, each family with its help and type, and documented.
            let families = Set(metrics.samples.map { metrics.family(of: $0) })
            let catalog = Dictionary(uniqueKeysWithValues: NodeMetricsCatalog.all.map { ($0.name, $0) })
            #expect(families == Set(catalog.keys))
            let operations = try String(
                contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                    .appendingPathComponent("../../docs/OPERATIONS.md").standardized.path, encoding: .utf8)
            for (name, entry) in catalog {
                #expect(metrics.help[name] == entry.help, "\(name)'s HELP")
                #expect(metrics.types[name] == entry.type, "\(name)'s TYPE")
                let documented = operations.contains("| `\(name)` | \(entry.type) |")
                #expect(documented, "docs/OPERATIONS.md's Metrics table lists \(name) as a \(entry.type)")
                #expect(name.hasPrefix("medledger_"))
            }

            // A validator's own metrics, from the same process: its labels, its votes.
            let validatorURL = try #require(await network.node("validator-1").httpURL)
            #expect(validatorURL != managerURL)
            let validator = try PrometheusText(try await httpGet(validatorURL + "metrics").body)
            #expect(validator.samples.allSatisfy { $0.labels["node"] == "validator-1" })
            #expect(validator.value("medledger_readings_received_total") == 0)
            #expect(try #require(validator.value("medledger_vote_latency_seconds_count", ["step": "prevote"])) >= 1)
            #expect(try #require(validator.value("medledger_vote_latency_seconds_count", ["step": "precommit"])) >= 1)
            let validated = try #require(validator.value("medledger_blocks_validated_total"))
            #expect(validated >= 1)
            #expect(validator.value("medledger_block_verification_seconds_count") == validated)
            #expect(try #require(validator.value("medledger_peer_height", ["peer": "manager-1"])) >= Double(height))
            #expect(validator.value("medledger_peer_height", ["peer": "validator-1"]) == nil, "no gauge for itself")

            // The status, as JSON.
            let status = try await httpGet(managerURL + "status.json")
            #expect(status.status == 200 && status.type == "application/json")
            let decoded = try JSONDecoder().decode(NodeStatus.self, from: Data(status.body.utf8))
            #expect(decoded.node == "manager-1" && decoded.http == managerURL && decoded.height >= height)

            // The overview.
            let overview = try await httpGet(managerURL)
            #expect(overview.status == 200 && overview.type == "text/html; charset=utf-8")
            let store = try network.store("manager-1")
            #expect(overview.body.contains("<b id=\"height\">\(store.height)</b>"))
            #expect(overview.body.contains(try store.block(at: store.height).header.hash.hex))
            #expect(overview.body.contains("cuff-0") && overview.body.contains("cuff-1"))
            #expect(overview.body.contains("bad-signature") && overview.body.contains("unknown-device"))
            #expect(overview.body.contains("8480-6 = 120 mm[Hg]; 8462-4 = 80 mm[Hg]"), "the last reading, seq 20")

            // Every block's page: its hash, its signers, and each reading's proof as the store makes it.
            for level in 1...store.height {
                let page = try await httpGet(managerURL + "blocks/\(level)")
                #expect(page.status == 200)
                let stored = try store.storedBlock(at: level)
                #expect(page.body.contains(stored.header.hash.hex))
                #expect(page.body.contains(stored.header.readingsRoot.hex))
                for signature in stored.certificate.signatures {
                    #expect(page.body.contains("validator-\(signature.validator + 1)"))
                }
                let body = try store.block(at: level).body
                for position in body.readings.indices {
                    let proof = try store.proof(height: level, position: position)
                    #expect(page.body.contains(MerkleTree.leafHash(body.readings[position]).hex))
                    for node in proof.path { #expect(page.body.contains(node.hex), "block \(level) #\(position)") }
                }
            }
            #expect(try await httpGet(managerURL + "blocks/\(store.height + 1)").status == 404)
            #expect(try await httpGet(managerURL + "blocks/0").status == 400)
            #expect(try await httpGet(managerURL + "blocks/x").status == 400)
        }
    }

    @Test func theOverviewRendersItsDataInHeadlessChromium() async throws {
        try await withTraffic(devices: 1, readings: 5) { network, url in
            let directory = try TemporaryDirectory("chromium")
            defer { directory.remove() }
            let store = try network.store("manager-1")
            let head = try store.block(at: store.height).header.hash.hex

            // One run renders the page, writes the screenshot and prints the DOM it rendered.
            let screenshot = directory.file("overview.png")
            let dom = try HeadlessChromium.run(
                url, ["--screenshot=\(screenshot)", "--window-size=1200,1600", "--dump-dom"], in: directory)
            #expect(dom.contains("<b id=\"height\">\(store.height)</b>"), "the height in the rendered DOM")
            #expect(dom.contains(head), "the newest block's hash")
            #expect(dom.contains("cuff-0"), "the device")
            #expect(dom.contains("bad-signature"), "the rejection reason")

            let png = try HeadlessChromium.summarize(png: screenshot, in: directory)
            #expect(png.width == 1200 && png.height == 1600)
            #expect(png.colors >= 8, "text in several colours, not a blank page: \(png)")
            #expect(png.foreground > 0.01 && png.foreground < 0.6, "ink on a light background: \(png)")

            let block = try HeadlessChromium.run(url + "blocks/\(store.height)", ["--dump-dom"], in: directory)
            #expect(block.contains(head))
            let proof = try store.proof(height: store.height, position: 0)
            for node in proof.path { #expect(block.contains(node.hex)) }
        }
    }

    @Test func aFullPoolAnswersBusyAndCountsIt() async throws {
        let network = try await TestNetwork(managers: 1, block: Self.block)
        do {
            try await network.startAll()
            let device = helper.devices(1)[0]
            try await network.register([device])
            // The council loses its quorum, so nothing leaves the manager's pool of 5 readings.
            await network.stop("validator-1")
            await network.stop("validator-2")
            await network.stop("manager-1")
            network.poolCapacity = 5
            let manager = try await network.start("manager-1")
            let url = try #require(await manager.httpURL, "the manager serves HTTP")
            let topics = ChannelTopics(channel: network.channel.genesis.channel)
            let client = try await network.client(device.id)
            defer { client.shutdown() }
            try await client.subscribe(topics.receipts(device.id))
            for seq in UInt64(1)...8 {
                let reading = network.channel.reading(device: device.id, key: device.key, seq: seq)
                try await client.publish(topic: topics.readings(device.id), payload: reading.bytes)
            }
            let answers = try await within(.seconds(20), "eight answers") { () -> [UInt64: Receipt.Status] in
                var answers: [UInt64: Receipt.Status] = [:]
                for await message in client.messages {
                    guard let receipt = network.channel.trustedReceipt(message.payload, topic: message.topic) else {
                        continue
                    }
                    answers[receipt.seq] = receipt.status
                    if answers.count == 8 { break }
                }
                return answers
            }
            #expect((1...5).allSatisfy { answers[UInt64($0)] == .accepted }, "\(answers)")
            #expect((6...8).allSatisfy { answers[UInt64($0)] == .busy }, "\(answers)")
            try await eventually(.seconds(10), "the busy readings and the full pool in the metrics") {
                let metrics = try PrometheusText(try await httpGet(url + "metrics").body)
                return metrics.value("medledger_readings_busy_total") == 3
                    && metrics.value("medledger_mempool_readings") == 5
            }
        } catch {
            await network.shutdown()
            throw error
        }
        await network.shutdown()
    }

    @Test func idleRoundsAndABrokerRestartShowInTheMetrics() async throws {
        let network = try await TestNetwork(managers: 1, block: Self.block)
        var restarted: MosquittoBroker?
        do {
            try await network.startAll()
            let url = try #require(await network.node("validator-1").httpURL)
            @Sendable func scrape() async throws -> PrometheusText {
                try PrometheusText(try await httpGet(url + "metrics").body)
            }
            #expect(try await scrape().value("medledger_mqtt_reconnects_total") == 0)
            // Nothing to propose: the rounds of height 1 time out one after another.
            try await eventually(.seconds(20), "idle rounds counted") {
                let metrics = try await scrape()
                return (metrics.value("medledger_round_changes_total") ?? 0) >= 2
                    && (metrics.value("medledger_timeouts_total", ["step": "propose"]) ?? 0) >= 1
                    && (metrics.value("medledger_round") ?? 0) >= 2
                    // A round that makes no progress sends its votes again.
                    && (metrics.value("medledger_retransmissions_total") ?? 0) >= 1
            }
            #expect(try await scrape().value("medledger_height") == 0)
            restarted = try await network.broker.restart()
            try await eventually(.seconds(30), "the reconnect counted") {
                (try await scrape().value("medledger_mqtt_reconnects_total") ?? 0) >= 1
            }
        } catch {
            await network.shutdown()
            await restarted?.stop()
            throw error
        }
        await network.shutdown()
        await restarted?.stop()
    }
}
