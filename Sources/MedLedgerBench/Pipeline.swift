/// Latency percentiles from publish to committed receipt, ms.
public struct Percentiles: Codable, Hashable, Sendable {
    /// How many readings they cover.
    public var count: UInt64
    /// The median.
    public var p50Ms: UInt64
    /// The 95th percentile.
    public var p95Ms: UInt64
    /// The 99th percentile.
    public var p99Ms: UInt64
    /// The largest.
    public var maxMs: UInt64

    /// Percentiles as given.
    public init(count: UInt64, p50Ms: UInt64, p95Ms: UInt64, p99Ms: UInt64, maxMs: UInt64) {
        self.count = count
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
        self.p99Ms = p99Ms
        self.maxMs = maxMs
    }
}

/// One load step of a pipeline run: a fleet publishing at one rate for a while.
public struct LoadStep: Codable, Hashable, Sendable {
    /// The readings per second asked of the fleet.
    public var requestedPerSecond: Double
    /// The devices, and the readings per second each was asked for.
    public var devices: Int
    /// Readings per second asked of each device.
    public var perDeviceRate: Double
    /// Readings first published per second in the measured window.
    public var offeredPerSecond: Double
    /// Readings committed per second in the measured window (their committed receipts).
    public var committedPerSecond: Double
    /// Latency of the readings committed in the measured window; nil when none was.
    public var latency: Percentiles?
    /// "Busy" receipts (a full mempool) in the window.
    public var busy: Int
    /// Readings published again in the window (after a busy receipt or a reconnect).
    public var resent: Int
    /// Whether the pipeline could not keep up, and why.
    public var saturated: Bool
    /// Why it counts as saturated (nil when it is not).
    public var saturationReason: String?
    /// CPU time the nodes of each role spent per committed reading in the window, ms (the mean
    /// over the role's nodes).
    public var cpuMsPerReading: [String: Double]?

    /// A step as measured; `saturated` and its reason come from `Saturation.judge`.
    public init(
        requestedPerSecond: Double, devices: Int, perDeviceRate: Double, offeredPerSecond: Double,
        committedPerSecond: Double, latency: Percentiles?, busy: Int, resent: Int,
        criteria: Saturation.Criteria = .init()
    ) {
        self.requestedPerSecond = requestedPerSecond
        self.devices = devices
        self.perDeviceRate = perDeviceRate
        self.offeredPerSecond = offeredPerSecond
        self.committedPerSecond = committedPerSecond
        self.latency = latency
        self.busy = busy
        self.resent = resent
        saturationReason = Saturation.judge(
            offered: offeredPerSecond, committed: committedPerSecond, p99Ms: latency?.p99Ms, busy: busy,
            criteria: criteria)
        saturated = saturationReason != nil
    }
}

/// When a step counts as saturated.
public enum Saturation {
    /// The thresholds.
    public struct Criteria: Codable, Hashable, Sendable {
        /// Committed below this share of offered: the pipeline falls behind.
        public var keepUpShare = 0.9
        /// A p99 latency above this, ms: readings queue.
        public var p99LimitMs: UInt64 = 2000
        /// Busy receipts above this share of offered: the mempool is full.
        public var busyShare = 0.01

        /// The default thresholds.
        public init() {}
    }

    /// Why a step counts as saturated, or nil when it does not.
    /// - Parameters:
    ///   - offered: readings first published per second.
    ///   - committed: readings committed per second.
    ///   - p99Ms: the 99th percentile of latency (nil: nothing was committed).
    ///   - busy: busy receipts in the window.
    ///   - criteria: the thresholds.
    public static func judge(
        offered: Double, committed: Double, p99Ms: UInt64?, busy: Int, criteria: Criteria = .init()
    ) -> String? {
        guard offered > 0 else { return "nothing was published" }
        if committed < criteria.keepUpShare * offered {
            return "committed \(Int(committed.rounded()))/s of \(Int(offered.rounded()))/s offered"
        }
        guard let p99Ms else { return "nothing was committed" }
        if p99Ms > criteria.p99LimitMs { return "p99 \(p99Ms) ms over \(criteria.p99LimitMs) ms" }
        if Double(busy) > criteria.busyShare * offered {
            return "\(busy) busy receipts (a full mempool)"
        }
        return nil
    }
}

