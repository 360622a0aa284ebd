import Foundation
import MedLedgerTestSupport
import Testing

/// A Prometheus text exposition, parsed: its samples, and each family's `# HELP` and `# TYPE`.
struct PrometheusText {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []
    var help: [String: String] = [:]
    var types: [String: String] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n").map(String.init) where !line.isEmpty {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw ParseError(line: line) }
                if line.hasPrefix("# HELP ") { help[parts[0]] = parts[1] } else { types[parts[0]] = parts[1] }
                continue
            }
            guard !line.hasPrefix("#") else { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw ParseError(line: line)
            }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let open = series.firstIndex(of: "{") {
                guard series.last == "}" else { throw ParseError(line: line) }
                name = String(series[..<open])
                let body = series[series.index(after: open)..<series.index(before: series.endIndex)]
                // Label values here hold no quotes or commas: split on `",`.
                for pair in body.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2, kv[1].hasPrefix("\""), kv[1].hasSuffix("\"") else {
                        throw ParseError(line: line)
                    }
                    labels[String(kv[0])] = String(kv[1].dropFirst().dropLast())
                }
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        var line: String
        var description: String { "not a Prometheus sample line: \(line)" }
    }

    /// The value of the one sample with this name whose labels include `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
        return matching.count == 1 ? matching[0].value : nil
    }

    /// The family a sample belongs to (a histogram's `_bucket`, `_sum`, `_count` belong to it).
    func family(of sample: Sample) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where sample.name.hasSuffix(suffix) {
            let base = String(sample.name.dropLast(suffix.count))
            if types[base] == "histogram" { return base }
        }
        return sample.name
    }
}

/// Debian's Chromium, headless, as a person's browser would render a page.
enum HeadlessChromium {
    static var path: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs Chromium on a URL with extra arguments (`--dump-dom`, `--screenshot=FILE`) and returns
    /// its standard output. It takes about 2 seconds; the limit is for a machine busy with the
    /// rest of the suite.
    static func run(_ url: String, _ arguments: [String], in directory: TemporaryDirectory) throws -> String {
        let chromium = try #require(path, "Debian's chromium is not installed: run scripts/setup.sh")
        let profile = directory.file("chromium-profile-\(UUID().uuidString.prefix(6))")
        let result = try ToolRunner.run(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--hide-scrollbars", "--user-data-dir=\(profile)",
                // Nothing but the page: no updates, sync or other calls out (there is no network).
                "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                "--disable-sync", "--disable-extensions", "--no-default-browser-check",
                "--disable-features=Translate,MediaRouter,OptimizationHints",
            ] + arguments + [url], in: directory.path, timeout: 90)
        #expect(result.status == 0, "chromium \(arguments): \(result.stderr.suffix(2000))")
        return result.stdout
    }

    /// What a PNG file holds: its size, how many distinct colours it has, and the share of pixels
    /// that differ from its most common colour (decoded with Python's standard library).
    struct PNGSummary: Decodable {
        var width: Int
        var height: Int
        var colors: Int
        var foreground: Double
    }

    static func summarize(png path: String, in directory: TemporaryDirectory) throws -> PNGSummary {
        let script = directory.file("png-summary.py")
        try pngScript.write(toFile: script, atomically: true, encoding: .utf8)
        let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
        let result = try ToolRunner.run("/usr/bin/env", [python, script, path], in: directory.path, timeout: 60)
        #expect(result.status == 0, "png summary: \(result.stderr)")
        return try JSONDecoder().decode(PNGSummary.self, from: Data(result.stdout.utf8))
    }

    /// Decodes a non-interlaced 8-bit PNG (grey, grey+alpha, RGB, RGBA) and summarizes it.
    static let pngScript = #"""
        import json, struct, sys, zlib
        from collections import Counter
        data = open(sys.argv[1], "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        pos, idat, header = 8, b"", None
        while pos < len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            chunk = data[pos + 8:pos + 8 + length]
            if kind == b"IHDR": header = struct.unpack(">IIBBBBB", chunk)
            elif kind == b"IDAT": idat += chunk
            pos += 12 + length
        width, height, depth, color, _, _, interlace = header
        assert depth == 8 and interlace == 0, "unsupported PNG layout"
        bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        raw = zlib.decompress(idat)
        stride = width * bpp
        rows, previous, at = [], bytearray(stride), 0
        for _ in range(height):
            kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
            at += 1 + stride
            if kind == 2:  # Up, the commonest: one pass without branches
                line = bytearray([(x + y) & 255 for x, y in zip(line, previous)])
                kind = 0
            for i in (range(stride) if kind else ()):
                a = line[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                if kind == 1: line[i] = (line[i] + a) & 255
                elif kind == 2: line[i] = (line[i] + b) & 255
                elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            rows.append(bytes(line))
            previous = line
        counts = Counter()
        for row in rows:
            counts.update(row[x:x + bpp] for x in range(0, stride, bpp))
        total = width * height
        print(json.dumps({"width": width, "height": height, "colors": len(counts),
                          "foreground": 1 - counts.most_common(1)[0][1] / total}))
        """#
}
