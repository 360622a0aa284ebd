import Foundation
import Logging
import MedLedgerBroker
import MedLedgerConsensus
import MedLedgerCore
import MedLedgerFleet
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

/// Attacks on a running `medledger devnet` (its nodes as processes, its broker), while an honest
/// fleet publishes beside them: the network must go on, and the fleet's accounting must be exact
/// (every honest reading committed once, with its bytes, at the height its receipt named).
@Suite("Attacks on a devnet of real processes, with an honest fleet beside them", .serialized, .network)
struct AdversarialTests {
    /// The devnet's files, and the attacker's device (registered: its readings are signed with a
    /// key the ledger knows).
    struct Scene {
        let directory: TemporaryDirectory
        let devnet: RunningDevnet
        let file: DevnetFile
        let genesis: Genesis
        let topics: ChannelTopics
        let attackerKey = PrivateKey(generating: .ed25519)
        let attacker = "intruder-1"

        func client(_ id: String) async throws -> MQTTClient {
            var configuration = MQTTConfiguration(host: file.broker.host, port: file.broker.port, clientID: id)
            configuration.username = id
            let client = try MQTTClient(configuration: configuration, logger: fleetLogger)
            try await within(.seconds(10), "connect \(id)") { try await client.connect() }
            return client
        }

        func height(_ id: String) -> UInt64 { devnet.status(id)?.height ?? 0 }

