internal import Foundation

/// A line chart as inline SVG, with axes, ticks and a legend: what the HTML report draws its
/// curves with (no script, no external file).
struct SVGChart {
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
        var dashed = false
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    var logX = false
    var width = 640.0
    var height = 320.0

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]

    var svg: String {
        let left = 70.0
        let right = 20.0
        let top = 34.0
        let bottom = 48.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(HTMLText.escape(title))\">"
        out += "<text x=\"\(left)\" y=\"20\" class=\"title\">\(HTMLText.escape(title))</text>"
        guard !all.isEmpty else {
            out += "<text x=\"\(left)\" y=\"\(top + plotHeight / 2)\">no data</text></svg>"
            return out
        }
        func tx(_ x: Double) -> Double { logX ? log10(x) : x }
        var minX = all.map { tx($0.x) }.min()!
        var maxX = all.map { tx($0.x) }.max()!
        if maxX == minX {
            minX -= 1
            maxX += 1
        }
        let maxY = Self.niceCeiling(all.map(\.y).max()! * 1.05)
        func px(_ x: Double) -> Double { left + (tx(x) - minX) / (maxX - minX) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - y / maxY * plotHeight }
        out += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\" class=\"frame\"/>"
        for index in 0...4 {
            let value = maxY * Double(index) / 4
            let y = py(value)
            out += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + plotWidth)\" y2=\"\(y)\" class=\"grid\"/>"
            out += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(Self.label(value))</text>"
        }
        var xTicks: [Double] = []
        if logX {
            for exponent in Int(minX.rounded(.down))...Int(maxX.rounded(.up)) {
                let value = pow(10, Double(exponent))
                if tx(value) >= minX - 1e-9, tx(value) <= maxX + 1e-9 { xTicks.append(value) }
            }
        } else {
            for index in 0...4 { xTicks.append(minX + (maxX - minX) * Double(index) / 4) }
        }
        for value in xTicks {
            let x = px(value)
            out +=
                "<line x1=\"\(x)\" y1=\"\(top + plotHeight)\" x2=\"\(x)\" y2=\"\(top + plotHeight + 5)\" class=\"axis\"/>"
            out += "<text x=\"\(x)\" y=\"\(top + plotHeight + 18)\" text-anchor=\"middle\">\(Self.label(value))</text>"
        }
        out +=
            "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\">\(HTMLText.escape(xLabel))</text>"
        out +=
            "<text x=\"14\" y=\"\(top + plotHeight / 2)\" text-anchor=\"middle\" "
            + "transform=\"rotate(-90 14 \(top + plotHeight / 2))\">\(HTMLText.escape(yLabel))</text>"
        for (index, line) in series.enumerated() {
            let color = Self.colors[index % Self.colors.count]
            let points = line.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
            let path = points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
            out +=
                "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\""
                + (line.dashed ? " stroke-dasharray=\"6 4\"" : "") + " points=\"\(path)\"/>"
            if points.count <= 40 {
                for point in points {
                    out += String(
                        format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(point.x), py(point.y), color
                    )
                }
            }
            let legendY = top + 14 + Double(index) * 16
            out += "<rect x=\"\(left + 10)\" y=\"\(legendY - 9)\" width=\"12\" height=\"3\" fill=\"\(color)\"/>"
            out += "<text x=\"\(left + 28)\" y=\"\(legendY - 4)\" class=\"legend\">\(HTMLText.escape(line.name))</text>"
        }
        return out + "</svg>"
    }

    /// A round number at or above `value`: 1, 2 or 5 times a power of ten.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, (log10(value)).rounded(.down))
        for step in [1.0, 2, 2.5, 5, 10] where step * power >= value { return step * power }
        return 10 * power
    }

    static func label(_ value: Double) -> String {
        if value >= 10_000 { return String(format: "%.0fk", value / 1000) }
        if value >= 100 || value == value.rounded() { return String(format: "%.0f", value) }
        return String(format: "%.1f", value)
    }
}

/// Escaping for HTML text and attributes.
enum HTMLText {
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}
