import Foundation
import MedLedgerBench
import Testing

/// The JSON result and the HTML report.
@Suite("The bench report")
struct ReportTests {
    func step(_ rate: Double, committed: Double) -> LoadStep {
        LoadStep(
            requestedPerSecond: rate, devices: 10, perDeviceRate: rate / 10, offeredPerSecond: rate,
            committedPerSecond: committed, latency: Percentiles(count: 10, p50Ms: 20, p95Ms: 40, p99Ms: 60, maxMs: 90),
            busy: 0, resent: 0)
    }

    func result(started: String, sustained: Double) -> BenchResult {
        var pipeline = PipelineRun(validators: 4, managers: 1)
        pipeline.steps = [step(100, committed: 100), step(200, committed: sustained)]
        pipeline.sustainedPerSecond = sustained
        pipeline.foundSaturation = true
        pipeline.halfLoad = step(sustained / 2, committed: sustained / 2)
        pipeline.timeline = (0..<20).map {
            TimelinePoint(seconds: Double($0), step: $0 / 10, offered: 100, committed: 95, p50Ms: 20, p99Ms: 60)
        }
        var bare = BareRates(
            cores: 2, ed25519OneCore: 20_000, ed25519AllCores: 40_000, es256OneCore: 29_000, es256AllCores: 58_000,
            sha256MBPerSecond: 2000, brokerQoS1PerSecond: 50_000)
        bare.receiptSignOneCore = 25_000
        let bound = 8000.0
        var result = BenchResult(
            startedAt: started,
            machine: Machine(cores: 2, cpu: "test <cpu>", memoryGiB: 24, system: "Debian", build: "release"),
            settings: BenchSettings(
                validators: 4, managers: 1, devices: 10, maxReadings: 500, blockTimeoutMs: 50, warmupSeconds: 1,
                measureSeconds: 2, seed: 1, quick: true),
            bare: bare, pipeline: pipeline,
            ratios: Ratios(
                verificationsPerReading: 5, signatureBoundPerSecond: bound,
                throughputToSignatureBound: sustained / bound, brokerMessagesPerReading: 6,
                brokerShare: sustained * 6 / 50_000),
            sizing: Sizing(
                managerCPUMsPerReading: 0.2, validatorCPUMsPerReading: 0.1, diskBytesPerReading: 105,
                managerResidentMiB: 100, validatorResidentMiB: 80, sustainedPerSecond: sustained))
        var scaling = Scaling()
        scaling.devices = [100, 1000, 10_000].map {
            ScalingPoint(value: $0, saturated: step(200, committed: 150), halfLoad: step(75, committed: 75))
        }
        result.scaling = scaling
        result.memory = [
            MemorySample(node: "manager-1", role: "manager", height: 5, readings: 500, residentMiB: 60, databaseMiB: 1),
            MemorySample(
                node: "manager-1", role: "manager", height: 9, readings: 900, residentMiB: 64, databaseMiB: 2),
        ]
        return result
    }

    @Test func aResultRoundTripsThroughItsJSON() throws {
        let original = result(started: "2026-12-02T12:00:00Z", sustained: 180)
        let path = NSTemporaryDirectory() + "bench-\(UUID().uuidString).json"
        try original.json().write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try BenchResult.load(path)
        #expect(loaded.pipeline == original.pipeline)
        #expect(loaded.bare == original.bare)
        #expect(loaded.scaling == original.scaling)
        #expect(loaded.ratios == original.ratios)
    }

    @Test func theSigningCostOfReceiptsIsShownPerReading() {
        let rows = BenchReport.text(bareOnly: result(started: "2026-12-02T12:00:00Z", sustained: 180).bare)
        #expect(
            rows.contains { $0.contains("signed receipts") && $0.contains("25000/s, 40 µs per reading") }, "\(rows)")
        #expect(ReceiptSignRate.measure(seconds: 0.05) > 0)
    }

    @Test func thePageIsSelfContainedDrawsEveryCurveAndEscapesText() {
        let html = BenchReport.html(result(started: "2026-12-02T12:00:00Z", sustained: 180))
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("src=\"http"))
        for title in [
            "Throughput over time", "Latency over time", "Committed against offered", "Latency from publish to commit",
            "Throughput against devices", "Latency at half load against devices",
            "Resident memory against chain length",
        ] {
            #expect(html.contains("aria-label=\"\(title)"), "\(title)")
        }
        #expect(html.components(separatedBy: "<polyline").count - 1 >= 12)
        #expect(html.contains("test &lt;cpu&gt;"))
        #expect(!html.contains("test <cpu>"))
        // The ratio to the signature bound, 180 / 8000.
        #expect(html.contains("<td>throughput / signature bound</td><td>\(String(format: "%.3f", 180.0 / 8000))</td>"))
        #expect(!html.contains("Earlier runs"))
    }

    @Test func earlierRunsAreComparedColumnByColumn() {
        let old = result(started: "2026-12-01T10:00:00Z", sustained: 150)
        let new = result(started: "2026-12-02T12:00:00Z", sustained: 180)
        let html = BenchReport.html(new, earlier: [old])
        #expect(html.contains("Earlier runs"))
        #expect(html.contains("<td>2026-12-01T10:00:00Z</td>") || html.contains("<th>2026-12-01T10:00:00Z</th>"))
        let text = BenchReport.comparisonText([old, new])
        let sustained = text.split(separator: "\n").first { $0.hasPrefix("sustained readings/s") }
        #expect(sustained?.contains("150") == true && sustained?.contains("180") == true, "\(text)")
    }
}
