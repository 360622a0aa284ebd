#if canImport(Glibc)
    import Glibc
#endif

/// The wall clock, for what the protocol times by it: readings' and transactions' times, receipt
/// times, skew checks. (The pure core never reads a clock; it is given the time.)
public enum WallClock {
    /// Milliseconds since the Unix epoch.
    public static func nowMs() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec / 1_000_000)
    }
}
