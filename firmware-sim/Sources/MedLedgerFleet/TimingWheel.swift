/// A hashed timing wheel: many timers (one or more per simulated device) in a ring of slots, so
/// that scheduling and firing cost O(1) each, however many devices there are, and one task ticks
/// the whole fleet instead of a timer per device.
///
/// Time is in ms; a timer fires at the first `advance` whose time is at or past its due time,
/// rounded up to the tick. Items due at the same tick fire in the order they were scheduled;
/// items due at different ticks in tick order (except after a jump of more than one revolution,
/// when everything overdue fires in slot order).
public struct TimingWheel<Item: Sendable>: Sendable {
    /// The length of one tick, ms.
    public let tickMs: UInt64
    private var slots: [[(due: UInt64, item: Item)]]
    /// The last tick advanced to.
    public private(set) var currentTick: UInt64
    /// How many items are scheduled.
    public private(set) var count = 0

    /// Makes a wheel.
    /// - Parameters:
    ///   - tickMs: the tick, ms (at least 1).
    ///   - slots: the number of slots (one revolution is `tickMs × slots`; later timers wait
    ///     whole revolutions in their slot).
    ///   - startMs: the time now, ms.
    public init(tickMs: UInt64, slots: Int = 4096, startMs: UInt64) {
        self.tickMs = max(1, tickMs)
        self.slots = Array(repeating: [], count: max(1, slots))
        currentTick = startMs / self.tickMs
    }

    /// Schedules an item at a time; a time not after the current tick fires at the next `advance`.
    /// - Parameters:
    ///   - item: the item.
    ///   - atMs: when it is due, ms.
    public mutating func schedule(_ item: Item, atMs: UInt64) {
        let due = max(currentTick + 1, (atMs + tickMs - 1) / tickMs)
        slots[Int(due % UInt64(slots.count))].append((due, item))
        count += 1
    }

    /// Moves the wheel to a time and returns the items now due.
    /// - Parameter nowMs: the time, ms; a time before the current tick changes nothing.
    public mutating func advance(to nowMs: UInt64) -> [Item] {
        let target = nowMs / tickMs
        guard target > currentTick else { return [] }
        let steps = min(target - currentTick, UInt64(slots.count))
        var fired: [Item] = []
        for step in 1...steps {
            let index = Int((currentTick + step) % UInt64(slots.count))
            guard !slots[index].isEmpty else { continue }
            var waiting: [(due: UInt64, item: Item)] = []
            for entry in slots[index] {
                if entry.due <= target { fired.append(entry.item) } else { waiting.append(entry) }
            }
            slots[index] = waiting
        }
        currentTick = target
        count -= fired.count
        return fired
    }
}
