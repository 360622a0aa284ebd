import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerFleet
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

let fleetLogger: Logger = {
    var logger = Logger(label: "medledger.fleet.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["FLEET_TEST_DEBUG"] == nil ? .error : .debug
    return logger
}()

/// Runs a test body against a network of 4 validators and `managers` managers on a real broker,
/// and shuts it down whatever happens.
func withNetwork<T>(
    managers: Int = 1, brokerConfig: MosquittoConfig? = nil, brokerPorts: [Int: Int] = [:],
    _ body: (TestNetwork) async throws -> T
) async throws -> T {
    let network = try await TestNetwork(
        managers: managers, block: BlockParameters(maxReadings: 200, maxBytes: 1 << 20, timeoutMs: 50),
        brokerConfig: brokerConfig, brokerPorts: brokerPorts)
    do {
        try await network.startAll()
        let result = try await body(network)
        await network.shutdown()
        return result
    } catch {
        await network.shutdown()
        throw error
    }
}

/// Fleet options on a test network's broker, with a state directory of the test's own.
func fleetOptions(_ network: TestNetwork, devices: Int, state: String) -> FleetOptions {
    var options = FleetOptions(
        devices: devices, brokers: [MQTTEndpoint(host: network.broker.host, port: network.broker.port)],
        genesis: network.channel.genesis, stateDirectory: state)
    options.rate = 4
    options.duration = .seconds(3)
    options.resendInterval = .seconds(3)
    // Generous: a drain ends as soon as every reading is answered, so only a loaded machine
    // waits longer, and there the chain may need it.
    options.drainTime = .seconds(120)
    options.settleTime = .seconds(2)
    options.tickMs = 10
    options.disconnectPause = .milliseconds(500)
    return options
}

/// Runs a fleet to the end and audits it against a validator's replica.
func runAndAudit(_ fleet: Fleet, _ network: TestNetwork, from height: UInt64 = 1) async throws -> FleetReport {
    let report = try await within(.seconds(240), "the fleet's run (its duration and drain)") { try await fleet.run() }
    if report.pending != 0 {
        Issue.record("\(report.pending) readings pending: \(report.mismatches)\n\(await network.describe())")
    }
    return try await fleet.audit(againstDatabase: network.databasePath("validator-2"), fromHeight: height)
}

@Suite("The fleet simulator against real nodes over a real broker", .serialized, .network)
struct FleetNetworkTests {
    @Test func aFleetWithEveryFaultIsAccountedForExactlyAndMatchesTheLedger() async throws {
        try await withNetwork(managers: 2) { network in
            let state = try TemporaryDirectory("fleet-faults")
            defer { state.remove() }
            var options = fleetOptions(network, devices: 24, state: state.path)
            options.rate = 6
            options.faults = .every(0.05)
            options.unregisteredShare = 0.15
            options.offlineShare = 0.2
            options.offlineDuration = .seconds(1)
            options.algorithms = .mixed
            options.burstSize = 5
            let fleet = try Fleet(options: options, logger: fleetLogger)
            let summary = try await fleet.register(
                registrarID: "registrar-1", registrarKey: network.channel.registrarKey)
            // A registration resubmitted while its first copy was being committed comes back as
            // device-exists: it counts as already registered.
            #expect(summary.registered + summary.alreadyRegistered + summary.leftUnregistered == 24)
            #expect(summary.leftUnregistered > 0)
            let report = try await runAndAudit(fleet, network)
            #expect(report.isCorrect, "\(report.mismatches)")
            #expect(report.audited)
            #expect(report.committed == report.honest)
            #expect(report.committed >= 40)
            #expect(report.auditedReadings == report.committed)
            // Every kind of fault was made, and rejected for its reason. A replay needs a committed
            // reading of its device: when the machine is so loaded that none was committed within
            // the run, it stays owed (NodeTests covers the replayed rule on its own).
            let replaysMade = (report.faulty[Fault.replayed.rawValue] ?? 0) > 0
            for fault in Fault.allCases where !fault.isBehaviour && !(fault == .replayed && !replaysMade) {
                #expect((report.faulty[fault.rawValue] ?? 0) > 0, "\(fault) was never drawn")
            }
            #expect(replaysMade || report.replaysOwed > 0, "no replay was drawn")
            for reason: RejectionReason in [
                .badSignature, .clockSkew, .implausibleValue, .malformed, .replayed, .tooLarge, .unitMismatch,
                .unknownDevice, .wrongChannel,
            ] where reason != .replayed || replaysMade {
                #expect((report.rejected[reason.rawValue] ?? 0) > 0, "no \(reason) rejection")
            }
            #expect(report.rejected[RejectionReason.replayed.rawValue] == report.faulty[Fault.replayed.rawValue])
            #expect(report.awaitingRejection.isEmpty)
            #expect(report.resent > 0, "disconnects and offline periods make devices send again")
            #expect(report.latency != nil)
        }
    }

    /// The every-fault test once failed in CI with readings in the ledger whose committed receipts
    /// the fleet never counted: the drain's end is a wall-clock deadline, and on a machine whose
    /// cooperative pool is held (a test run's CPU-bound tests), receipts that had reached the
    /// fleet's connections waited there, unread, until after it. Here a broker alone, the test
    /// answering as a manager would: it answers every reading during the drain and then holds
    /// the pool past the drain's end. Every answer must still count.
    @Test func receiptsThatArrivedBeforeTheDrainEndedCountEvenWhenTheyAreReadAfterIt() async throws {
        let directory = try TemporaryDirectory("fleet-late-receipts")
        defer { directory.remove() }
        let broker = try await MosquittoBroker.start(
            config: MosquittoConfig(text: BrokerConfigs.dev()), in: directory.file("broker"), logger: fleetLogger)
        do {
            let channel = TestChannel(channel: "ward-7")
            var options = FleetOptions(
                devices: 20, brokers: [MQTTEndpoint(host: broker.host, port: broker.port)], genesis: channel.genesis,
                stateDirectory: directory.file("fleet"))
            options.rate = 20
            options.duration = .seconds(1)
            options.drainTime = .seconds(2)
            options.resendInterval = .seconds(600)
            options.tickMs = 10
            let fleet = try Fleet(options: options, logger: fleetLogger)  // not registered: unknown-device
            let manager = try MQTTClient(
                configuration: MQTTConfiguration(
                    host: broker.host, port: broker.port, clientID: "late-manager-\(UUID().uuidString.prefix(6))"),
                logger: fleetLogger)
            defer { manager.shutdown() }
            try await within(.seconds(10), "connect the manager") { try await manager.connect() }
            try await manager.subscribe("medledger/v1/ward-7/readings/#", qos: .atLeastOnce)
            let running = Task { try await fleet.run() }
            try await eventually(.seconds(20), "the fleet's drain") {
                [.draining, .finished].contains(await fleet.currentPhase)
            }
            let sent = await fleet.stats().sent
            #expect(sent > 0)
            // Every reading sent, answered now, during the drain.
            let readings = try await within(.seconds(20), "the \(sent) readings at the manager") {
                var readings: [SignedReading] = []
                for await message in manager.messages {
                    if let reading = try? SignedReading(decoding: message.payload) { readings.append(reading) }
                    if readings.count == sent { break }
                }
                return readings
            }
            // Each reading gets two forged committed receipts first (one unsigned, one signed in
            // manager-1's name with another key): the devices must ignore and count them, and keep
            // the reading until the manager's signed answer.
            let managerID = channel.genesis.managers[0].id
            let forger = PrivateKey(generating: .ed25519)
            for reading in readings {
                let topic = "medledger/v1/ward-7/receipts/\(reading.keyID)"
                let forged = Receipt(
                    seq: reading.reading.seq, status: .committed(height: 1, blockHash: Hash256.sha256([1])))
                let answer = Receipt(seq: reading.reading.seq, status: .rejected(.unknownDevice))
                for payload in [
                    forged.encoded(), try forged.published(topic: topic, manager: managerID, key: forger),
                    try answer.published(topic: topic, manager: managerID, key: channel.managerKeys[0]),
                ] {
                    try manager.enqueue(topic: topic, payload: payload, qos: .atLeastOnce)
                }
            }
            // Hold every thread of the cooperative pool until the drain's deadline has passed.
            let holders = (0..<max(2, ProcessInfo.processInfo.activeProcessorCount)).map { _ in
                Task.detached { _ = usleep(3_000_000) }
            }
            for holder in holders { await holder.value }
            let report = try await within(.seconds(60), "the fleet's end") { try await running.value }
            #expect(report.sent == sent)
            #expect(report.rejected[RejectionReason.unknownDevice.rawValue] == sent, "\(report.summary())")
            #expect(report.awaitingRejection.isEmpty && report.isCorrect, "\(report.mismatches)")
            #expect(report.untrustedReceipts == ["unsigned": sent, "bad-signature": sent], "\(report.summary())")
            await broker.stop()
        } catch {
            await broker.stop()
            throw error
        }
    }

    @Test func aRestartedFleetContinuesItsSeqsAndNeverReusesOne() async throws {
        try await withNetwork { network in
            let state = try TemporaryDirectory("fleet-restart")
            defer { state.remove() }
            var options = fleetOptions(network, devices: 5, state: state.path)
            options.duration = .seconds(1.5)
            options.seqChunk = 8
            let first = try Fleet(options: options, logger: fleetLogger)
            try await first.register(registrarID: "registrar-1", registrarKey: network.channel.registrarKey)
            let firstReport = try await runAndAudit(first, network)
            #expect(firstReport.isCorrect, "\(firstReport.mismatches)")
            let ids = await first.devices.map(\.id)
            let store = try network.store("validator-2")
            var highest: [String: UInt64] = [:]
            for id in ids {
                let seqs = try store.readings(matching: ReadingQuery(device: id)).map(\.seq)
                #expect(!seqs.isEmpty)
                highest[id] = seqs.max()
            }
            // The same state directory: the same devices, already registered, after their reservations.
            let second = try Fleet(options: options, logger: fleetLogger)
            #expect(await second.devices.map(\.id) == ids)
            let summary = try await second.register(
                registrarID: "registrar-1", registrarKey: network.channel.registrarKey)
            #expect(summary.registered == 0)
            let reservations = try SeqReservations(path: options.reservationsPath, chunk: options.seqChunk)
            let secondReport = try await runAndAudit(second, network)
            #expect(secondReport.isCorrect, "\(secondReport.mismatches)")
            #expect(secondReport.rejected["replayed"] == nil)
            let after = try network.store("validator-2")
            for id in ids {
                let seqs = try after.readings(matching: ReadingQuery(device: id)).map(\.seq)
                let later = seqs.filter { $0 > highest[id]! }
                #expect(!later.isEmpty, "\(id) committed nothing in its second run")
                #expect(
                    later.min()! > reservations.reservation(id) - UInt64(options.seqChunk),
                    "the second run starts after the first run's reservation")
                #expect(Set(seqs).count == seqs.count)
            }
        }
    }

    @Test func whenItsBrokerDiesTheBacklogFailsOverAndNothingIsCommittedTwice() async throws {
        try await withNetwork { network in
            // Broker B, bridged to A (where the nodes are): the hospital's own broker and another.
            let directory = try TemporaryDirectory("fleet-failover")
            defer { directory.remove() }
            let bridge = """
                connection to-a
                address \(network.broker.host):\(network.broker.port)
                bridge_protocol_version mqttv50
                remote_clientid bridge-b-\(UUID().uuidString.prefix(6))
                cleansession false
                try_private true
                notifications false
                restart_timeout 1
                topic medledger/v1/ward-7/# both 1

                """
            let brokerB = try await MosquittoBroker.start(
                config: MosquittoConfig(text: BrokerConfigs.dev() + bridge), in: directory.file("b"),
                logger: fleetLogger)
            let atB = try MQTTClient(
                configuration: MQTTConfiguration(
                    host: brokerB.host, port: brokerB.port, clientID: "probe-b-\(UUID().uuidString.prefix(6))"),
                logger: fleetLogger)
            let atA = try await network.client("probe-a")
            defer {
                atA.shutdown()
                atB.shutdown()
            }
            try await within(.seconds(10), "connect at B") { try await atB.connect() }
            try await atA.subscribe("medledger/v1/ward-7/probe")
            try await atB.subscribe("medledger/v1/ward-7/readings/#")
            try await within(.seconds(30), "the bridge to come up") {
                while atA.receivedMessages == 0 {
                    try await atB.publish(topic: "medledger/v1/ward-7/probe", payload: [1])
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            let state = try TemporaryDirectory("fleet-failover-state")
            defer { state.remove() }
            var options = fleetOptions(network, devices: 8, state: state.path)
            let dead = try MosquittoBroker.freePort()
            options.brokers = [
                MQTTEndpoint(host: "127.0.0.1", port: dead), MQTTEndpoint(host: brokerB.host, port: brokerB.port),
                MQTTEndpoint(host: network.broker.host, port: network.broker.port),
            ]
            options.duration = .seconds(4)
            let fleet = try Fleet(options: options, logger: fleetLogger)
            try await fleet.register(registrarID: "registrar-1", registrarKey: network.channel.registrarKey)
            let running = Task { try await fleet.run() }
            // Readings flow through B, then B dies without warning.
            try await eventually(.seconds(20), "readings committed through B") {
                await fleet.stats().committed >= 20
            }
            let throughB = atB.receivedMessages
            #expect(throughB > 0, "the devices chose B (the dead broker first in the list is skipped)")
            brokerB.kill9()
            let atKill = await fleet.stats().committed
            let report = try await within(.seconds(240), "the run") { try await running.value }
            #expect(report.committed > atKill + 20, "readings went on through A")
            let audited = try await fleet.audit(againstDatabase: network.databasePath("validator-2"))
            #expect(audited.isCorrect, "\(audited.mismatches)")
            #expect(audited.committed == audited.honest)
            #expect(audited.auditedReadings == audited.committed, "each reading once")
            await brokerB.stop()
        }
    }

    @Test func anOfflineDeviceDeliversItsBacklogWithItsOldTimestamps() async throws {
        try await withNetwork { network in
            let state = try TemporaryDirectory("fleet-offline")
            defer { state.remove() }
            var options = fleetOptions(network, devices: 3, state: state.path)
            // Offline once each, from between 0.5 and 2.5 s for 2 s: back before publishing ends.
            options.offlineShare = 1
            options.offlineDuration = .seconds(2)
            options.duration = .seconds(5)
            let fleet = try Fleet(options: options, logger: fleetLogger)
            try await fleet.register(registrarID: "registrar-1", registrarKey: network.channel.registrarKey)
            let report = try await runAndAudit(fleet, network)
            #expect(report.isCorrect, "\(report.mismatches)")
            let store = try network.store("validator-2")
            for device in await fleet.devices {
                let readings = try store.readings(matching: ReadingQuery(device: device.id))
                #expect(readings.count >= 5)
                var oldest: UInt64 = 0
                for reading in readings {
                    let blockTime = try store.block(at: reading.height).header.time
                    if blockTime > reading.time { oldest = max(oldest, blockTime - reading.time) }
                }
                #expect(oldest >= 1000, "\(device.id): its backlog was committed \(oldest) ms after it was sampled")
            }
        }
    }

    @Test func revokedDevicesAreRefusedFromTheRevocationOn() async throws {
        try await withNetwork { network in
            let state = try TemporaryDirectory("fleet-revoke")
            defer { state.remove() }
            var options = fleetOptions(network, devices: 6, state: state.path)
            options.duration = .seconds(4)
            let fleet = try Fleet(options: options, logger: fleetLogger)
            try await fleet.register(registrarID: "registrar-1", registrarKey: network.channel.registrarKey)
            let running = Task { try await fleet.run() }
            try await eventually(.seconds(20), "readings committed") { await fleet.stats().committed >= 10 }
            let revoked = Array(await fleet.devices.suffix(2).map(\.id))
            try await fleet.revoke(revoked)
            let report = try await within(.seconds(240), "the run") { try await running.value }
            #expect(report.afterRevocation > 0)
            #expect((report.rejected["revoked-device"] ?? 0) >= report.afterRevocation)
            let audited = try await fleet.audit(againstDatabase: network.databasePath("validator-2"))
            #expect(audited.isCorrect, "\(audited.mismatches)")
            #expect(await fleet.devices.filter(\.revoked).map(\.id) == revoked)
            // Nothing of theirs is committed after the block that revoked them.
            let store = try network.store("validator-2")
            var revokedAt: [String: UInt64] = [:]
            for height in 1...store.height {
                for bytes in try store.block(at: height).body.transactions {
                    if case .revokeDevice(let device) = try SignedTransaction(decoding: bytes).transaction.body {
                        revokedAt[device] = height
                    }
                }
            }
            for id in revoked {
                #expect(store.state.devices[id]?.revoked == true)
                let at = try #require(revokedAt[id])
                let heights = try store.readings(matching: ReadingQuery(device: id)).map(\.height)
                #expect(!heights.isEmpty)
                #expect(heights.allSatisfy { $0 < at })
            }
        }
    }

    @Test func theCommandLineReportsAsJSONAndExitsNonZeroOnAMismatch() async throws {
        try await withNetwork { network in
            let state = try TemporaryDirectory("fleet-cli")
            defer { state.remove() }
            let keyPath = state.file("registrar.key")
            try network.channel.registrarKey.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
            let executable = URL(fileURLWithPath: ToolRunner.medledgerPath).deletingLastPathComponent()
                .appendingPathComponent("medledger-fleet").path
            let common = [
                "--broker", "\(network.broker.host):\(network.broker.port)", "--genesis", network.genesisPath,
                "--registrar-key", keyPath, "--registrar-id", "registrar-1", "--devices", "4", "--rate", "4",
                "--duration", "1.5", "--state", state.file("fleet"), "--audit-db",
                network.databasePath("validator-1"), "--status-interval", "0", "--faults", "malformed=0.1",
            ]
            let good = try ToolRunner.run(
                executable, common + ["--json", "--log-format", "json", "--log-level", "info"], in: state.path)
            #expect(good.status == 0, "\(good.stderr)\n\(good.stdout)")
            // Its log: one JSON object a line, the fleet's start among them.
            let logLines = good.stderr.split(separator: "\n").map {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
            #expect(!logLines.isEmpty && logLines.allSatisfy { $0 != nil }, "\(good.stderr)")
            #expect(
                logLines.contains { $0?["message"] as? String == "fleet running" && $0?["devices"] as? String == "4" },
                "\(good.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(good.stdout.utf8)) as? [String: Any]
            let report = try #require(object?["report"] as? [String: Any])
            #expect(report["mismatchCount"] as? Int == 0)
            #expect((report["committed"] as? Int ?? 0) > 0)
            #expect(report["audited"] as? Bool == true)
            #expect((object?["peakResidentBytes"] as? Int ?? 0) > 0)

            // A fleet file that claims its devices are registered, on a ledger that never heard of
            // them: every reading is refused as unknown-device, against the fleet's expectation.
            let path = state.file("fleet/fleet.json")
            var file = try FleetFile.load(path)
            file.prefix = "ghost"
            for index in file.devices.indices {
                file.devices[index].id = "ghost-\(index)"
                file.devices[index].registered = false
            }
            try file.write(path)
            let bad = try ToolRunner.run(executable, common + ["--no-register"], in: state.path)
            #expect(bad.status == 0, "not registered per the file: refusals are expected\n\(bad.stdout)")
            for index in file.devices.indices { file.devices[index].registered = true }
            try file.write(path)
            let wrong = try ToolRunner.run(executable, common + ["--no-register"], in: state.path)
            #expect(wrong.status == 1, "\(wrong.stderr)\n\(wrong.stdout)")
            #expect(wrong.stdout.contains("expected committed, got rejected (unknown-device)"))
            let usage = try ToolRunner.run(executable, ["--devices", "0"], in: state.path)
            #expect(usage.status == 64)
        }
    }

    /// The broker of the secured-fleet test: the nodes on a plain loopback listener of their own;
    /// devices and the registrar over TLS, by password (8883) or by their own certificate (8884).
    static func securedBroker(certificates: String, passwordFile: String) -> MosquittoConfig {
        let tls = [
            "cafile \(certificates)/ca.crt", "certfile \(certificates)/broker.crt",
            "keyfile \(certificates)/broker.key",
        ].joined(separator: "\n")
        return MosquittoConfig(
            text: """
                per_listener_settings true
                max_queued_messages 1000000
                max_queued_bytes 0
                max_inflight_messages 1000
                persistence false
                log_type error
                log_type warning
                listener 1883 127.0.0.1
                allow_anonymous true
                listener 8883 127.0.0.1
                \(tls)
                allow_anonymous false
                password_file \(passwordFile)
                listener 8884 127.0.0.1
                \(tls)
                require_certificate true
                use_identity_as_username true

                """)
    }

    /// `medledger-fleet --tls-ca` with `--password-file`, or with `--cert`/`--key` per device:
    /// its devices and registrar connect over TLS as themselves, and the run is committed and
    /// audited; a wrong password and plain MQTT to a TLS listener are refused, named.
    @Test func theCommandLineConnectsOverTLSByPasswordOrByEachDevicesCertificate() async throws {
        let setup = try TemporaryDirectory("fleet-tls")
        defer { setup.remove() }
        let certificates = setup.file("certs")
        let devices = 3
        try TestCertificates.make(
            in: certificates, servers: ["broker"], identities: ["registrar-1"] + (0..<devices).map { "cert-\($0)" })
        // The broker's password file (mosquitto_passwd's format) and the fleet's (USER:PASSWORD).
        let registrarPassword = PasswordFile.randomPassword()
        let devicePassword = PasswordFile.randomPassword()
        let entries =
            [PasswordFile.entry(user: "registrar-1", password: registrarPassword)]
            + (0..<devices).map { PasswordFile.entry(user: "pw-\($0)", password: devicePassword) }
        try (entries.joined(separator: "\n") + "\n").write(
            toFile: setup.file("passwd"), atomically: true, encoding: .utf8)
        try "registrar-1:\(registrarPassword)\n*:\(devicePassword)\n".write(
            toFile: setup.file("passwords.txt"), atomically: true, encoding: .utf8)
        try "registrar-1:\(registrarPassword)\n*:not-the-password\n".write(
            toFile: setup.file("wrong.txt"), atomically: true, encoding: .utf8)
        let passwordPort = try MosquittoBroker.freePort()
        let certificatePort = try MosquittoBroker.freePort()
        try await withNetwork(
            brokerConfig: Self.securedBroker(certificates: certificates, passwordFile: setup.file("passwd")),
            brokerPorts: [8883: passwordPort, 8884: certificatePort]
        ) { network in
            let keyPath = setup.file("registrar.key")
            try network.channel.registrarKey.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
            let executable = URL(fileURLWithPath: ToolRunner.medledgerPath).deletingLastPathComponent()
                .appendingPathComponent("medledger-fleet").path
            func fleet(_ prefix: String, port: Int, _ more: [String]) throws -> ToolRunner.Result {
                try ToolRunner.run(
                    executable,
                    [
                        "--broker", "127.0.0.1:\(port)", "--genesis", network.genesisPath, "--registrar-key", keyPath,
                        "--registrar-id", "registrar-1", "--devices", "\(devices)", "--rate", "4", "--duration", "1.5",
                        "--drain", "20", "--prefix", prefix, "--state", setup.file("state-\(prefix)"), "--audit-db",
                        network.databasePath("validator-1"), "--status-interval", "0", "--json",
                    ] + more, in: setup.path)
            }
            func committed(_ result: ToolRunner.Result) throws -> Int {
                let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
                let report = try #require(object?["report"] as? [String: Any], "\(result.stdout)")
                #expect(report["mismatchCount"] as? Int == 0, "\(result.stdout)")
                #expect(report["audited"] as? Bool == true)
                return report["committed"] as? Int ?? 0
            }
            let ca = "\(certificates)/ca.crt"
            let byPassword = try fleet(
                "pw", port: passwordPort, ["--tls-ca", ca, "--password-file", setup.file("passwords.txt")])
            #expect(byPassword.status == 0, "\(byPassword.stderr)\n\(byPassword.stdout)")
            #expect(try committed(byPassword) > 0)
            let byCertificate = try fleet(
                "cert", port: certificatePort,
                ["--tls-ca", ca, "--cert", "\(certificates)/{device}.crt", "--key", "\(certificates)/{device}.key"])
            #expect(byCertificate.status == 0, "\(byCertificate.stderr)\n\(byCertificate.stdout)")
            #expect(try committed(byCertificate) > 0)
            let store = try network.store("validator-1")
            for id in (0..<devices).map({ "pw-\($0)" }) + (0..<devices).map({ "cert-\($0)" }) {
                #expect(try !store.readings(matching: ReadingQuery(device: id)).isEmpty, "\(id) committed nothing")
            }

            // The devices' password is wrong: the broker refuses them, and the run says so.
            let wrong = try fleet(
                "pw", port: passwordPort,
                ["--tls-ca", ca, "--password-file", setup.file("wrong.txt"), "--no-register", "--drain", "2"])
            #expect(wrong.status != 0, "\(wrong.stdout)")
            #expect(wrong.stdout.contains("never connected to a broker"), "\(wrong.stdout)")
            // The registrar's password is wrong: registering fails, naming it.
            try "registrar-1:nope\n".write(toFile: setup.file("wrong.txt"), atomically: true, encoding: .utf8)
            let refused = try fleet(
                "pw2", port: passwordPort, ["--tls-ca", ca, "--password-file", setup.file("wrong.txt")])
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("registrar 'registrar-1' cannot connect"), "\(refused.stderr)")
            // Plain MQTT to the TLS listener never connects.
            let plain = try fleet("pw3", port: passwordPort, ["--password-file", setup.file("passwords.txt")])
            #expect(plain.status == 2, "\(plain.stderr)")
            #expect(plain.stderr.contains("cannot connect"), "\(plain.stderr)")
        }
    }
}
