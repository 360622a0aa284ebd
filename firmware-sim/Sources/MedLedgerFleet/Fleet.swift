import Foundation
public import Logging
public import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerNode
public import MedLedgerStore

/// A simulated fleet of devices, each with its own key, its own MQTT connection (its device id
/// as client id and username), its persisted seq counter and its bounded store of unanswered
/// readings: what `medledger-fleet` and `medledger devnet` run.
///
/// ```swift
/// let fleet = try Fleet(options: options, logger: logger)
/// try await fleet.register(registrarID: "registrar-1", registrarKey: key)
/// let running = Task { try await fleet.run() }      // until the duration ends or stop()
/// print(await fleet.stats().statusLine)
/// await fleet.stop()
/// var report = try await running.value               // after the drain
/// report = try await fleet.audit(againstDatabase: "data/manager-1.sqlite")
/// ```
public actor Fleet {
    /// Where a fleet is in its life.
    public enum Phase: String, Sendable, Codable {
        /// Made, not running.
        case idle
        /// Publishing.
        case running
        /// Publishing ended; waiting for the outstanding receipts.
        case draining
        /// Done; the connections are closed.
        case finished
    }

    /// The options it was made with.
    public nonisolated let options: FleetOptions
    private let logger: Logger
    private var file: FleetFile
    private let keys: [PrivateKey]
    private let active: Int
    private let reservations: SeqReservations
    private var mqtt: MQTTFleet?
    private var shards: [FleetShard] = []
    private var slotOf: [String: (shard: Int, slot: Int)] = [:]
    private var registrar: FleetRegistrar?
    private var session: RegistrarSession?
    private var stopRequested = false
    private var phase: Phase = .idle
    private var startedAt: ContinuousClock.Instant?
    private var commitSamples: [(ContinuousClock.Instant, Int)] = []
    private var finalDevices: [FirmwareDevice]?
    private var finalLatency: LatencyHistogram?

    /// Makes a fleet: loads the fleet file from the state directory (or makes it), adds devices
    /// up to `options.devices`, and opens the seq reservations.
    /// - Parameters:
    ///   - options: how it runs.
    ///   - logger: where it logs.
    /// - Throws: `FleetError` for bad options or unusable state files (a fleet file of another
    ///   channel, damaged reservations).
    public init(options: FleetOptions, logger: Logger) throws(FleetError) {
        try options.validate()
        self.options = options
        self.logger = logger
        do {
            try FileManager.default.createDirectory(atPath: options.stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw FleetError(.file, "cannot make the state directory '\(options.stateDirectory)': \(error)")
        }
        let path = options.fleetFilePath
        var file: FleetFile
        if FileManager.default.fileExists(atPath: path) {
            file = try FleetFile.load(path)
            guard file.channel == options.channel else {
                throw FleetError(
                    .badOption, "the fleet in \(path) reports on channel '\(file.channel)', not '\(options.channel)'")
            }
        } else {
            var generator = SystemRandomNumberGenerator()
            let tag = String(UInt16.random(in: 0...UInt16.max, using: &generator), radix: 16)
            file = FleetFile(
                channel: options.channel, prefix: options.devicePrefix ?? "sim-\(tag)", seed: options.seed)
        }
        let before = file.devices.count
        file.grow(
            to: options.devices, algorithms: options.algorithms,
            unregisteredShare: max(options.unregisteredShare, options.faults[.unregistered]),
            abnormalShare: options.abnormalShare)
        if file.devices.count != before || !FileManager.default.fileExists(atPath: path) { try file.write(path) }
        self.file = file
        active = min(options.devices, file.devices.count)
        keys = try file.keys()
        reservations = try SeqReservations(path: options.reservationsPath, chunk: options.seqChunk)
    }

    /// Makes a fleet (the same as `init(options:logger:)`).
    /// - Throws: as `init(options:logger:)`.
    public static func create(options: FleetOptions, logger: Logger) throws(FleetError) -> Fleet {
        try Fleet(options: options, logger: logger)
    }

    /// The devices that run (the first `options.devices` of the fleet file).
    public var devices: [FleetDeviceRecord] { Array(file.devices.prefix(active)) }

    /// Where the fleet is in its life.
    public var currentPhase: Phase { phase }

    private func ensureMQTT() throws(FleetError) -> MQTTFleet {
        if let mqtt { return mqtt }
        do {
            let made = try MQTTFleet(threads: options.eventLoopThreads, logger: logger)
            mqtt = made
            return made
        } catch {
            throw FleetError(.network, "cannot start the MQTT event loops: \(error)")
        }
    }

    private func ensureSession() async throws(FleetError) -> RegistrarSession {
        if let session { return session }
        guard let registrar else {
            throw FleetError(.badOption, "no registrar: call register(registrarID:registrarKey:) or useRegistrar first")
        }
        let client: MQTTClient
        do {
            var generator = SystemRandomNumberGenerator()
            let suffix = String(UInt32.random(in: 0...UInt32.max, using: &generator), radix: 16)
            client = try ensureMQTT().makeClient(
                configuration: options.mqtt(
                    clientID: "\(registrar.id)-\(file.prefix)-\(suffix)", username: registrar.id))
        } catch let error as FleetError {
            throw error
        } catch {
            throw FleetError(.network, "cannot make the registrar's MQTT client: \(error)")
        }
        let made = try await RegistrarSession(
            client: client, registrar: registrar, channel: options.channel, managers: options.managers,
            settle: options.settleTime)
        session = made
        return made
    }

    /// Sets the registrar that registers and revokes the fleet's devices.
    public func useRegistrar(id: String, key: PrivateKey) {
        registrar = FleetRegistrar(id: id, key: key)
    }

    /// What `register` did.
    public struct RegistrationSummary: Sendable, Hashable, Codable {
        /// Devices registered now.
        public var registered = 0
        /// Devices the ledger already knew (registered by an earlier run, by this fleet or another).
        public var alreadyRegistered = 0
        /// Devices left unregistered on purpose (the `unregistered` share).
        public var leftUnregistered = 0
    }

    /// Registers the fleet's devices that should be (all but the `unregistered` share) and are not
    /// yet, in batches, each with its patient, and waits until every manager has committed them.
    /// The fleet file records each registration.
    /// - Parameters:
    ///   - registrarID: a registrar of the channel's genesis.
    ///   - registrarKey: its key.
    ///   - batchSize: transactions per batch.
    ///   - timeout: the longest wait for one batch.
    /// - Throws: `FleetError` when the broker fails, a batch is not committed in time, or the
    ///   ledger refuses a registration (naming the device and the reason).
    @discardableResult
    public func register(
        registrarID: String, registrarKey: PrivateKey, batchSize: Int = 250, timeout: Duration = .seconds(120)
    ) async throws(FleetError) -> RegistrationSummary {
        useRegistrar(id: registrarID, key: registrarKey)
        var summary = RegistrationSummary()
        var todo: [Int] = []
        for index in 0..<active {
            let record = file.devices[index]
            if !record.register {
                summary.leftUnregistered += 1
            } else if !record.registered, !record.revoked {
                todo.append(index)
            } else if record.registered {
                summary.alreadyRegistered += 1
            }
        }
        guard !todo.isEmpty else { return summary }
        let session = try await ensureSession()
        var refused: [String] = []
        var start = 0
        while start < todo.count {
            let batch = Array(todo[start..<min(start + max(1, batchSize), todo.count)])
            start += batch.count
            let bodies = batch.map { index in
                TransactionBody.registerDevice(
                    device: file.devices[index].id, key: keys[index].publicKey, patient: file.devices[index].patient.id)
            }
            let outcomes = try await session.submit(bodies, timeout: timeout)
            for (index, outcome) in zip(batch, outcomes) {
                switch outcome {
                case .committed:
                    file.devices[index].registered = true
                    summary.registered += 1
                case .rejected(.deviceExists):
                    file.devices[index].registered = true
                    summary.alreadyRegistered += 1
                case .rejected(let reason):
                    refused.append("\(file.devices[index].id) (\(reason.rawValue))")
                }
            }
            try file.write(options.fleetFilePath)
            logger.info("registered devices", metadata: ["done": "\(start)", "of": "\(todo.count)"])
        }
        guard refused.isEmpty else {
            throw FleetError(
                .network,
                "the ledger refused \(refused.count) registration(s): \(refused.prefix(5).joined(separator: ", "))")
        }
        return summary
    }

    /// Revokes devices (registered ones) and waits until every manager has committed the
    /// revocations. While a revocation is under way the devices' messages are in doubt (either
    /// answer is right); once it is committed, every later reading must be refused as
    /// `revoked-device`. Works before and during `run()`.
    /// - Parameters:
    ///   - ids: the devices.
    ///   - timeout: the longest wait.
    /// - Throws: `FleetError` for an unknown id, no registrar, a broker failure, or a revocation
    ///   the ledger refuses.
    public func revoke(_ ids: [String], timeout: Duration = .seconds(120)) async throws(FleetError) {
        guard !ids.isEmpty else { return }
        var numbers: [Int] = []
        for id in ids {
            guard let number = file.devices.prefix(active).firstIndex(where: { $0.id == id }) else {
                throw FleetError(.badOption, "'\(id)' is not a device of this fleet")
            }
            guard file.devices[number].registered else {
                throw FleetError(.badOption, "'\(id)' is not registered, so it cannot be revoked")
            }
            numbers.append(number)
        }
        let session = try await ensureSession()
        for id in ids {
            if let place = slotOf[id] { await shards[place.shard].revocationSubmitted(place.slot) }
        }
        let outcomes = try await session.submit(ids.map { .revokeDevice(device: $0) }, timeout: timeout)
        var refused: [String] = []
        for (number, outcome) in zip(numbers, outcomes) {
            let id = file.devices[number].id
            switch outcome {
            case .committed, .rejected(.revokedDevice):
                file.devices[number].revoked = true
                if let place = slotOf[id] { await shards[place.shard].revocationCommitted(place.slot) }
            case .rejected(let reason):
                refused.append("\(id) (\(reason.rawValue))")
            }
        }
        try file.write(options.fleetFilePath)
        guard refused.isEmpty else {
            throw FleetError(.network, "the ledger refused revocations: \(refused.joined(separator: ", "))")
        }
    }

    /// Asks a running fleet to stop publishing (it then drains and `run()` returns).
    public func stop() { stopRequested = true }

    /// Runs the fleet: connects every device, publishes at the rate until the duration ends or
    /// `stop()`, then waits up to `options.drainTime` for the outstanding receipts, closes the
    /// connections and returns the report (an honest reading still unanswered is a mismatch).
    /// - Returns: the accounting (without the ledger's audit: see `audit`).
    /// - Throws: `FleetError` when the event loops cannot start, or the run is not idle.
    public func run() async throws(FleetError) -> FleetReport {
        guard phase == .idle else { throw FleetError(.badOption, "the fleet has run already") }
        let mqtt = try ensureMQTT()
        phase = .running
        // Reserve a chunk for every device before any seq is used.
        let ids = file.devices.prefix(active).map(\.id)
        let previous = ids.map { reservations.reservation($0) }
        let reserved = try reservations.extend(ids)
        let settings = ShardSettings(
            faults: options.faults, skewMs: options.skewMs, resendMs: Self.ms(options.resendInterval),
            busyRetryMs: Self.ms(options.busyRetry), offlineShare: options.offlineShare,
            offlineMs: Self.ms(options.offlineDuration), disconnectPauseMs: Self.ms(options.disconnectPause),
            burstSize: options.burstSize, intervalMs: 1000 / options.rate,
            connectConcurrency: max(1, options.connectConcurrency / max(1, options.eventLoopThreads)),
            tickMs: options.tickMs, seqChunk: UInt64(options.seqChunk),
            spanMs: options.duration.map(Self.ms) ?? 60_000)
        let shardCount = max(1, min(options.eventLoopThreads, max(1, active)))
        var slotsByShard: [[FleetShard.Slot]] = Array(repeating: [], count: shardCount)
        let topics = ChannelTopics(channel: options.channel)
        for number in 0..<active {
            let record = file.devices[number]
            var device = FirmwareDevice(
                id: record.id, key: keys[number], kind: record.kind, patient: record.patient,
                registered: record.registered, channel: options.channel, nextSeq: previous[number] + 1,
                capacity: options.storeCapacity, revocation: record.revoked ? .committed : .none,
                seed: options.seed &+ UInt64(number) &* 0x9E37_79B9 &+ previous[number] &* 0x85EB_CA6B)
            device.reservedThrough = reserved[number]
            let client: MQTTClient
            do {
                client = try mqtt.makeClient(configuration: options.mqtt(clientID: record.id, username: record.id))
            } catch {
                throw FleetError(.badOption, "device '\(record.id)': \(error)")
            }
            let shard = number % shardCount
            slotOf[record.id] = (shard, slotsByShard[shard].count)
            slotsByShard[shard].append(
                FleetShard.Slot(
                    device: device, client: client, topic: topics.readings(record.id),
                    receiptsTopic: topics.receipts(record.id),
                    intervalMs: settings.intervalMs * record.kind.rateDivisor))
        }
        shards = slotsByShard.enumerated().map { index, slots in
            FleetShard(
                index: index, slots: slots, settings: settings, reservations: reservations,
                seed: options.seed &+ UInt64(index + 1) &* 0xD6E8_FEB8_6659_FD93, logger: logger)
        }
        // Receipts: one consumer per device, into its shard.
        var receivers: [Task<Void, Never>] = []
        for (shardIndex, slots) in slotsByShard.enumerated() {
            let shard = shards[shardIndex]
            for (slotIndex, slot) in slots.enumerated() {
                let client = slot.client
                let topic = slot.receiptsTopic
                let signers = options.receiptSigners
                receivers.append(
                    Task.detached {
                        for await message in client.messages {
                            do throws(ReceiptError) {
                                let opened = try Receipt.open(message.payload, topic: topic, managers: signers)
                                await shard.receive(slotIndex, opened.receipt)
                            } catch  where error.code == .malformed {
                                await shard.badReceipt()
                            } catch {
                                await shard.untrustedReceipt(slotIndex, error)
                            }
                        }
                    })
            }
        }
        let tick = Duration.milliseconds(Int64(options.tickMs))
        var tickers: [Task<Void, Never>] = []
        for shard in shards {
            await shard.start()
            tickers.append(
                Task.detached {
                    while await shard.tick() { try? await Task.sleep(for: tick) }
                })
        }
        let clock = ContinuousClock()
        let started = clock.now
        startedAt = started
        logger.info("fleet running", metadata: ["devices": "\(active)", "shards": "\(shardCount)"])
        var lastSample = clock.now
        while !stopRequested {
            if let duration = options.duration, clock.now - started >= duration { break }
            try? await Task.sleep(for: .milliseconds(100))
            if clock.now - lastSample >= .seconds(1) {
                lastSample = clock.now
                _ = await stats()
            }
        }
        // The drain: no more sampling; offline devices come back with their backlog.
        phase = .draining
        for shard in shards { await shard.beginDrain() }
        let drainStart = clock.now
        while clock.now - drainStart < options.drainTime {
            var kept = 0
            for shard in shards { kept += await shard.keptTotal() }
            if kept == 0 { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        // Close the connections first, then let every receipt they had received reach its device
        // before the accounting is read: the drain's end is a wall-clock deadline, and on a loaded
        // machine receipts that arrived before it may still wait in a connection's buffer (read
        // before they were taken, a committed reading whose receipt had come would count as
        // pending, and the audit would find it "in the ledger without its receipt").
        for shard in shards { await shard.close() }
        for ticker in tickers { await ticker.value }
        await mqtt.shutdown()  // every connection is closed and its messages end after the buffered ones
        for receiver in receivers { await receiver.value }
        var devices: [FirmwareDevice] = []
        var latency = LatencyHistogram()
        for shard in shards {
            devices += await shard.devices()
            latency.merge(await shard.latencies())
        }
        finalDevices = devices
        finalLatency = latency
        session?.close()
        session = nil
        self.mqtt = nil
        phase = .finished
        logger.info("fleet stopped", metadata: ["devices": "\(active)"])
        return FleetReport(devices: devices, latency: latency, pendingIsMismatch: true)
    }

    /// Closes the registrar's session and the event loops of a fleet that did not run (a run
    /// closes them itself).
    public func shutdown() async {
        session?.close()
        session = nil
        if phase != .running, phase != .draining, let mqtt {
            await mqtt.shutdown()
            self.mqtt = nil
        }
    }

    private func currentDevices() async -> ([FirmwareDevice], LatencyHistogram) {
        if let finalDevices, let finalLatency { return (finalDevices, finalLatency) }
        var devices: [FirmwareDevice] = []
        var latency = LatencyHistogram()
        for shard in shards {
            devices += await shard.devices()
            latency.merge(await shard.latencies())
        }
        return (devices, latency)
    }

    /// The accounting now (mid-run: pending readings are not mismatches).
    public func report() async -> FleetReport {
        let (devices, latency) = await currentDevices()
        return FleetReport(devices: devices, latency: latency, pendingIsMismatch: phase == .finished)
    }

    /// The accounting, checked against a replica's store (see `FleetReport.audit`).
    /// - Parameters:
    ///   - store: the replica's store; it should hold every height a receipt named.
    ///   - fromHeight: the first height to check (the store's height + 1 when the run began).
    /// - Throws: `FleetError` when the store cannot be read.
    public func audit(against store: LedgerStore, fromHeight: UInt64 = 1) async throws(FleetError) -> FleetReport {
        var report = await report()
        do {
            try report.audit(await currentDevices().0, against: store, fromHeight: fromHeight)
        } catch {
            throw FleetError(.file, "cannot read the ledger: \(error)")
        }
        return report
    }

    /// The accounting, checked against a replica's database file once it holds every height a
    /// receipt named (waiting up to `timeout` for a replica that lags).
    /// - Parameters:
    ///   - path: the SQLite file of a manager, validator or observer.
    ///   - fromHeight: the first height to check.
    ///   - timeout: the longest wait for the replica to catch up.
    /// - Throws: `FleetError` when the store cannot be opened or read.
    public func audit(
        againstDatabase path: String, fromHeight: UInt64 = 1, timeout: Duration = .seconds(30)
    ) async throws(FleetError) -> FleetReport {
        let (devices, _) = await currentDevices()
        let wanted = devices.reduce(UInt64(0)) { highest, device in
            max(highest, device.account.commits.values.reduce(0) { max($0, $1.height) })
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let store: LedgerStore
            do {
                store = try LedgerStore(path: path)
            } catch {
                throw FleetError(.file, "cannot open the ledger '\(path)': \(error)")
            }
            if store.height >= wanted || ContinuousClock.now >= deadline {
                return try await audit(against: store, fromHeight: fromHeight)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Every latency recorded so far (take two and `subtracting` for an interval).
    public func latencyHistogram() async -> LatencyHistogram {
        var latency = LatencyHistogram()
        for shard in shards { latency.merge(await shard.latencies()) }
        return latency
    }

    /// The live status: counts, committed per second over the last ten seconds, latency
    /// percentiles, rejections, what is pending.
    public func stats() async -> FleetStats {
        var stats = FleetStats()
        stats.phase = phase
        stats.devices = active
        if let startedAt { stats.elapsedSeconds = (ContinuousClock.now - startedAt) / .seconds(1) }
        var latency = LatencyHistogram()
        for shard in shards {
            let snapshot = await shard.snapshot()
            stats.connected += snapshot.connected
            stats.offline += snapshot.offline
            stats.made += snapshot.made
            stats.sent += snapshot.sent
            stats.resent += snapshot.resent
            stats.committed += snapshot.committed
            stats.pending += snapshot.pendingHonest
            stats.kept += snapshot.kept
            stats.busy += snapshot.busy
            stats.unexpected += snapshot.unexpected
            stats.badReceipts += snapshot.badReceipts
            stats.drops += snapshot.drops
            stats.storeFull += snapshot.storeFull
            stats.seqStarved += snapshot.seqStarved
            if let error = snapshot.reservationError { stats.error = error.message }
            for (reason, count) in snapshot.rejected { stats.rejected[reason.rawValue, default: 0] += count }
            latency.merge(snapshot.latency)
        }
        stats.latencyP50Ms = latency.percentile(0.5)
        stats.latencyP99Ms = latency.percentile(0.99)
        let now = ContinuousClock.now
        commitSamples.append((now, stats.committed))
        commitSamples.removeAll { now - $0.0 > .seconds(10) }
        if let first = commitSamples.first, now - first.0 >= .milliseconds(500) {
            stats.committedPerSecond = Double(stats.committed - first.1) / ((now - first.0) / .seconds(1))
        }
        return stats
    }

    static func ms(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1000 + UInt64(max(0, attoseconds) / 1_000_000_000_000_000)
    }
}

/// A running fleet's status, for a status line.
public struct FleetStats: Sendable, Codable, Hashable {
    /// Where the fleet is.
    public var phase: Fleet.Phase = .idle
    /// Seconds since publishing began.
    public var elapsedSeconds: Double = 0
    /// Devices.
    public var devices = 0
    /// Devices connected now.
    public var connected = 0
    /// Devices in a planned offline period now.
    public var offline = 0
    /// Messages made.
    public var made = 0
    /// First publications.
    public var sent = 0
    /// Publications again.
    public var resent = 0
    /// Readings committed (first committed receipt of each).
    public var committed = 0
    /// Committed per second over the last ten seconds.
    public var committedPerSecond: Double = 0
    /// Median publish-to-committed latency, ms.
    public var latencyP50Ms: UInt64?
    /// 99th percentile, ms.
    public var latencyP99Ms: UInt64?
    /// Messages refused as expected, by reason.
    public var rejected: [String: Int] = [:]
    /// Honest readings kept unanswered.
    public var pending = 0
    /// All messages kept unanswered.
    public var kept = 0
    /// `busy` receipts.
    public var busy = 0
    /// Receipts that contradict what was expected.
    public var unexpected = 0
    /// Receipts that did not decode.
    public var badReceipts = 0
    /// Abrupt disconnects made.
    public var drops = 0
    /// Times a device's store was full.
    public var storeFull = 0
    /// Times a device had no reserved seq.
    public var seqStarved = 0
    /// A failure that stops the fleet from working (the seq reservations cannot be written).
    public var error: String?

    /// One line: `fleet 98/100 up, sent 1234, committed 1200 (40.1/s, p50 120 ms, p99 800 ms), rejected 12, pending 30`.
    public var statusLine: String {
        var parts = ["fleet \(connected)/\(devices) up"]
        if offline > 0 { parts.append("\(offline) offline") }
        parts.append("sent \(sent)")
        var committedPart = "committed \(committed) (\(String(format: "%.1f", committedPerSecond))/s"
        if let p50 = latencyP50Ms, let p99 = latencyP99Ms { committedPart += ", p50 \(p50) ms, p99 \(p99) ms" }
        parts.append(committedPart + ")")
        let rejectedTotal = rejected.values.reduce(0, +)
        if rejectedTotal > 0 { parts.append("rejected \(rejectedTotal)") }
        parts.append("pending \(pending)")
        if busy > 0 { parts.append("busy \(busy)") }
        if unexpected > 0 { parts.append("UNEXPECTED \(unexpected)") }
        if let error { parts.append("ERROR \(error)") }
        return parts.joined(separator: ", ")
    }
}
