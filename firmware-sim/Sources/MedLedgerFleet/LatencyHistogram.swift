/// Latencies in ms, counted in log-linear buckets (exact below 32 ms, then 16 buckets per
/// doubling: at most 1/16 ≈ 6% too low), so a fleet's millions of readings cost a few KiB, and
/// histograms of several shards merge by adding.
public struct LatencyHistogram: Hashable, Sendable {
    private static let exact: UInt64 = 32
    private static let subBuckets = 16
    private var buckets: [UInt64]
    /// How many latencies were recorded.
    public private(set) var count: UInt64 = 0
    /// The largest one, ms.
    public private(set) var maximum: UInt64 = 0
    /// The sum of all, ms (for the mean).
    public private(set) var total: UInt64 = 0

    /// An empty histogram.
    public init() {
        buckets = Array(repeating: 0, count: Int(Self.exact) + (64 - 5) * Self.subBuckets)
    }

    static func bucket(_ value: UInt64) -> Int {
        guard value >= exact else { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount  // >= 5
        let sub = Int((value >> UInt64(exponent - 4)) & 15)
        return Int(exact) + (exponent - 5) * subBuckets + sub
    }

    static func lowerBound(_ bucket: Int) -> UInt64 {
        guard bucket >= Int(exact) else { return UInt64(bucket) }
        let exponent = (bucket - Int(exact)) / subBuckets + 5
        let sub = UInt64((bucket - Int(exact)) % subBuckets)
        return (16 + sub) << UInt64(exponent - 4)
    }

    /// Records one latency.
    /// - Parameter ms: the latency, ms.
    public mutating func record(_ ms: UInt64) {
        buckets[Self.bucket(ms)] += 1
        count += 1
        total &+= ms
        maximum = max(maximum, ms)
    }

    /// Adds another histogram's counts.
    public mutating func merge(_ other: LatencyHistogram) {
        for index in buckets.indices { buckets[index] += other.buckets[index] }
        count += other.count
        total &+= other.total
        maximum = max(maximum, other.maximum)
    }

    /// The latencies recorded here and not in `earlier`, an earlier snapshot of this histogram
    /// (what was recorded between the two).
    public func subtracting(_ earlier: LatencyHistogram) -> LatencyHistogram {
        var out = LatencyHistogram()
        for index in buckets.indices {
            let count = buckets[index] &- min(buckets[index], earlier.buckets[index])
            out.buckets[index] = count
            out.count += count
            if count > 0 { out.maximum = max(out.maximum, Self.lowerBound(index)) }
        }
        out.total = total &- min(total, earlier.total)
        // The largest latency of the interval is known only to its bucket, unless it is the largest of all.
        if maximum > earlier.maximum { out.maximum = maximum }
        return out
    }

    /// The latency below which a fraction of them lie (the bucket's lower bound), ms; nil when empty.
    /// - Parameter fraction: 0...1 (0.5: the median; 0.99: the 99th percentile).
    public func percentile(_ fraction: Double) -> UInt64? {
        guard count > 0 else { return nil }
        let rank = max(1, UInt64((Double(count) * min(max(fraction, 0), 1)).rounded(.up)))
        var seen: UInt64 = 0
        for (index, value) in buckets.enumerated() where value > 0 {
            seen += value
            if seen >= rank { return min(Self.lowerBound(index), maximum) }
        }
        return maximum
    }

    /// The summary a report shows.
    public var summary: LatencySummary? {
        guard count > 0 else { return nil }
        return LatencySummary(
            count: count, p50Ms: percentile(0.5)!, p90Ms: percentile(0.9)!, p99Ms: percentile(0.99)!,
            maxMs: maximum, meanMs: Double(total) / Double(count))
    }
}

/// Publish-to-committed latencies of honest readings, ms.
public struct LatencySummary: Hashable, Sendable, Codable {
    /// How many readings.
    public var count: UInt64
    /// The median.
    public var p50Ms: UInt64
    /// The 90th percentile.
    public var p90Ms: UInt64
    /// The 99th percentile.
    public var p99Ms: UInt64
    /// The largest.
    public var maxMs: UInt64
    /// The mean.
    public var meanMs: Double
}
