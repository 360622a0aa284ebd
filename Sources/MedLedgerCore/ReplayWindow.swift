/// A sliding anti-replay window over sequence numbers, as RFC 4303 §3.4.3 describes: the highest
/// sequence number committed, and which of the `size` numbers ending at it were committed.
///
/// A number is fresh when it is above the highest, or inside the window and not yet seen.
/// Everything at or below `highest - size` is stale, whether or not it was ever committed.
public struct ReplayWindow: Hashable, Sendable {
    /// The window's width: 1024, as PROTOCOL.md fixes it.
    public static let size: UInt64 = 1024
    private static let wordCount = Int(size / 64)

    /// The highest sequence number committed; 0 when none was.
    public private(set) var highest: UInt64
    /// Bit `i` of the window (word i / 64, bit i % 64) says whether `highest - i` was committed.
    public private(set) var words: [UInt64]

    /// An empty window: nothing committed.
    public init() {
        highest = 0
        words = Array(repeating: 0, count: Self.wordCount)
    }

    /// A window restored from its stored form.
    /// - Parameters:
    ///   - highest: the highest sequence number committed.
    ///   - words: the 16 words of the bitmap.
    /// - Returns: nil when `words` has the wrong length.
    public init?(highest: UInt64, words: [UInt64]) {
        guard words.count == Self.wordCount else { return nil }
        self.highest = highest
        self.words = words
    }

    /// Whether a sequence number may still be committed.
    /// - Parameter seq: the sequence number, from 1.
    public func isFresh(_ seq: UInt64) -> Bool {
        guard seq >= 1 else { return false }
        if seq > highest { return true }
        let offset = highest - seq
        guard offset < Self.size else { return false }
        return words[Int(offset / 64)] & (1 << (offset % 64)) == 0
    }

    /// Whether a sequence number was committed and is still inside the window.
    /// - Parameter seq: the sequence number.
    public func contains(_ seq: UInt64) -> Bool {
        guard seq >= 1, seq <= highest, highest - seq < Self.size else { return false }
        let offset = highest - seq
        return words[Int(offset / 64)] & (1 << (offset % 64)) != 0
    }

    /// Marks a fresh sequence number as committed, sliding the window when it is the new highest.
    /// - Parameter seq: a number for which `isFresh` is true.
    public mutating func insert(_ seq: UInt64) {
        precondition(isFresh(seq), "ReplayWindow.insert takes fresh sequence numbers only")
        if seq > highest {
            shift(by: seq - highest)
            highest = seq
        }
        let offset = highest - seq
        words[Int(offset / 64)] |= 1 << (offset % 64)
    }

    private mutating func shift(by distance: UInt64) {
        guard distance < Self.size else {
            for index in words.indices { words[index] = 0 }
            return
        }
        let wordShift = Int(distance / 64)
        let bitShift = distance % 64
        for index in stride(from: Self.wordCount - 1, through: 0, by: -1) {
            let source = index - wordShift
            var value: UInt64 = 0
            if source >= 0 {
                value = words[source] << bitShift
                if bitShift > 0, source - 1 >= 0 {
                    value |= words[source - 1] >> (64 - bitShift)
                }
            }
            words[index] = value
        }
    }
}
