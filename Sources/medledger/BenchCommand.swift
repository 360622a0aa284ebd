import ArgumentParser
import Foundation
import Logging
import MedLedgerBench
import MedLedgerBroker
import MedLedgerCore
import MedLedgerFleet
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore

#if canImport(Glibc)
    import Glibc
#endif

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Measure this machine: the limits' bare rates, the pipeline to saturation, the ratios, the scaling curves.",
        subcommands: [BenchRunCommand.self, BenchCompareCommand.self, BenchPlanCommand.self],
        defaultSubcommand: BenchRunCommand.self)
}

struct BenchRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the benchmark (the default of `medledger bench`).",
        discussion: """
            In one process tree and one run: (1) Ed25519 and ES256 verifications per second on one core and on \
            every core, SHA-256, and QoS 1 messages per second through a Mosquitto broker with plain libmosquitto; \
            (2) a devnet of the given shape (its nodes are `medledger node` processes) loaded by the fleet at \
            growing rates until it saturates, with committed readings per second and latency from publish to \
            committed receipt (p50, p95, p99, max) at each rate, then at half of the sustained rate; (3) the \
            sustained rate against the bound signature checking sets for the shape and against the broker's bare \
            rate. With --scaling, also throughput and latency against devices (100, 1,000, 10,000), validators \
            (4, 7, 10) and block size. Writes OUT/bench-TIME.json and .html (and latest.json, latest.html); the \
            page compares the run with the earlier ones in OUT. Build with `swift build -c release` first: debug \
            figures are not representative.
            """)

    @Option(help: "The work directory (made afresh; nodes' databases and logs are left there).")
    var dir: String = ".bench"
    @Option(help: "Where results go.")
    var out: String = "bench-results"
    @Option(help: "Validators of the pipeline: 3f+1.")
    var validators: Int = 4
    @Option(help: "Managers of the pipeline.")
    var managers: Int = 1
    @Option(help: "Devices of the fleet that loads it.")
    var devices: Int = 500
    @Option(help: "The first step's readings per second.")
    var startRate: Double = 500
    @Option(help: "The load's growth from one step to the next until saturation.")
    var factor: Double = 2
    @Option(help: "The most load steps of the search.")
    var maxSteps: Int = 8
    @Option(help: "Seconds of each step before its measured window.")
    var warmup: Double = 4
    @Option(help: "Seconds of each step's measured window.")
    var measure: Double = 10
    @Option(help: "Seconds each bare compute rate is measured.")
    var bareSeconds: Double = 2
    @Option(help: "Messages of the broker's bare rate.")
    var brokerMessages: Int = 200_000
    @Option(help: "The most readings in a block.")
    var maxReadings: Int = 500
    @Option(help: "How long a manager waits before it cuts a block anyway, ms.")
    var blockTimeoutMs: UInt64 = 50
    @Option(help: "The fleet's random seed.")
    var seed: UInt64 = 1
    @Flag(help: "Also the scaling curves (devices, validators, block size): some minutes more.")
    var scaling = false
    @Flag(help: "A short run (short steps, fewer of them, small bare measurements): for a smoke test.")
    var quick = false
    @Option(help: "Compare with these earlier results too (besides the ones in OUT).")
    var compare: [String] = []

    func validate() throws {
        guard validators >= 1, validators % 3 == 1 else { throw ValidationError("--validators must be 3f+1") }
        guard managers >= 1 else { throw ValidationError("--managers must be at least 1") }
        guard devices >= 1 else { throw ValidationError("--devices must be at least 1") }
        guard startRate > 0, factor > 1, maxSteps >= 1 else {
            throw ValidationError("--start-rate must be > 0, --factor > 1 and --max-steps >= 1")
        }
        guard warmup >= 0, measure > 0, bareSeconds > 0, brokerMessages >= 1000 else {
            throw ValidationError("--warmup must be >= 0, --measure and --bare-seconds > 0, --broker-messages >= 1000")
        }
    }

    /// The settings after --quick.
    var effective: (warmup: Double, measure: Double, maxSteps: Int, bareSeconds: Double, brokerMessages: Int) {
        quick
            ? (min(warmup, 2), min(measure, 3), min(maxSteps, 3), min(bareSeconds, 0.2), min(brokerMessages, 20_000))
            : (warmup, measure, maxSteps, bareSeconds, brokerMessages)
    }

    func run() async throws {
        LogSetup.bootstrap(format: .text, level: LogLevel(.warning))
        let logger = Logger(label: "medledger.bench")
        let work = URL(fileURLWithPath: dir).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: work) {
            guard FileManager.default.fileExists(atPath: "\(work)/bench.marker") else {
                throw ToolError("\(work) exists and is not a bench work directory; choose another --dir")
            }
            try FileManager.default.removeItem(atPath: work)
        }
        try Files.makeDirectory(work)
        try Files.write("medledger bench work directory\n", to: "\(work)/bench.marker")
        let earlier = try loadEarlier()
        let clock = ContinuousClock()
        let began = clock.now
        let startedAt = ISO8601DateFormatter().string(from: Date())
        let settings = effective
        #if DEBUG
            say("bench: this is a debug build; build with `swift build -c release` for representative figures")
        #endif

        // (1) The bare rates.
        say("bench: bare rates (\(ProcessorCount.active) cores)")
        var bare = BareRates.measureCompute(seconds: settings.bareSeconds, cores: ProcessorCount.active)
        let bareBroker = try await DevnetSetup.startBroker(directory: "\(work)/bare-broker", logger: logger)
        do {
            bare.brokerQoS1PerSecond = try PlainMosquittoRate.measure(
                host: bareBroker.host, port: bareBroker.port, count: settings.brokerMessages)
        } catch {
            await bareBroker.stop()
            throw ToolError("the broker's bare rate: \(error)")
        }
        await bareBroker.stop()
        for row in BenchReport.text(bareOnly: bare) { say("  " + row) }

        // (2) The pipeline to saturation, then at half of what it sustained.
        func block(_ most: Int) -> BlockParameters {
            BlockParameters(maxReadings: most, maxBytes: 1 << 20, timeoutMs: blockTimeoutMs)
        }
        func runner(_ network: BenchNetwork, devices: Int, fleet: String) -> LoadRunner {
            LoadRunner(
                network: network, devices: devices, fleetDirectory: "\(work)/fleet-\(fleet)", seed: seed,
                warmup: settings.warmup, measure: settings.measure, criteria: Saturation.Criteria(), logger: logger)
        }
        let shape = BenchShape(validators: validators, managers: managers, block: block(maxReadings))
        let base = try await BenchNetwork.start(shape, directory: "\(work)/\(shape.name)", logger: logger)
        var memory: [MemorySample] = []
        var pipeline = PipelineRun(validators: validators, managers: managers)
        var search = SaturationSearch(start: startRate, factor: factor, maxSteps: settings.maxSteps)
        let loader = runner(base, devices: devices, fleet: "\(devices)")
        do {
            say("bench: pipeline of \(shape.name), \(devices) devices")
            while let rate = search.nextRate {
                let step = try await loader.step(rate: rate)
                search.record(step)
                say("  " + BenchReport.stepLine(step))
                memory += base.memorySamples()
            }
            pipeline.steps = search.steps
            pipeline.sustainedPerSecond = search.sustainedPerSecond
            pipeline.foundSaturation = search.foundSaturation
            let half = try await loader.step(rate: search.halfLoadRate)
            say("  half load: " + BenchReport.stepLine(half))
            pipeline.halfLoad = half
            memory += base.memorySamples()
            pipeline.timeline = loader.timeline
        } catch {
            await base.stop()
            throw error
        }

        // Scaling: devices on this network, then other shapes.
        var curves: Scaling?
        if scaling {
            var found = Scaling()
            let capacity = max(50, pipeline.sustainedPerSecond)
            do {
                for count in [100, 1000, 10_000] {
                    say("bench: scaling, \(count) devices")
                    let counted = runner(base, devices: count, fleet: "\(count)")
                    found.devices.append(try await counted.point(value: count, capacity: capacity))
                    memory += base.memorySamples()
                }
            } catch {
                await base.stop()
                throw error
            }
            await base.stop()
            if let saturated = pipeline.steps.max(by: { $0.committedPerSecond < $1.committedPerSecond }) {
                let here = ScalingPoint(value: validators, saturated: saturated, halfLoad: pipeline.halfLoad)
                found.validators.append(here)
                var point = here
                point.value = maxReadings
                found.blockSize.append(point)
            }
            let others =
                [7, 10].filter { $0 != validators }.map {
                    (\Scaling.validators, $0, BenchShape(validators: $0, managers: managers, block: shape.block))
                }
                + [100, 2000].filter { $0 != maxReadings }.map {
                    (
                        \Scaling.blockSize, $0,
                        BenchShape(validators: validators, managers: managers, block: block($0))
                    )
                }
            for (curve, value, other) in others {
                say("bench: scaling, \(other.name)")
                let network = try await BenchNetwork.start(other, directory: "\(work)/\(other.name)", logger: logger)
                do {
                    let shaped = runner(network, devices: devices, fleet: other.name)
                    found[keyPath: curve].append(try await shaped.point(value: value, capacity: capacity))
                } catch {
                    await network.stop()
                    throw error
                }
                await network.stop()
            }
            found.validators.sort { $0.value < $1.value }
            found.blockSize.sort { $0.value < $1.value }
            curves = found
        } else {
            await base.stop()
        }

        // (3) The ratios, the sizing inputs, the files.
        let perReading = SignatureBound.verificationsPerReading(validators: validators, managers: managers)
        let bound = SignatureBound.readingsPerSecond(
            verificationsPerSecond: bare.ed25519AllCores, validators: validators, managers: managers)
        let messages = BrokerLoad.messagesPerReading(managers: managers)
        let ratios = Ratios(
            verificationsPerReading: perReading, signatureBoundPerSecond: bound,
            throughputToSignatureBound: bound > 0 ? pipeline.sustainedPerSecond / bound : 0,
            brokerMessagesPerReading: messages,
            brokerShare: bare.brokerQoS1PerSecond.map { pipeline.sustainedPerSecond * messages / $0 })
        let sustainedStep = pipeline.steps.max { $0.committedPerSecond < $1.committedPerSecond }
        let lastManager = memory.last { $0.role == "manager" }
        let sizing = Sizing(
            managerCPUMsPerReading: sustainedStep?.cpuMsPerReading?["manager"],
            validatorCPUMsPerReading: sustainedStep?.cpuMsPerReading?["validator"],
            diskBytesPerReading: lastManager.flatMap {
                $0.readings > 0 ? $0.databaseMiB * 1_048_576 / Double($0.readings) : nil
            },
            managerResidentMiB: memory.filter { $0.role == "manager" }.map(\.residentMiB).max(),
            validatorResidentMiB: memory.filter { $0.role == "validator" }.map(\.residentMiB).max(),
            sustainedPerSecond: pipeline.sustainedPerSecond)
        var result = BenchResult(
            startedAt: startedAt, machine: MachineInfo.current(),
            settings: BenchSettings(
                validators: validators, managers: managers, devices: devices, maxReadings: maxReadings,
                blockTimeoutMs: blockTimeoutMs, warmupSeconds: settings.warmup, measureSeconds: settings.measure,
                seed: seed, quick: quick),
            bare: bare, pipeline: pipeline, ratios: ratios, sizing: sizing)
        result.scaling = curves
        result.memory = memory
        result.durationSeconds = (clock.now - began) / .seconds(1)
        try write(result, earlier: earlier)
    }

    func loadEarlier() throws -> [BenchResult] {
        var found: [BenchResult] = []
        for path in compare {
            do {
                found.append(try BenchResult.load(path))
            } catch {
                throw ToolError("--compare \(path): not a bench result (\(error))")
            }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        for name in names.sorted() where name.hasPrefix("bench-") && name.hasSuffix(".json") {
            // A file of another format is left out, not fatal: the directory is the user's.
            if let result = try? BenchResult.load("\(out)/\(name)") { found.append(result) }
        }
        return Array(found.sorted { $0.startedAt < $1.startedAt }.suffix(10))
    }

    func write(_ result: BenchResult, earlier: [BenchResult]) throws {
        try Files.makeDirectory(out)
        let stamp = result.startedAt.replacingOccurrences(of: ":", with: "")
        let json = Array(try result.json())
        let html = BenchReport.html(result, earlier: earlier)
        for name in ["bench-\(stamp)", "latest"] {
            try Files.write(json, to: "\(out)/\(name).json")
            try Files.write(html, to: "\(out)/\(name).html")
        }
        say(BenchReport.text(result))
        say("bench: \(out)/bench-\(stamp).json and .html (also \(out)/latest.html)")
    }
}

