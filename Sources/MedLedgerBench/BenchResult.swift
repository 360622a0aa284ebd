public import Foundation

/// One `medledger bench` run: the machine, the bare rates, the pipeline's load steps, the ratios,
/// the scaling curves and the memory of the nodes. Written as JSON; rendered as HTML by
/// `BenchReport`.
public struct BenchResult: Codable, Sendable {
    /// The format's version.
    public var version = 1
    /// When the run began (ISO 8601, UTC).
    public var startedAt: String
    /// How long it took, seconds.
    public var durationSeconds: Double = 0
    /// The machine it ran on.
    public var machine: Machine
    /// How it ran.
    public var settings: BenchSettings
    /// The limits' bare rates.
    public var bare: BareRates
    /// The pipeline of the default shape.
    public var pipeline: PipelineRun
    /// Throughput against the limits.
    public var ratios: Ratios
    /// The scaling curves (with `--scaling`).
    public var scaling: Scaling?
    /// Resident memory of each node against its chain length.
    public var memory: [MemorySample] = []
    /// The sizing rule's inputs, derived from the figures above.
    public var sizing: Sizing

    /// A result.
    public init(
        startedAt: String, machine: Machine, settings: BenchSettings, bare: BareRates, pipeline: PipelineRun,
        ratios: Ratios, sizing: Sizing
    ) {
        self.startedAt = startedAt
        self.machine = machine
        self.settings = settings
        self.bare = bare
        self.pipeline = pipeline
        self.ratios = ratios
        self.sizing = sizing
    }

    /// Reads a result file.
    /// - Throws: when it cannot be read or is not a result.
    public static func load(_ path: String) throws -> BenchResult {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(BenchResult.self, from: data)
    }

    /// The JSON text (sorted keys, indented).
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// What the machine was.
public struct Machine: Codable, Hashable, Sendable {
    /// Online cores.
    public var cores: Int
    /// The processor's model name.
    public var cpu: String
    /// Memory, GiB.
    public var memoryGiB: Double
    /// The operating system.
    public var system: String
    /// How `medledger` was built: release or debug.
    public var build: String

    /// A machine as given.
    public init(cores: Int, cpu: String, memoryGiB: Double, system: String, build: String) {
        self.cores = cores
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.system = system
        self.build = build
    }
}

/// The run's parameters.
public struct BenchSettings: Codable, Hashable, Sendable {
    /// Validators of the pipeline's default shape.
    public var validators: Int
    /// Managers of it.
    public var managers: Int
    /// Devices of its fleet.
    public var devices: Int
    /// The most readings in a block.
    public var maxReadings: Int
    /// The block timeout, ms.
    public var blockTimeoutMs: UInt64
    /// Seconds of each step before the measured window.
    public var warmupSeconds: Double
    /// Seconds of each step's measured window.
    public var measureSeconds: Double
    /// The fleet's seed.
    public var seed: UInt64
    /// Whether it was a quick run (short steps, fewer of them).
    public var quick: Bool

    /// Settings as given.
    public init(
        validators: Int, managers: Int, devices: Int, maxReadings: Int, blockTimeoutMs: UInt64,
        warmupSeconds: Double, measureSeconds: Double, seed: UInt64, quick: Bool
    ) {
        self.validators = validators
        self.managers = managers
        self.devices = devices
        self.maxReadings = maxReadings
        self.blockTimeoutMs = blockTimeoutMs
        self.warmupSeconds = warmupSeconds
        self.measureSeconds = measureSeconds
        self.seed = seed
        self.quick = quick
    }
}

/// The pipeline of one shape under growing load.
public struct PipelineRun: Codable, Hashable, Sendable {
    /// Its validators and managers.
    public var validators: Int
    /// Its managers.
    public var managers: Int
    /// The load steps in the order they ran.
    public var steps: [LoadStep] = []
    /// The most readings committed per second in a step.
    public var sustainedPerSecond: Double = 0
    /// Whether a step saturated (if not, `sustainedPerSecond` is a lower bound).
    public var foundSaturation = false
    /// The step at half of `sustainedPerSecond`: the latency figure.
    public var halfLoad: LoadStep?
    /// Committed and offered readings per second, second by second, over every step.
    public var timeline: [TimelinePoint] = []