        /// Starts `medledger devnet` (no fleet of its own) in `directory` and reads its files.
        static func start(_ directory: TemporaryDirectory, channel: String, arguments: [String] = []) async throws
            -> Scene
        {
            let devnet = try await RunningDevnet.start(in: directory.path, channel: channel, arguments: arguments)
            do {
                let file = try DevnetFile.load(directory: devnet.directory)
                let genesis = try JSONDecoder().decode(
                    Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: file.genesis)))
                return Scene(
                    directory: directory, devnet: devnet, file: file, genesis: genesis,
                    topics: ChannelTopics(channel: genesis.channel))
            } catch {
                _ = devnet.stop()
                throw error
            }
        }

        /// An honest fleet of the channel, registered and running, with the height it started at.
        struct HonestFleet {
            let fleet: Fleet
            let running: Task<FleetReport, any Error>
            let startHeight: UInt64
        }

        /// Registers and starts an honest fleet (5 readings/s per device), once its devices are connected.
        func startFleet(devices: Int, seconds: Int) async throws -> HonestFleet {
            var options = FleetOptions(
                devices: devices, brokers: [MQTTEndpoint(host: file.broker.host, port: file.broker.port)],
                genesis: genesis, stateDirectory: directory.file("fleet"))
            options.rate = 5
            options.duration = .seconds(seconds)
            options.resendInterval = .seconds(3)
            options.drainTime = .seconds(120)
            options.settleTime = .seconds(2)
            let fleet = try Fleet(options: options, logger: fleetLogger)
            let registrarKey = try PrivateKey(pem: String(contentsOfFile: file.registrarKey, encoding: .utf8))
            try await fleet.register(registrarID: file.registrarId, registrarKey: registrarKey)
            let startHeight = height("validator-1")
            let running = Task { try await fleet.run() }
            try await eventually(.seconds(30), "the fleet running") { await fleet.currentPhase == .running }
            try await eventually(.seconds(30), "the fleet's devices connected") {
                await fleet.stats().connected == devices
            }
            return HonestFleet(fleet: fleet, running: running, startHeight: startHeight)
        }

        /// Waits for the fleet's end and audits it against validator-1's ledger: every honest
        /// reading it made committed exactly once, with its bytes, where its receipt said.
        @discardableResult
        func expectExactAudit(_ honest: HonestFleet) async throws -> FleetReport {
            let report = try await within(.seconds(240), "the fleet's run") { try await honest.running.value }
            #expect(report.pending == 0, "\(report.summary())")
            let audited = try await honest.fleet.audit(
                againstDatabase: file.databases["validator-1"]!, fromHeight: honest.startHeight + 1)
            #expect(audited.isCorrect, "\(audited.mismatches)\n\(audited.summary())")
            // (How many the fleet made depends on the machine's load; that each was committed does not.)
            #expect(audited.committed == audited.honest && audited.honest > 0, "\(audited.summary())")
            return audited
        }

        /// Registers the attacker's device, as a registrar would.
        func registerAttacker() throws {
            let pub = directory.file("\(attacker).pub")
            try attackerKey.publicKey.pemRepresentation.write(toFile: pub, atomically: true, encoding: .utf8)
            let registered = try ToolRunner.medledger(
                "device", "register", "--devnet", devnet.directory, "--device", attacker, "--public-key", pub,
                in: directory.path)
            #expect(registered.status == 0, "\(registered.stderr)")
        }

        /// Publishes the attacker's valid readings (20 every 200 ms, so that blocks keep coming)
        /// until `done`, for 90 s times the suite's patience at most.
        func keepPublishing(until what: String, _ done: () -> Bool) async throws {
            let device = try await client(attacker)
            defer { device.shutdown() }
            var seq: UInt64 = 1
            let deadline = ContinuousClock.now + .seconds(90) * testPatience
            while !done() {
                guard ContinuousClock.now < deadline else { throw FixtureError("timed out waiting for \(what)") }
                for _ in 0..<20 {
                    try device.enqueue(
                        topic: topics.readings(attacker), payload: try reading(seq: seq, time: WallClock.nowMs()),
                        qos: .atLeastOnce)
                    seq += 1
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }

        /// A reading of the attacker, its payload signed whatever its integers (the signing API
        /// refuses a seq out of range; an attacker does not use it).
        func reading(seq: UInt64, time: UInt64, records: [ReadingRecord]? = nil) throws -> [UInt8] {
            let reading = Reading(
                channel: genesis.channel, device: attacker, seq: seq, time: time,
                records: records ?? [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(70))])
            return try COSESign1.sign(
                payload: reading.payloadBytes(), keyID: Array(attacker.utf8), key: attackerKey
            ).encoded()
        }
    }

    /// Processes a test started beside the devnet's (restarted or replaced nodes), stopped at its end.
    final class Leftovers: @unchecked Sendable {
        // @unchecked Sendable: only the test's own task touches it, one call at a time.
        var processes: [ChildProcess] = []
        var pids: [Int32] = []

        func stopAll() async {
            for pid in pids { kill(pid, SIGKILL) }
            for process in processes { await process.stop(grace: .seconds(5)) }
        }
    }

    /// Runs `body` on a devnet started for it, then stops what it started and the devnet (which
    /// verifies every replica); returns what the devnet printed.
    @discardableResult
    func withDevnet(
        _ channel: String, arguments: [String] = [], _ body: (Scene, Leftovers) async throws -> Void
    ) async throws -> ToolRunner.Result {
        let directory = try TemporaryDirectory(channel)
        defer { directory.remove() }
        let scene = try await Scene.start(directory, channel: channel, arguments: arguments)
        let leftovers = Leftovers()
        do {
            try await body(scene, leftovers)
        } catch {
            await leftovers.stopAll()
            let result = scene.devnet.stop()
            throw FixtureError("\(error)\n--- devnet:\n\(result.stdout)\n\(result.stderr)")
        }
        await leftovers.stopAll()
        return scene.devnet.stop()
    }

    @Test func theNetworkGoesOnAndTheHonestFleetIsAccountedForExactly() async throws {
        let result = try await withDevnet("adversary", arguments: ["--max-readings", "200"]) { scene, leftovers in
            try await attack(scene, leftovers)
        }
        #expect(result.stdout.contains("every replica verifies from genesis"), "\(result.stdout)\n\(result.stderr)")
    }

    /// Runs every attack while the fleet publishes.
    func attack(_ scene: Scene, _ leftovers: Leftovers) async throws {
        try scene.registerAttacker()

        // The honest fleet: 30 devices, 5 readings/s each, for 25 s.
        let honest = try await scene.startFleet(devices: 30, seconds: 25)
        let fleet = honest.fleet
        let ids = await fleet.devices.map(\.id)

        let intruder = try await scene.client(scene.attacker)
        defer { intruder.shutdown() }
        let topic = scene.topics.readings(scene.attacker)
        // 1. Edge integers: seq and time at 0, 2^63 and 2^64-1 (malformed or refused). (The largest
        //    valid seq, 2^63-1, goes last: once committed, every lower seq is a replay.)
        let now = WallClock.nowMs()
        for (seq, time) in [(0, now), (1 << 63, now), (UInt64.max, now), (1, 1 << 63), (2, UInt64.max)]
            as [(UInt64, UInt64)]
        {
            try await intruder.publish(topic: topic, payload: try scene.reading(seq: seq, time: time))
        }
        // 2. A 2 MB message, and a flood of garbage.
        var random = SeededRandom(seed: 16)
        try await intruder.publish(topic: topic, payload: random.bytes(2_000_000))
        for _ in 0..<2000 {
            try intruder.enqueue(topic: topic, payload: random.bytes(Int(random.next() % 1500)), qos: .atLeastOnce)
        }
        // 3. A flood of valid readings (past its share of each manager's pool: busy).
        for seq in UInt64(10)..<3010 {
            try intruder.enqueue(topic: topic, payload: try scene.reading(seq: seq, time: now), qos: .atLeastOnce)
        }
        // 4. Forged receipts to every honest device: unsigned, and signed with a key of no manager.
        let forger = try await scene.client("forger")
        defer { forger.shutdown() }
        let stranger = PrivateKey(generating: .ed25519)
        for id in ids {
            let receipts = scene.topics.receipts(id)
            for seq in UInt64(1)...3 {
                let forged = Receipt(seq: seq, status: .committed(height: 1, blockHash: Hash256.sha256([1])))
                try forger.enqueue(topic: receipts, payload: forged.encoded(), qos: .atLeastOnce)
                try forger.enqueue(
                    topic: receipts,
                    payload: try forged.published(topic: receipts, manager: "manager-1", key: stranger),
                    qos: .atLeastOnce)
            }
        }
        // 5. kill -9 of a manager under load: the other goes on.
        let manager2 = try #require(scene.devnet.status("manager-2"))
        kill(manager2.pid, SIGKILL)
        // 6. kill -9 of a validator in a loop: killed, restarted from its store and journal, three
        //    times; the chain goes on meanwhile (one of four down at a time).
        var validator: ChildProcess?
        var pid = try #require(scene.devnet.status("validator-4")).pid
        var seq: UInt64 = 10_000
        for round in 1...3 {
            let before = scene.height("validator-1")
            kill(pid, SIGKILL)
            _ = await validator?.wait()
            // Readings of the attacker's own keep blocks coming whether or not the fleet is still
            // publishing (on a loaded machine this loop can outlast the fleet's run).
            for _ in 0..<100 {
                try intruder.enqueue(topic: topic, payload: try scene.reading(seq: seq, time: now), qos: .atLeastOnce)
                seq += 1
            }
            try await eventually(.seconds(60), "the chain going on without validator-4 (round \(round))") {
                scene.height("validator-1") >= before + 1
            }
            let started = try ChildProcess(
                ToolRunner.medledgerPath, arguments: ["node", "--config", scene.file.nodes["validator-4"]!],
                logPath: scene.directory.file("validator-4-\(round).log"))
            validator = started
            leftovers.processes.append(started)
            pid = started.pid
            let restartedPid = started.pid
            try await eventually(.seconds(60), "validator-4 catching up (round \(round))") {
                scene.devnet.status("validator-4").map { $0.pid == restartedPid && $0.height >= before + 1 } ?? false
            }
        }

        // The largest valid seq: committed, and nothing traps on it.
        let largest = try scene.reading(seq: (1 << 63) - 1, time: WallClock.nowMs())
        try await intruder.publish(topic: topic, payload: largest)

        let audited = try await scene.expectExactAudit(honest)
        #expect((audited.untrustedReceipts["unsigned"] ?? 0) > 0, "\(audited.summary())")
        #expect((audited.untrustedReceipts["bad-signature"] ?? 0) > 0, "\(audited.summary())")

        // What the attacker got in: its valid readings only, at most once each; its largest seq.
        let database = scene.file.databases["validator-1"]!
        try await eventually(.seconds(60), "the largest seq committed") {
            try LedgerStore(path: database).readings(matching: ReadingQuery(device: scene.attacker)).contains {
                $0.seq == (1 << 63) - 1
            }
        }
        let intruding = try LedgerStore(path: database).readings(matching: ReadingQuery(device: scene.attacker))
            .map(\.seq)
        #expect(Set(intruding).count == intruding.count)
        #expect(
            intruding.allSatisfy { $0 == (1 << 63) - 1 || (10..<3010).contains($0) || (10_000..<10_300).contains($0) },
            "\(intruding.prefix(20))")
        // Every live replica went on to the same height, validator-4 included.
        let top = scene.height("validator-1")
        try await eventually(.seconds(60), "every live replica at the top") {
            ["validator-1", "validator-2", "validator-3", "validator-4", "manager-1"].allSatisfy {
                scene.height($0) >= top
            }
        }
    }

    /// A validator whose disk fills (its files on a small tmpfs): it stops with a clear error and a
    /// non-zero exit, the others go on, and once space is freed it starts again and catches up.
    /// Needs root (to mount the tmpfs); without it the test says so and checks nothing.
    @Test func aValidatorWhoseDiskFillsStopsWithAClearErrorAndCatchesUpOnceSpaceIsFreed() async throws {
        try await withDevnet("disk-full") { scene, leftovers in
            let small = scene.directory.file("small")
            try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
            let mount = try ToolRunner.run(
                "/usr/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", small], in: scene.directory.path)
            guard mount.status == 0 else {
                print("skipped: cannot mount a tmpfs (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
                return
            }
            defer { _ = try? ToolRunner.run("/usr/bin/umount", ["-l", small], in: scene.directory.path) }
            try await fillTheDisk(scene, leftovers, small: small)
        }
    }

    func fillTheDisk(_ scene: Scene, _ leftovers: Leftovers, small: String) async throws {
        try scene.registerAttacker()
        let honest = try await scene.startFleet(devices: 10, seconds: 10)
        // A device that keeps publishing, so that the chain grows.
        let device = try await scene.client(scene.attacker)
        defer { device.shutdown() }
        let publishing = Task {
            var seq: UInt64 = 1
            while !Task.isCancelled {
                for _ in 0..<20 {
                    try device.enqueue(
                        topic: scene.topics.readings(scene.attacker),
                        payload: try scene.reading(seq: seq, time: WallClock.nowMs()), qos: .atLeastOnce)
                    seq += 1
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { publishing.cancel() }

        // validator-4 stops; its files move to the small disk, which is filled but for 16 KiB.
        let configPath = scene.file.nodes["validator-4"]!
        let before = try #require(scene.devnet.status("validator-4"))
        kill(before.pid, SIGKILL)
        var configuration =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath)))
            as? [String: Any] ?? [:]
        let database = try #require(scene.file.databases["validator-4"])
        let journal = (configuration["journal"] as? String) ?? database + ".journal"
        for (from, to) in [(database, "\(small)/ledger.sqlite"), (journal, "\(small)/ledger.sqlite.journal")] {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: from + suffix) {
                try FileManager.default.copyItem(atPath: from + suffix, toPath: to + suffix)
            }
        }
        configuration["database"] = "\(small)/ledger.sqlite"
        configuration["journal"] = "\(small)/ledger.sqlite.journal"
        let moved = scene.directory.file("validator-4-small.json")
        try JSONSerialization.data(withJSONObject: configuration).write(to: URL(fileURLWithPath: moved))
        var stat = statvfs()
        statvfs(small, &stat)
        let free = Int(stat.f_bavail) * Int(stat.f_frsize)
        let filler = "\(small)/filler"
        try Data(count: max(0, free - 16 << 10)).write(to: URL(fileURLWithPath: filler))

        let full = try ChildProcess(
            ToolRunner.medledgerPath, arguments: ["node", "--config", moved],
            logPath: scene.directory.file("validator-4-full.log"))
        leftovers.processes.append(full)
        let heightAtStart = scene.height("validator-1")
        let status = await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await full.wait() }
            group.addTask {
                try? await Task.sleep(for: .seconds(90) * testPatience)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        let log = (try? String(contentsOfFile: full.logPath, encoding: .utf8)) ?? ""
        guard let status else {
            Issue.record("validator-4 went on with a full disk:\n\(log.suffix(3000))")
            return
        }
        #expect(status != 0, "\(log.suffix(3000))")
        #expect(log.contains("disk is full"), "\(log.suffix(3000))")
        // The others went on meanwhile, and go on.
        try await eventually(.seconds(60), "the chain going on without validator-4") {
            scene.height("validator-1") >= heightAtStart + 5
        }

        // Space freed: it starts again and catches up.
        try FileManager.default.removeItem(atPath: filler)
        let again = try ChildProcess(
            ToolRunner.medledgerPath, arguments: ["node", "--config", moved],
            logPath: scene.directory.file("validator-4-again.log"))
        leftovers.processes.append(again)
        let target = scene.height("validator-1")
        try await eventually(.seconds(60), "validator-4 catching up once space is freed") {
            scene.devnet.status("validator-4").map { $0.pid == again.pid && $0.height >= target } ?? false
        }
        let report = try StoreVerifier.verify(path: "\(small)/ledger.sqlite")
        #expect(report.isIntact, "\(report.problems)")
        try await scene.expectExactAudit(honest)
    }

    /// A manager whose clock runs a year ahead, as a process (libfaketime): the validators refuse
    /// its proposals for their time and count them, the chain goes on with the other manager, and
    /// no block's time is ahead of the validators' clocks. Without faketime the test says so and
    /// checks nothing.
    @Test func aManagerProcessWhoseClockRunsAYearAheadIsRefusedAndTheChainGoesOn() async throws {
        let faketime = "/usr/bin/faketime"
        guard FileManager.default.isExecutableFile(atPath: faketime) else {
            print("skipped: \(faketime) is not installed (Debian's faketime)")
            return
        }
        try await withDevnet("clock-ahead") { scene, leftovers in
            try scene.registerAttacker()
            // manager-2 again, from its own files, a year ahead. (faketime runs the node as its
            // child: the node's pid is in its status file.)
            let manager2 = try #require(scene.devnet.status("manager-2"))
            kill(manager2.pid, SIGKILL)
            leftovers.processes.append(
                try ChildProcess(
                    "/usr/bin/env",
                    arguments: [
                        "FAKETIME_DONT_FAKE_MONOTONIC=1", faketime, "-f", "+365d", ToolRunner.medledgerPath, "node",
                        "--config", scene.file.nodes["manager-2"]!,
                    ], logPath: scene.directory.file("manager-2-ahead.log")))
            try await eventually(.seconds(60), "manager-2 up again, a year ahead") {
                (scene.devnet.status("manager-2")?.pid).map { $0 != manager2.pid } ?? false
            }
            leftovers.pids.append(try #require(scene.devnet.status("manager-2")).pid)
            let honest = try await scene.startFleet(devices: 10, seconds: 10)
            let startHeight = honest.startHeight
            try await scene.keepPublishing(until: "manager-2's proposals refused while the chain goes on") {
                Self.refused(scene.devnet, rule: "header.time-ahead") > 0
                    && scene.height("validator-1") >= startHeight + 4
            }
            let store = try LedgerStore(path: scene.file.databases["validator-1"]!)
            // Blocks of readings (a registration's block may have been proposed by manager-2 before
            // it was replaced, and validator-1's status can lag the receipt that ended it).
            for height in (startHeight + 1)...store.height {
                let header = try store.block(at: height).header
                guard header.readingCount > 0 else { continue }
                #expect(header.proposer == "manager-1", "block \(height) by \(header.proposer)")
                #expect(header.time <= WallClock.nowMs() + scene.genesis.skewMs, "block \(height) at \(header.time)")
            }
            try await scene.expectExactAudit(honest)
        }
    }

    /// A byzantine manager: manager-2's process is replaced by one that holds its key and, in its
    /// turns, proposes blocks holding a forged reading (a registered device's, signed with another
    /// key). The validators refuse them (`reading.bad-signature`, counted), the chain goes on with
    /// manager-1, and the forged reading is in no replica.
    @Test func aByzantineManagersForgedReadingsAreRefusedAndTheChainGoesOn() async throws {
        try await withDevnet("byzantine") { scene, _ in
            try scene.registerAttacker()
            let genesis = scene.genesis
            let config =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: scene.file.nodes["manager-2"]!))) as? [String: Any]
            let key = try PrivateKey(
                pem: String(contentsOfFile: try #require(config?["key"] as? String), encoding: .utf8))
            kill(try #require(scene.devnet.status("manager-2")).pid, SIGKILL)

            let byzantine = try await scene.client("manager-2-byzantine")
            defer { byzantine.shutdown() }
            try await byzantine.subscribe("medledger/v1/\(genesis.channel)/council/vote/+")
            let consensus = try ConsensusConfiguration(genesis: genesis)
            let database = scene.file.databases["validator-1"]!
            let forger = PrivateKey(generating: .ed25519)
            let attacker = scene.attacker
            let proposing = Task {
                var proposed: Set<[UInt64]> = []
                for await message in byzantine.messages {
                    guard let vote = try? Vote(decoding: message.payload) else { continue }
                    for round in [vote.round, vote.round + 1]
                    where consensus.proposer(height: vote.height, round: round) == 1
                        && !proposed.contains([vote.height, round])
                    {
                        guard let state = try? LedgerStore(path: database).state, state.height + 1 == vote.height
                        else { continue }
                        proposed.insert([vote.height, round])
                        let forged = Reading(
                            channel: genesis.channel, device: attacker, seq: 1_000_000 + vote.height,
                            time: WallClock.nowMs(),
                            records: [ReadingRecord(code: "8867-4", unit: "/min", value: .integer(70))])
                        let block = Block(
                            extending: state, time: WallClock.nowMs(), proposer: "manager-2",
                            body: BlockBody(
                                readings: [try SignedReading(signing: forged, with: forger).bytes], transactions: []))
                        var proposal = Proposal(
                            channel: genesis.channel, height: vote.height, round: round, validRound: nil, proposer: 1,
                            value: ProposalValue(block: block), signature: [])
                        proposal.signature = try key.signature(for: proposal.signingBytes)
                        try byzantine.enqueue(
                            topic: CouncilTopics.proposal(channel: genesis.channel, manager: "manager-2"),
                            payload: proposal.encoded(), qos: .atLeastOnce)
                    }
                }
            }
            defer { proposing.cancel() }

            let honest = try await scene.startFleet(devices: 10, seconds: 10)
            let startHeight = honest.startHeight
            try await scene.keepPublishing(until: "the forged proposals refused while the chain goes on") {
                Self.refused(scene.devnet, rule: "reading.bad-signature") > 0
                    && scene.height("validator-1") >= startHeight + 4
            }
            let store = try LedgerStore(path: database)
            #expect(try store.readings(matching: ReadingQuery(device: attacker)).allSatisfy { $0.seq < 1_000_000 })
            for height in (startHeight + 1)...store.height {
                let header = try store.block(at: height).header
                guard header.readingCount > 0 else { continue }  // (as in the clock test)
                #expect(header.proposer == "manager-1", "block \(height) by \(header.proposer)")
            }
            try await scene.expectExactAudit(honest)
        }
    }

    /// Proposals the validators refused for a rule, from their status files.
    static func refused(_ devnet: RunningDevnet, rule: String) -> Int {
        (1...4).reduce(0) { total, index in
            let path = "\(devnet.directory)/nodes/validator-\(index).status.json"
            guard let data = FileManager.default.contents(atPath: path),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let counters = object["counters"] as? [String: Any],
                let rules = counters["invalidProposalsByRule"] as? [String: Any]
            else { return total }
            return total + ((rules[rule] as? Int) ?? 0)
        }
    }
}
