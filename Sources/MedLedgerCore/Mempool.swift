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
    }

    /// The most readings the pool holds.
    public let capacity: Int
    /// The most bytes of signed readings the pool holds.
    public let byteCapacity: Int
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
    public init(capacity: Int, byteCapacity: Int) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

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
        entries[key] = Entry(reading: reading, admittedAt: now)
        order.append(key)
        byteCount += reading.bytes.count
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
            }
        }
        while head < order.count, entries[order[head]] == nil { head += 1 }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
