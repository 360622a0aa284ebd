internal import Foundation

/// Renders a bench result: a self-contained HTML page with its curves as inline SVG, the text
/// summary the command prints, and the comparison of runs.
public enum BenchReport {
    /// The HTML page.
    /// - Parameters:
    ///   - result: the run.
    ///   - earlier: earlier runs, to compare with (oldest first).
    public static func html(_ result: BenchResult, earlier: [BenchResult] = []) -> String {
        var body = "<h1>MedLedger bench, \(HTMLText.escape(result.startedAt))</h1>"
        let machine = result.machine
        body +=
            "<p class=\"machine\">\(machine.cores) cores (\(HTMLText.escape(machine.cpu))), "
            + String(format: "%.1f GiB", machine.memoryGiB) + ", \(HTMLText.escape(machine.system)), "
            + "\(HTMLText.escape(machine.build)) build; run took \(Int(result.durationSeconds.rounded())) s.</p>"
        body += "<h2>Figures</h2>" + table(headline(result))
        body += "<h2>Bare rates</h2>" + table(bareRows(result.bare))
        body += "<h2>Pipeline: \(result.pipeline.validators) validators, \(result.pipeline.managers) manager(s)</h2>"
        body += pipelineCharts(result.pipeline, bound: result.ratios.signatureBoundPerSecond)
        body += table([stepHeader] + result.pipeline.steps.map(stepRow), header: true)
        if let half = result.pipeline.halfLoad {
            body += "<p>At half the sustained load:</p>" + table([stepHeader, stepRow(half)], header: true)
        }
        if let scaling = result.scaling { body += scalingSection(scaling) }
        if !result.memory.isEmpty { body += memorySection(result.memory) }
        body += sizingSection(result.sizing)
        if !earlier.isEmpty { body += "<h2>Earlier runs</h2>" + comparisonTable(earlier + [result]) }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>MedLedger bench \(HTMLText.escape(result.startedAt))</title>
            <style>
            body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}
            table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
            td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}
            svg.chart{background:#fff;border:1px solid #ddd}svg text{font-size:11px;fill:#333}
            svg text.title{font-size:13px;font-weight:bold}.frame{fill:none;stroke:#999}.grid{stroke:#eee}
            .axis{stroke:#999}.machine{color:#555}
            </style></head><body>
            \(body)
            </body></html>
            """
    }

    /// The lines the command prints at the end.
    public static func text(_ result: BenchResult) -> String {
        (headline(result).map { "\($0[0]): \($0[1])" }).joined(separator: "\n")
    }

    /// The bare rates, a line each.
    public static func text(bareOnly bare: BareRates) -> [String] { bareRows(bare).map { "\($0[0]): \($0[1])" } }

    /// One step in a line.
    public static func stepLine(_ step: LoadStep) -> String {
        var line =
            "asked \(format(step.requestedPerSecond))/s: offered \(format(step.offeredPerSecond))/s, "
            + "committed \(format(step.committedPerSecond))/s"
        if let latency = step.latency {
            line +=
                ", p50 \(latency.p50Ms) ms, p95 \(latency.p95Ms) ms, p99 \(latency.p99Ms) ms, max \(latency.maxMs) ms"
        }
        if step.busy > 0 { line += ", \(step.busy) busy" }
        if let reason = step.saturationReason { line += " (saturated: \(reason))" }
        return line
    }

    /// A text table comparing runs, one column per run.
    public static func comparisonText(_ results: [BenchResult]) -> String {
        let rows = comparisonRows(results)
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == 0
                    ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[index] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    // MARK: - Parts

    static func headline(_ result: BenchResult) -> [[String]] {
        let pipeline = result.pipeline
        var rows = [
            [
                "sustained throughput",
                "\(format(pipeline.sustainedPerSecond)) readings/s committed"
                    + (pipeline.foundSaturation ? "" : " (no step saturated: a lower bound)"),
            ],
            [
                "signature bound",
                "\(format(result.ratios.signatureBoundPerSecond)) readings/s (\(format(result.bare.ed25519AllCores)) "
                    + "Ed25519 verifications/s on \(result.bare.cores) cores / \(result.ratios.verificationsPerReading) per reading)",
            ],
            ["throughput / signature bound", String(format: "%.3f", result.ratios.throughputToSignatureBound)],
        ]
        if let share = result.ratios.brokerShare, let broker = result.bare.brokerQoS1PerSecond {
            rows.append([
                "broker share",
                String(format: "%.3f", share)
                    + " (\(format(result.ratios.brokerMessagesPerReading)) messages per reading; bare QoS 1 \(format(broker))/s)",
            ])
        }
        if let half = pipeline.halfLoad, let latency = half.latency {
            rows.append([
                "latency at half load",
                "\(format(half.committedPerSecond)) readings/s: p50 \(latency.p50Ms) ms, p95 \(latency.p95Ms) ms, "
                    + "p99 \(latency.p99Ms) ms, max \(latency.maxMs) ms",
            ])
        }
        return rows
    }

    static func bareRows(_ bare: BareRates) -> [[String]] {
        var rows = [
            ["Ed25519 verify, 1 core", "\(format(bare.ed25519OneCore))/s"],
            ["Ed25519 verify, \(bare.cores) cores", "\(format(bare.ed25519AllCores))/s"],
            ["ES256 verify, 1 core", "\(format(bare.es256OneCore))/s"],
            ["ES256 verify, \(bare.cores) cores", "\(format(bare.es256AllCores))/s"],
            ["SHA-256, 1 core", String(format: "%.0f MB/s", bare.sha256MBPerSecond)],
        ]
        if let signing = bare.receiptSignOneCore, signing > 0 {
            rows.append([
                "signed receipts, 1 core (each manager signs one per reading)",
                "\(format(signing))/s, \(String(format: "%.0f", 1e6 / signing)) µs per reading",
            ])
        }
        if let broker = bare.brokerQoS1PerSecond {
            rows.append(["QoS 1 through the broker (plain libmosquitto)", "\(format(broker)) messages/s"])
        }
        return rows
    }

    static let stepHeader = [
        "asked/s", "devices", "offered/s", "committed/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "busy", "resent",
        "saturated",
    ]

    static func stepRow(_ step: LoadStep) -> [String] {
        let latency = step.latency
        return [
            format(step.requestedPerSecond), "\(step.devices)", format(step.offeredPerSecond),
            format(step.committedPerSecond), latency.map { "\($0.p50Ms)" } ?? "-", latency.map { "\($0.p95Ms)" } ?? "-",
            latency.map { "\($0.p99Ms)" } ?? "-", latency.map { "\($0.maxMs)" } ?? "-", "\(step.busy)",
            "\(step.resent)", step.saturationReason ?? "no",
        ]
    }

    static func pipelineCharts(_ pipeline: PipelineRun, bound: Double) -> String {
        let timeline = pipeline.timeline
        let overTime = SVGChart(
            title: "Throughput over time (every step)", xLabel: "seconds", yLabel: "readings/s",
            series: [
                .init(name: "offered", points: timeline.map { ($0.seconds, $0.offered) }, dashed: true),
                .init(name: "committed", points: timeline.map { ($0.seconds, $0.committed) }),
            ])
        let steps = (pipeline.steps + (pipeline.halfLoad.map { [$0] } ?? [])).sorted {
            $0.offeredPerSecond < $1.offeredPerSecond
        }
        let withLatency = steps.filter { $0.latency != nil }
        func series(_ name: String, _ value: (Percentiles) -> UInt64) -> SVGChart.Series {
            .init(name: name, points: withLatency.map { ($0.offeredPerSecond, Double(value($0.latency!))) })
        }
        let latency = SVGChart(
            title: "Latency from publish to commit", xLabel: "offered readings/s", yLabel: "ms",
            series: [series("p50", \.p50Ms), series("p95", \.p95Ms), series("p99", \.p99Ms), series("max", \.maxMs)])
        let throughput = SVGChart(
            title: "Committed against offered", xLabel: "offered readings/s", yLabel: "committed readings/s",
            series: [
                .init(name: "committed", points: steps.map { ($0.offeredPerSecond, $0.committedPerSecond) }),
                .init(
                    name: "signature bound",
                    points: steps.isEmpty
                        ? [] : [(steps[0].offeredPerSecond, bound), (steps.last!.offeredPerSecond, bound)],
                    dashed: true),
            ])
        let latencyOverTime = SVGChart(
            title: "Latency over time", xLabel: "seconds", yLabel: "ms",
            series: [
                .init(
                    name: "p50",
                    points: timeline.compactMap { point in point.p50Ms.map { (point.seconds, Double($0)) } }),
                .init(
                    name: "p99",
                    points: timeline.compactMap { point in point.p99Ms.map { (point.seconds, Double($0)) } }),
            ])
        return "<div class=\"charts\">" + [overTime, latencyOverTime, throughput, latency].map(\.svg).joined()
            + "</div>"
    }

    static func scalingSection(_ scaling: Scaling) -> String {
        var out = "<h2>Scaling</h2><div class=\"charts\">"
        let curves: [(String, [ScalingPoint], Bool)] = [
            ("devices", scaling.devices, true), ("validators", scaling.validators, false),
            ("readings per block (most)", scaling.blockSize, true),
        ]
        var rows = [["curve", "value", "committed/s", "p50 ms at half", "p99 ms at half"]]
        for (name, points, logX) in curves where !points.isEmpty {
            out +=
                SVGChart(
                    title: "Throughput against \(name)", xLabel: name, yLabel: "committed readings/s",
                    series: [
                        .init(
                            name: "saturated",
                            points: points.map { (Double($0.value), $0.saturated.committedPerSecond) })
                    ],
                    logX: logX
                ).svg
            let halves = points.compactMap { point in point.halfLoad?.latency.map { (Double(point.value), $0) } }
            out +=
                SVGChart(
                    title: "Latency at half load against \(name)", xLabel: name, yLabel: "ms",
                    series: [
                        .init(name: "p50", points: halves.map { ($0.0, Double($0.1.p50Ms)) }),
                        .init(name: "p99", points: halves.map { ($0.0, Double($0.1.p99Ms)) }),
                    ], logX: logX
                ).svg
            for point in points {
                rows.append([
                    name, "\(point.value)", format(point.saturated.committedPerSecond),
                    point.halfLoad?.latency.map { "\($0.p50Ms)" } ?? "-",
                    point.halfLoad?.latency.map { "\($0.p99Ms)" } ?? "-",
                ])
            }
        }
        return out + "</div>" + table(rows, header: true)
    }

    static func memorySection(_ samples: [MemorySample]) -> String {
        let nodes = Array(Set(samples.map(\.node))).sorted()
        let chart = SVGChart(
            title: "Resident memory against chain length", xLabel: "readings in the chain", yLabel: "MiB",
            series: nodes.map { node in
                .init(
                    name: node,
                    points: samples.filter { $0.node == node }.sorted { $0.readings < $1.readings }.map {
                        (Double($0.readings), $0.residentMiB)
                    })
            })
        let disk = SVGChart(
            title: "Database size against chain length", xLabel: "readings in the chain", yLabel: "MiB",
            series: nodes.prefix(2).map { node in
                .init(
                    name: node,
                    points: samples.filter { $0.node == node }.sorted { $0.readings < $1.readings }.map {
                        (Double($0.readings), $0.databaseMiB)
                    })
            })
        return "<h2>Memory per node</h2><div class=\"charts\">" + chart.svg + disk.svg + "</div>"
    }

    static func sizingSection(_ sizing: Sizing) -> String {
        var rows = [
            ["manager CPU per reading", sizing.managerCPUMsPerReading.map { String(format: "%.3f ms", $0) } ?? "-"],
            [
                "validator CPU per reading",
                sizing.validatorCPUMsPerReading.map { String(format: "%.3f ms", $0) } ?? "-",
            ],
            ["disk per reading", sizing.diskBytesPerReading.map { String(format: "%.0f B", $0) } ?? "-"],
            ["manager memory (most)", sizing.managerResidentMiB.map { String(format: "%.0f MiB", $0) } ?? "-"],
            ["validator memory (most)", sizing.validatorResidentMiB.map { String(format: "%.0f MiB", $0) } ?? "-"],
        ]
        let plan = sizing.plan(devices: 10_000, ratePerDevice: 0.1)
        rows.append([
            "plan: 10,000 devices at one reading per 10 s",
            "\(plan.validators) validators × \(plan.validatorCores) cores, \(plan.managers) managers × "
                + "\(plan.managerCores) cores, \(String(format: "%.1f", plan.memoryGiB)) GiB each, "
                + String(format: "%.2f GiB of disk per day", plan.diskGiBPerDay),
        ])
        return "<h2>Sizing</h2>" + table(rows) + "<p>See docs/SIZING.md for the rule.</p>"
    }

    static func comparisonRows(_ results: [BenchResult]) -> [[String]] {
        var rows = [["run"] + results.map(\.startedAt)]
        rows.append(["build"] + results.map { "\($0.machine.build), \($0.machine.cores) cores" })
        rows.append(["shape"] + results.map { "\($0.pipeline.validators)v/\($0.pipeline.managers)m" })
        rows.append(["sustained readings/s"] + results.map { format($0.pipeline.sustainedPerSecond) })
        rows.append(
            ["throughput / signature bound"]
                + results.map { String(format: "%.3f", $0.ratios.throughputToSignatureBound) })
        rows.append(
            ["p50 ms at half load"] + results.map { $0.pipeline.halfLoad?.latency.map { "\($0.p50Ms)" } ?? "-" })
        rows.append(
            ["p99 ms at half load"] + results.map { $0.pipeline.halfLoad?.latency.map { "\($0.p99Ms)" } ?? "-" })
        rows.append(["Ed25519 verify/s, all cores"] + results.map { format($0.bare.ed25519AllCores) })
        rows.append(["QoS 1 messages/s"] + results.map { $0.bare.brokerQoS1PerSecond.map(format) ?? "-" })
        return rows
    }

    static func comparisonTable(_ results: [BenchResult]) -> String { table(comparisonRows(results), header: true) }

    static func table(_ rows: [[String]], header: Bool = false) -> String {
        var out = "<table>"
        for (index, row) in rows.enumerated() {
            let tag = header && index == 0 ? "th" : "td"
            out += "<tr>" + row.map { "<\(tag)>\(HTMLText.escape($0))</\(tag)>" }.joined() + "</tr>"
        }
        return out + "</table>"
    }

    static func format(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }
}