struct BenchCompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare bench results (JSON files of `medledger bench`), one column each.")

    @Argument(help: "The result files, oldest first.")
    var files: [String]

    func run() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one result file") }
        var results: [BenchResult] = []
        for path in files {
            do {
                results.append(try BenchResult.load(path))
            } catch {
                throw ToolError("\(path): not a bench result (\(error))")
            }
        }
        say(BenchReport.comparisonText(results))
    }
}

struct BenchPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "What a deployment needs for a fleet, from a bench result: validators, managers, cores, memory, disk."
    )

    @Option(help: "The bench result it is based on.")
    var result: String = "bench-results/latest.json"
    @Option(help: "The fleet's devices.")
    var devices: Int
    @Option(help: "Readings per second of each device.")
    var rate: Double
    @Option(help: "Validators that may fail or lie at once (f; the council is 3f+1).")
    var faults: Int = 1
    @Option(help: "Hospital sites that run managers (two each).")
    var sites: Int = 1
    @Flag(help: "JSON output.")
    var json = false

    func run() throws {
        guard devices >= 0, rate >= 0, faults >= 0, sites >= 1 else {
            throw ValidationError("--devices and --rate must be >= 0, --faults >= 0, --sites >= 1")
        }
        let measured: BenchResult
        do {
            measured = try BenchResult.load(result)
        } catch {
            throw ToolError("\(result): not a bench result (\(error)); run `medledger bench` first")
        }
        let plan = measured.sizing.plan(devices: devices, ratePerDevice: rate, faults: faults, sites: sites)
        if json {
            say(String(decoding: try JSONOutput.encode(plan), as: UTF8.self))
            return
        }
        say(String(format: "%.1f readings/s from %d devices", plan.readingsPerSecond, devices))
        say("validators: \(plan.validators), \(plan.validatorCores) core(s) each")
        say("managers:   \(plan.managers), \(plan.managerCores) core(s) each")
        say(String(format: "memory:     %.1f GiB per node", plan.memoryGiB))
        say(String(format: "disk:       %.2f GiB per node per day", plan.diskGiBPerDay))
        for note in plan.notes { say("note: \(note)") }
    }
}
