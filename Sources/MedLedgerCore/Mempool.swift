/// A manager's bounded pool of accepted readings waiting for a block, in arrival order.
///
/// It refuses a reading when full (so the manager can say so in a receipt: nothing is dropped
/// silently), recognises a retransmission of a pending reading by its bytes, and refuses a
/// different reading with a pending (device, seq). Readings stay in the pool while a block that
/// holds them is being decided; `remove` takes out those a committed block holds.
public struct Mempool: Sendable {
    /// What `admit` did with a reading.
    public enum Admission: Hashable, Sendable {
        /// Added to the pool.
        case added
        /// The very same bytes are pending already: a retransmission.
        case duplicate
        /// Another reading with the same (device, seq) is pending.
        case conflict
        /// The pool is at its limit of readings or bytes.
        case full
        /// The device holds its whole share of the pool already: a device that floods is told
        /// `busy` while the others are still taken.
        case deviceFull
    }

    /// The most readings the pool holds.
    public let capacity: Int
    /// The most bytes of signed readings the pool holds.
    public let byteCapacity: Int
    /// The most readings one device may have pending.
    public let deviceShare: Int
    private var perDevice: [String: Int] = [:]
    private var order: [Key] = []
    private var head = 0
    private var entries: [Key: Entry] = [:]
    /// The bytes of the readings pending.
    public private(set) var byteCount = 0

    private struct Key: Hashable {
        var device: String
        var seq: UInt64
    }

    private struct Entry {
        var reading: SignedReading
        var admittedAt: UInt64
    }

    /// Makes an empty pool.
    /// - Parameters:
    ///   - capacity: the most readings.
    ///   - byteCapacity: the most bytes.
    ///   - deviceShare: the most readings of one device (default: `defaultDeviceShare(capacity:)`).
    public init(capacity: Int, byteCapacity: Int, deviceShare: Int? = nil) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
        self.deviceShare = max(1, deviceShare ?? Self.defaultDeviceShare(capacity: capacity))
    }

    /// A device's share of a pool by default: an eighth of it, but at least 256 readings (a device
    /// that was offline sends its backlog at once; the fleet's devices keep up to 256), and never
    /// more than the pool.
    public static func defaultDeviceShare(capacity: Int) -> Int { min(capacity, max(256, capacity / 8)) }

    /// The readings a device has pending.
    public func pendingCount(device: String) -> Int { perDevice[device] ?? 0 }

    /// The number of readings pending.
    public var count: Int { entries.count }

    /// When the oldest pending reading was admitted (the caller's clock), if any is pending.
    public var oldestAdmission: UInt64? {
        var index = head
        while index < order.count {
            if let entry = entries[order[index]] { return entry.admittedAt }
            index += 1
        }
        return nil
    }

    /// Whether a (device, seq) is pending.
    public func contains(device: String, seq: UInt64) -> Bool { entries[Key(device: device, seq: seq)] != nil }

    /// Adds a reading that passed the ledger's rules.
    /// - Parameters:
    ///   - reading: the reading.
    ///   - now: the caller's clock, ms.
    /// - Returns: what happened.
    public mutating func admit(_ reading: SignedReading, now: UInt64) -> Admission {
        let key = Key(device: reading.reading.device, seq: reading.reading.seq)
        if let existing = entries[key] {
            return existing.reading.bytes == reading.bytes ? .duplicate : .conflict
        }
        guard entries.count < capacity, byteCount + reading.bytes.count <= byteCapacity else { return .full }
        guard perDevice[key.device, default: 0] < deviceShare else { return .deviceFull }
        entries[key] = Entry(reading: reading, admittedAt: now)
        order.append(key)
        byteCount += reading.bytes.count
        perDevice[key.device, default: 0] += 1
        return .added
    }

    /// Whether a block should be cut now: the pool holds a block's worth of readings or bytes,
    /// or its oldest reading has waited the block timeout.
    /// - Parameters:
    ///   - parameters: the channel's block parameters.
    ///   - now: the caller's clock, ms.
    public func shouldCut(_ parameters: BlockParameters, now: UInt64) -> Bool {
        guard let oldest = oldestAdmission else { return false }
        return count >= parameters.maxReadings || byteCount >= parameters.maxBytes
            || now >= oldest &+ parameters.timeoutMs
    }

    /// The oldest pending readings that fit in one block (they stay pending).
    /// - Parameters:
    ///   - parameters: the channel's block parameters.
    ///   - reservedBytes: bytes the block's transactions take already.
    public func batch(_ parameters: BlockParameters, reservedBytes: Int = 0) -> [SignedReading] {
        var out: [SignedReading] = []
        var bytes = reservedBytes
        var index = head
        while index < order.count, out.count < parameters.maxReadings {
            if let entry = entries[order[index]] {
                guard bytes + entry.reading.bytes.count <= parameters.maxBytes else { break }
                bytes += entry.reading.bytes.count
                out.append(entry.reading)
            }
            index += 1
        }
        return out
    }

    /// Removes readings (those a committed block holds, or those found invalid).
    /// - Parameter readings: (device, seq) pairs.
    public mutating func remove(_ readings: some Sequence<(device: String, seq: UInt64)>) {
        for (device, seq) in readings {
            if let entry = entries.removeValue(forKey: Key(device: device, seq: seq)) {
                byteCount -= entry.reading.bytes.count
                let left = perDevice[device, default: 1] - 1
                perDevice[device] = left > 0 ? left : nil
            }
        }
        while head < order.count, entries[order[head]] == nil { head += 1 }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