    /// A run of a shape.
    public init(validators: Int, managers: Int) {
        self.validators = validators
        self.managers = managers
    }
}

/// One second of a pipeline run.
public struct TimelinePoint: Codable, Hashable, Sendable {
    /// Seconds since the pipeline's first step began.
    public var seconds: Double
    /// The step it belongs to (its index; the half-load step is the last).
    public var step: Int
    /// Readings first published in that second.
    public var offered: Double
    /// Readings committed in it.
    public var committed: Double
    /// The median latency of the readings committed in it, ms.
    public var p50Ms: UInt64?
    /// Their 99th percentile, ms.
    public var p99Ms: UInt64?

    /// A point as given.
    public init(seconds: Double, step: Int, offered: Double, committed: Double, p50Ms: UInt64?, p99Ms: UInt64?) {
        self.seconds = seconds
        self.step = step
        self.offered = offered
        self.committed = committed
        self.p50Ms = p50Ms
        self.p99Ms = p99Ms
    }
}

/// Throughput against the limits.
public struct Ratios: Codable, Hashable, Sendable {
    /// Signature checks of one reading in the shape (`SignatureBound.verificationsPerReading`).
    public var verificationsPerReading: Int
    /// Readings per second the cores' Ed25519 verifications allow.
    public var signatureBoundPerSecond: Double
    /// Sustained throughput / signature bound.
    public var throughputToSignatureBound: Double
    /// MQTT messages a committed reading costs at the broker (in and out).
    public var brokerMessagesPerReading: Double
    /// Sustained throughput × messages per reading / the broker's bare QoS 1 rate.
    public var brokerShare: Double?

    /// Ratios as given.
    public init(
        verificationsPerReading: Int, signatureBoundPerSecond: Double, throughputToSignatureBound: Double,
        brokerMessagesPerReading: Double, brokerShare: Double?
    ) {
        self.verificationsPerReading = verificationsPerReading
        self.signatureBoundPerSecond = signatureBoundPerSecond
        self.throughputToSignatureBound = throughputToSignatureBound
        self.brokerMessagesPerReading = brokerMessagesPerReading
        self.brokerShare = brokerShare
    }
}

/// The scaling curves.
public struct Scaling: Codable, Hashable, Sendable {
    /// Against the fleet's devices.
    public var devices: [ScalingPoint] = []
    /// Against the council's size.
    public var validators: [ScalingPoint] = []
    /// Against the most readings in a block.
    public var blockSize: [ScalingPoint] = []

    /// Empty curves.
    public init() {}
}

/// One point of a scaling curve: the saturated throughput, and the latency at half of it.
public struct ScalingPoint: Codable, Hashable, Sendable {
    /// The varied parameter's value.
    public var value: Int
    /// The saturating step.
    public var saturated: LoadStep
    /// The step at half of its throughput.
    public var halfLoad: LoadStep?

    /// A point as given.
    public init(value: Int, saturated: LoadStep, halfLoad: LoadStep?) {
        self.value = value
        self.saturated = saturated
        self.halfLoad = halfLoad
    }
}

/// One node's resident memory at one chain length.
public struct MemorySample: Codable, Hashable, Sendable {
    /// The node.
    public var node: String
    /// Its role.
    public var role: String
    /// Its chain's height.
    public var height: UInt64
    /// Readings in its chain.
    public var readings: Int
    /// Resident memory, MiB.
    public var residentMiB: Double
    /// Its database's size, MiB.
    public var databaseMiB: Double

    /// A sample as given.
    public init(node: String, role: String, height: UInt64, readings: Int, residentMiB: Double, databaseMiB: Double) {
        self.node = node
        self.role = role
        self.height = height
        self.readings = readings
        self.residentMiB = residentMiB
        self.databaseMiB = databaseMiB
    }
}
