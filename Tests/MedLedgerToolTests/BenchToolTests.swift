import Foundation
import MedLedgerBench
import MedLedgerTestSupport
import Testing

/// `medledger bench` as a user runs it (quick, small): a real broker, real node processes, the
/// fleet in the bench's process; then its files, `bench compare` and `bench plan`.
@Suite("medledger bench", .serialized, .network)
struct BenchToolTests {
    /// One small run: few devices at a low rate, one step of the search, short bare measurements,
    /// so that the suite's other network tests keep their cores.
    func bench(_ directory: TemporaryDirectory) throws -> ToolRunner.Result {
        let process = try ToolRunner.start(
            ToolRunner.medledgerPath,
            [
                "bench", "--quick", "--dir", directory.file("work"), "--out", directory.file("results"), "--devices",
                "10", "--start-rate", "20", "--max-steps", "1", "--warmup", "1", "--measure", "2", "--bare-seconds",
                "0.05", "--broker-messages", "2000",
            ], in: directory.path)
        return ToolRunner.finish(process, timeout: 240)
    }

    /// An earlier result, as a run of yesterday would have left it.
    func earlierResult(_ directory: TemporaryDirectory) throws {
        var pipeline = PipelineRun(validators: 4, managers: 1)
        pipeline.sustainedPerSecond = 12.5
        let result = BenchResult(
            startedAt: "2026-01-01T00:00:00Z",
            machine: Machine(cores: 2, cpu: "earlier", memoryGiB: 24, system: "Debian", build: "release"),
            settings: BenchSettings(
                validators: 4, managers: 1, devices: 10, maxReadings: 500, blockTimeoutMs: 50, warmupSeconds: 1,
                measureSeconds: 2, seed: 1, quick: true),
            bare: BareRates(
                cores: 2, ed25519OneCore: 1, ed25519AllCores: 2, es256OneCore: 1, es256AllCores: 2,
                sha256MBPerSecond: 1, brokerQoS1PerSecond: nil),
            pipeline: pipeline,
            ratios: Ratios(
                verificationsPerReading: 5, signatureBoundPerSecond: 0.4, throughputToSignatureBound: 31.25,
                brokerMessagesPerReading: 6, brokerShare: nil),
            sizing: Sizing(
                managerCPUMsPerReading: nil, validatorCPUMsPerReading: nil, diskBytesPerReading: nil,
                managerResidentMiB: nil, validatorResidentMiB: nil, sustainedPerSecond: 12.5))
        try FileManager.default.createDirectory(atPath: directory.file("results"), withIntermediateDirectories: true)
        try result.json().write(to: URL(fileURLWithPath: directory.file("results/bench-2026-01-01T000000Z.json")))
    }

    @Test func aQuickRunMeasuresEveryPartAndWritesItsResultAndPage() throws {
        let directory = try TemporaryDirectory("bench")
        defer { directory.remove() }
        try earlierResult(directory)
        let first = try bench(directory)
        let context = "\(first.stdout)\n\(first.stderr)"
        try #require(first.status == 0, "\(context)")
        let result = try BenchResult.load(directory.file("results/latest.json"))
        // (1) the bare rates, the broker's through plain libmosquitto.
        #expect(result.bare.ed25519OneCore > 0 && result.bare.es256AllCores > 0 && result.bare.sha256MBPerSecond > 0)
        #expect((result.bare.brokerQoS1PerSecond ?? 0) > 1000, "\(context)")
        // (2) the pipeline: the one step of the search, then half load. What is checked is that
        // each step ran, offered load and reported what it got: how much a short window commits
        // depends on the machine's load, so figures are checked only where something committed.
        #expect(result.pipeline.steps.count == 1, "\(context)")
        #expect(result.pipeline.steps.map(\.requestedPerSecond).first == 20)
        let half = try #require(result.pipeline.halfLoad)
        for step in result.pipeline.steps + [half] {
            #expect(step.requestedPerSecond > 0 && step.offeredPerSecond > 0, "\(context)")
            #expect(step.devices == 10, "\(context)")
            if step.committedPerSecond > 0 {
                #expect(step.latency != nil, "\(context)")
                #expect(step.cpuMsPerReading?["manager"] != nil, "\(context)")
            }
        }
        // Half of what was sustained, or of the step's rate when its window committed nothing.
        let sustained = result.pipeline.sustainedPerSecond
        #expect(half.requestedPerSecond == (sustained > 0 ? max(1, sustained / 2) : 10), "\(context)")
        #expect(sustained == result.pipeline.steps.map(\.committedPerSecond).max())
        #expect(result.pipeline.timeline.count >= 4, "\(context)")
        // The devices were registered on the ledger before the steps: the chain grew.
        #expect(result.memory.contains { $0.role == "validator" && $0.residentMiB > 1 && $0.height > 0 })
        // (3) the ratios.
        #expect(result.ratios.verificationsPerReading == 5)
        #expect(abs(result.ratios.signatureBoundPerSecond - result.bare.ed25519AllCores / 5) < 1e-6)
        #expect(
            abs(result.ratios.throughputToSignatureBound - sustained / result.ratios.signatureBoundPerSecond) < 1e-6)
        #expect(first.stdout.contains("throughput / signature bound: "), "\(context)")
        // The page, with the earlier run of the same directory compared.
        let page = try String(contentsOfFile: directory.file("results/latest.html"), encoding: .utf8)
        #expect(page.contains("<svg") && page.contains("Throughput over time"))
        #expect(page.contains("Earlier runs") && page.contains("2026-01-01T00:00:00Z"))
        let runs = try FileManager.default.contentsOfDirectory(atPath: directory.file("results")).filter {
            $0.hasPrefix("bench-") && $0.hasSuffix(".json")
        }.sorted()
        #expect(runs.count == 2, "\(runs)")
        let compared = try ToolRunner.medledger(
            "bench", "compare", directory.file("results/\(runs[0])"), directory.file("results/\(runs[1])"),
            in: directory.path)
        #expect(compared.status == 0, "\(compared.stderr)")
        #expect(compared.stdout.contains("sustained readings/s"), "\(compared.stdout)")

        let plan = try ToolRunner.medledger(
            "bench", "plan", "--result", directory.file("results/latest.json"), "--devices", "1000", "--rate", "0.5",
            in: directory.path)
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("500.0 readings/s from 1000 devices"), "\(plan.stdout)")
        #expect(plan.stdout.contains("validators: 4"), "\(plan.stdout)")

        // Bad inputs are named.
        let notAResult = try ToolRunner.medledger(
            "bench", "compare", directory.file("results/latest.html"), in: directory.path)
        #expect(notAResult.status != 0 && notAResult.stderr.contains("not a bench result"), "\(notAResult.stderr)")
        let badShape = try ToolRunner.medledger("bench", "--validators", "5", in: directory.path)
        #expect(badShape.status != 0 && badShape.stderr.contains("3f+1"), "\(badShape.stderr)")
    }
}