/// The search for the rate a pipeline sustains: the load grows by `factor` until a step
/// saturates, then the gap between the last step that kept up and the first that did not is
/// split (geometrically) until it is narrower than `resolution`, within `maxSteps` steps.
public struct SaturationSearch: Sendable {
    /// The first rate, readings per second.
    public let start: Double
    /// The growth from one step to the next until saturation.
    public let factor: Double
    /// The search ends when the saturated rate is within this ratio of the highest that kept up.
    public let resolution: Double
    /// The most steps.
    public let maxSteps: Int
    /// The lowest rate it tries.
    public let minimum: Double
    /// The steps so far.
    public private(set) var steps: [LoadStep] = []

    /// A search.
    /// - Parameters:
    ///   - start: the first rate, readings per second.
    ///   - factor: the growth per step (> 1).
    ///   - resolution: the ratio at which the bracket is narrow enough (> 1).
    ///   - maxSteps: the most steps.
    ///   - minimum: the lowest rate it tries.
    public init(start: Double, factor: Double = 2, resolution: Double = 1.25, maxSteps: Int = 8, minimum: Double = 1) {
        self.start = max(start, minimum)
        self.factor = max(1.05, factor)
        self.resolution = max(1.01, resolution)
        self.maxSteps = max(1, maxSteps)
        self.minimum = minimum
    }

    /// Records a measured step.
    public mutating func record(_ step: LoadStep) { steps.append(step) }

    /// The rate of the next step, or nil when the search is over.
    public var nextRate: Double? {
        guard let last = steps.last else { return start }
        guard steps.count < maxSteps else { return nil }
        let saturated = steps.filter(\.saturated).map(\.requestedPerSecond)
        guard let lowestSaturated = saturated.min() else { return last.requestedPerSecond * factor }
        let keptUp = steps.filter { !$0.saturated && $0.requestedPerSecond < lowestSaturated }
        guard let highestKeptUp = keptUp.map(\.requestedPerSecond).max() else {
            let lower = lowestSaturated / factor
            return lower >= minimum ? lower : nil
        }
        guard lowestSaturated / highestKeptUp > resolution else { return nil }
        return (lowestSaturated * highestKeptUp).squareRoot()
    }

    /// Whether any step saturated (if none did, the sustained rate is only a lower bound).
    public var foundSaturation: Bool { steps.contains(where: \.saturated) }

    /// The most readings committed per second in any step: what the pipeline sustains.
    public var sustainedPerSecond: Double { steps.map(\.committedPerSecond).max() ?? 0 }

    /// The rate of the latency step: half of what the pipeline sustained. When no step committed
    /// anything in its window (a machine too loaded, a window too short), half of the lowest rate
    /// asked for, so that the step still offers load and reports what it got.
    public var halfLoadRate: Double {
        let sustained = sustainedPerSecond
        if sustained > 0 { return max(minimum, sustained / 2) }
        return max(minimum, (steps.map(\.requestedPerSecond).min() ?? start) / 2)
    }
}

/// The bound that signature checking sets on a pipeline: the cores' verifications per second
/// divided by the verifications each reading needs in the topology.
public enum SignatureBound {
    /// Verifications of one reading's signature in a network of `validators` and `managers`
    /// (and `observers`): each manager checks it once at intake (every manager takes every
    /// reading), each validator once before its prevote, each observer once when it applies the
    /// block. No node checks a signature twice: a block's readings a manager checked at intake,
    /// and a block a validator checked before its prevote, are not checked again at commit.
    public static func verificationsPerReading(validators: Int, managers: Int, observers: Int = 0) -> Int {
        validators + managers + observers
    }

    /// Readings per second the signatures allow.
    /// - Parameters:
    ///   - verificationsPerSecond: the cores' verifications per second (all cores).
    ///   - validators: the council's size.
    ///   - managers: the managers.
    public static func readingsPerSecond(verificationsPerSecond: Double, validators: Int, managers: Int) -> Double {
        verificationsPerSecond / Double(max(1, verificationsPerReading(validators: validators, managers: managers)))
    }
}

/// The MQTT messages the broker carries per committed reading, blocks and votes aside (they
/// are shared by a block's readings): the reading in and out to every manager, and every
/// manager's "accepted" and "committed" receipts in and out to the device.
public enum BrokerLoad {
    /// Messages per reading with `managers` managers.
    public static func messagesPerReading(managers: Int) -> Double { Double(1 + 5 * max(1, managers)) }
}
