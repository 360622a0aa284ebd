internal import Logging
internal import MedLedgerCore
internal import MedLedgerMQTT
internal import MedLedgerNode

#if canImport(Glibc)
    import Glibc
#endif

/// What a shard's timing wheel holds: an event of one of its devices.
struct WheelItem: Sendable {
    enum Kind: UInt8, Sendable {
        /// The device samples its next reading.
        case sample
        /// The device tries to connect (again).
        case connect
        /// A planned offline period begins.
        case goOffline
        /// It ends.
        case comeOnline
    }
    var slot: Int32
    var kind: Kind
}

/// The settings a shard needs, taken from the fleet's options once.
struct ShardSettings: Sendable {
    var faults: FaultPlan
    var skewMs: UInt64
    var resendMs: UInt64
    var busyRetryMs: UInt64
    var offlineShare: Double
    var offlineMs: UInt64
    var disconnectPauseMs: UInt64
    var burstSize: Int
    var intervalMs: Double
    var connectConcurrency: Int
    var tickMs: UInt64
    var seqChunk: UInt64
    var spanMs: UInt64
}

/// What a shard reports for the fleet's status.
struct ShardSnapshot: Sendable {
    var devices = 0
    var connected = 0
    var offline = 0
    var made = 0
    var sent = 0
    var resent = 0
    var committed = 0
    var rejected: [RejectionReason: Int] = [:]
    var pendingHonest = 0
    var kept = 0
    var busy = 0
    var unexpected = 0
    var badReceipts = 0
    var drops = 0
    var storeFull = 0
    var seqStarved = 0
    var latency = LatencyHistogram()
    var reservationError: FleetError?
}

/// A share of the fleet's devices with its own timing wheel, driven by one ticking task: sampling,
/// publishing, resending after reconnects and on the resend interval, receipts, faults of
/// behaviour (bursts, abrupt disconnects, offline periods) and the seq reservations. Shards run in
/// parallel (signing is the cost), each device in exactly one.
actor FleetShard {
    enum Link: Sendable {
        /// Not connected yet (or connecting again after an offline period).
        case connecting
        /// Connected, publishing.
        case online
        /// In a planned offline period: sampling, not sending.
        case offline
        /// Dropped abruptly; the client comes back by itself.
        case dropped
    }

    struct Slot {
        var device: FirmwareDevice
        let client: MQTTClient
        let topic: String
        let receiptsTopic: String
        let intervalMs: Double
        var link: Link = .connecting
        var subscribed = false
        var seenReconnects = 0
        var connectAttempts = 0
    }

    let index: Int
    private let settings: ShardSettings
    private let reservations: SeqReservations
    private let logger: Logger
    private var slots: [Slot]
    private var wheel: TimingWheel<WheelItem>
    private var random: SeededRandom
    private var sampling = true
    private var draining = false
    private var closed = false
    private var connectQueue: [Int32] = []
    private var connectQueueHead = 0
    private var connectsInFlight = 0
    private var lastSweep: UInt64 = 0
    private var latency = LatencyHistogram()
    private var committedTotal = 0
    private var rejectedTotal: [RejectionReason: Int] = [:]
    private var busyTotal = 0
    private var unexpectedTotal = 0
    private var badReceipts = 0
    private var drops = 0
    private var reservationError: FleetError?

    init(
        index: Int, slots: [Slot], settings: ShardSettings, reservations: SeqReservations, seed: UInt64,
        logger: Logger
    ) {
        self.index = index
        self.slots = slots
        self.settings = settings
        self.reservations = reservations
        self.logger = logger
        random = SeededRandom(seed: seed)
        wheel = TimingWheel(tickMs: settings.tickMs, slots: 8192, startMs: Self.nowMs())
    }

    static func nowMs() -> UInt64 { WallClock.nowMs() }

    private func jittered(_ ms: Double, spread: Double = 0.1) -> UInt64 {
        UInt64(max(1, ms * Double.random(in: (1 - spread)...(1 + spread), using: &random)))
    }

    /// Schedules every device's first reading (spread over its interval), its connection and
    /// its planned offline period.
    func start() {
        let now = Self.nowMs()
        for index in slots.indices {
            let slot = Int32(index)
            let first = UInt64(Double.random(in: 0..<1, using: &random) * slots[index].intervalMs)
            wheel.schedule(WheelItem(slot: slot, kind: .sample), atMs: now + first)
            connectQueue.append(slot)
            if settings.offlineShare > 0, Double.random(in: 0..<1, using: &random) < settings.offlineShare {
                let at = now + UInt64(Double(settings.spanMs) * Double.random(in: 0.1..<0.5, using: &random))
                wheel.schedule(WheelItem(slot: slot, kind: .goOffline), atMs: at)
                wheel.schedule(WheelItem(slot: slot, kind: .comeOnline), atMs: at + settings.offlineMs)
            }
        }
    }

    /// One turn: fires what is due, starts connections, and once a second sweeps every device
    /// (reconnects, resends, seq reservations). Returns false once the shard is closed.
    func tick() -> Bool {
        guard !closed else { return false }
        let now = Self.nowMs()
        for item in wheel.advance(to: now) { fire(item, now: now) }
        startConnects()
        if now >= lastSweep + 1000 {
            lastSweep = now
            sweep(now: now)
        }
        return true
    }

    private func fire(_ item: WheelItem, now: UInt64) {
        let index = Int(item.slot)
        switch item.kind {
        case .sample:
            guard sampling else { return }
            sample(index, now: now)
            let interval = jittered(slots[index].intervalMs)
            wheel.schedule(item, atMs: now + interval)
        case .connect:
            connectQueue.append(item.slot)
        case .goOffline:
            guard sampling, slots[index].link == .online || slots[index].link == .dropped else { return }
            slots[index].link = .offline
            let client = slots[index].client
            Task { await client.disconnect() }
        case .comeOnline:
            guard slots[index].link == .offline else { return }
            slots[index].link = .connecting
            connectQueue.append(item.slot)
        }
    }

    private func sample(_ index: Int, now: UInt64) {
        guard let out = slots[index].device.sample(now: now, faults: settings.faults, skewMs: settings.skewMs) else {
            return
        }
        if out.fault == .burst {
            for _ in 0..<settings.burstSize {
                _ = slots[index].device.sample(now: now, faults: .none, skewMs: settings.skewMs)
            }
        }
        flush(index, now: now)
        if out.fault == .disconnect, slots[index].link == .online, slots[index].client.state == .connected {
            slots[index].link = .dropped
            drops += 1
            slots[index].client.dropConnection(reconnectAfter: .milliseconds(Int64(settings.disconnectPauseMs)))
        }
    }

    /// Publishes what the device has due, when it is online.
    private func flush(_ index: Int, now: UInt64, everything: Bool = false) {
        guard slots[index].link == .online, slots[index].client.state == .connected else { return }
        let resendMs = draining ? min(settings.resendMs, 3000) : settings.resendMs
        let due = slots[index].device.takeDue(now: now, resendAfter: resendMs, everything: everything)
        let client = slots[index].client
        for bytes in due {
            // The topic is the device's own readings topic: valid, so enqueue cannot fail.
            try? client.enqueue(topic: slots[index].topic, payload: bytes)
        }
    }

    private func startConnects() {
        let limit = max(1, settings.connectConcurrency)
        while connectsInFlight < limit, connectQueueHead < connectQueue.count {
            let slot = connectQueue[connectQueueHead]
            connectQueueHead += 1
            connect(Int(slot))
        }
        if connectQueueHead > 1024, connectQueueHead * 2 > connectQueue.count {
            connectQueue.removeFirst(connectQueueHead)
            connectQueueHead = 0
        }
    }

    private func connect(_ index: Int) {
        guard !closed, slots[index].link == .connecting else { return }
        connectsInFlight += 1
        let client = slots[index].client
        let subscribe = slots[index].subscribed ? nil : slots[index].receiptsTopic
        Task {
            do {
                try await client.connect()
                if let subscribe { try await client.subscribe(subscribe, qos: .atLeastOnce) }
                self.connected(index)
            } catch {
                self.connectFailed(index, error)
            }
        }
    }

    private func connected(_ index: Int) {
        connectsInFlight -= 1
        guard !closed else { return }
        slots[index].subscribed = true
        slots[index].connectAttempts = 0
        slots[index].device.markConnected()
        guard slots[index].link == .connecting else { return }
        slots[index].link = .online
        slots[index].seenReconnects = slots[index].client.reconnectCount
        flush(index, now: Self.nowMs(), everything: true)
    }

    private func connectFailed(_ index: Int, _ error: any Error) {
        connectsInFlight -= 1
        guard !closed else { return }
        let attempts = slots[index].connectAttempts
        slots[index].connectAttempts += 1
        if attempts == 0 {
            logger.debug(
                "device cannot connect, retrying",
                metadata: ["device": "\(slots[index].device.id)", "error": "\(error)"])
        }
        let delay = jittered(min(4000, 250 * pow(2, Double(min(attempts, 5)))), spread: 0.5)
        wheel.schedule(WheelItem(slot: Int32(index), kind: .connect), atMs: Self.nowMs() + delay)
    }

    /// Once a second: a device whose client connected again sends its whole store; kept messages
    /// due again go out; devices low on reserved seqs get a new chunk (one durable write).
    private func sweep(now: UInt64) {
        var low: [Int] = []
        for index in slots.indices {
            let reconnects = slots[index].client.reconnectCount
            if reconnects != slots[index].seenReconnects {
                slots[index].seenReconnects = reconnects
                if slots[index].link == .dropped || slots[index].link == .online {
                    slots[index].link = .online
                    flush(index, now: now, everything: true)
                    continue
                }
            }
            if slots[index].device.keptCount > 0 { flush(index, now: now) }
            if sampling, slots[index].device.reservedAhead <= settings.seqChunk / 2 { low.append(index) }
        }
        guard !low.isEmpty else { return }
        do {
            let extended = try reservations.extend(
                low.map { slots[$0].device.id }, from: low.map { slots[$0].device.nextSeq - 1 })
            for (index, reserved) in zip(low, extended) { slots[index].device.reservedThrough = reserved }
        } catch {
            if reservationError == nil {
                logger.error("cannot extend the seq reservations", metadata: ["error": "\(error)"])
            }
            reservationError = error
        }
    }

    /// Takes a receipt for a device.
    func receive(_ index: Int, _ receipt: Receipt) {
        let effect = slots[index].device.receive(
            receipt, now: Self.nowMs(), busyRetryMs: settings.busyRetryMs, busyMaxMs: settings.resendMs)
        switch effect {
        case .committed(let latencyMs):
            committedTotal += 1
            if let latencyMs { latency.record(latencyMs) }
        case .rejected(let reason):
            rejectedTotal[reason, default: 0] += 1
        case .busy:
            busyTotal += 1
        case .unexpected:
            unexpectedTotal += 1
            if let last = slots[index].device.account.unexpected.last {
                logger.warning(
                    "unexpected receipt", metadata: ["device": "\(slots[index].device.id)", "what": "\(last)"])
            }
        case .none:
            break
        }
    }

    /// Counts a receipt that did not decode.
    func badReceipt() { badReceipts += 1 }

    /// Counts a receipt a device ignored because it could not be trusted.
    func untrustedReceipt(_ index: Int, _ error: ReceiptError) {
        slots[index].device.ignoreUntrusted(error)
        logger.warning(
            "an untrusted receipt ignored", metadata: ["device": "\(slots[index].device.id)", "why": "\(error)"])
    }

    /// The devices' slot numbers by id.
    func ids() -> [String] { slots.map(\.device.id) }

    /// A device's revocation was submitted.
    func revocationSubmitted(_ index: Int) { slots[index].device.revocationSubmitted() }

    /// A device's revocation is committed.
    func revocationCommitted(_ index: Int) { slots[index].device.revocationCommitted() }

    /// Publishing ends; offline devices come back to deliver their backlog; kept messages are
    /// sent again sooner.
    func beginDrain() {
        sampling = false
        draining = true
        for index in slots.indices where slots[index].link == .offline {
            slots[index].link = .connecting
            connectQueue.append(Int32(index))
        }
    }

    /// How many messages the devices still keep unanswered.
    func keptTotal() -> Int { slots.reduce(0) { $0 + $1.device.keptCount } }

    /// The devices as they are now.
    func devices() -> [FirmwareDevice] { slots.map(\.device) }

    /// The latencies so far.
    func latencies() -> LatencyHistogram { latency }

    /// Closes every connection (with a DISCONNECT); the shard stops ticking.
    func close() {
        closed = true
        for slot in slots { slot.client.shutdown() }
    }

    /// The shard's status.
    func snapshot() -> ShardSnapshot {
        var snapshot = ShardSnapshot()
        snapshot.devices = slots.count
        for slot in slots {
            let account = slot.device.account
            if slot.client.state == .connected { snapshot.connected += 1 }
            if slot.link == .offline { snapshot.offline += 1 }
            snapshot.made += account.made
            snapshot.sent += account.sent
            snapshot.resent += account.resent
            snapshot.kept += slot.device.keptCount
            snapshot.storeFull += account.storeFull
            snapshot.seqStarved += account.seqStarved
            if slot.device.keptCount > 0 { snapshot.pendingHonest += slot.device.pendingHonest }
        }
        snapshot.committed = committedTotal
        snapshot.rejected = rejectedTotal
        snapshot.busy = busyTotal
        snapshot.unexpected = unexpectedTotal
        snapshot.badReceipts = badReceipts
        snapshot.drops = drops
        snapshot.latency = latency
        snapshot.reservationError = reservationError
        return snapshot
    }
}
