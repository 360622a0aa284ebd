import Foundation
import LedgerFixtures
import MedLedgerCore
import MedLedgerStore

/// Measures the three figures the project promised and prints each with a verdict:
/// checking a block costs at most 1.10 times its bare signature checks; all cores check a block
/// at least 1.8 times faster than one; a stored reading costs at most 160 bytes on disk.
///
/// Usage: `ledger-figures [--json FILE] [--rounds N] [--blocks N] [--devices N] [--strict]`.
@main
struct LedgerFigures {
    struct Options {
        var jsonPath: String?
        var rounds = 31
        var blocks = 200
        var devices = 500
        var strict = false
    }

    static func main() throws {
        let options = parseOptions()
        let cores = ProcessorCount.active
        print("ledger-figures: \(cores) cores, \(options.rounds) rounds, \(options.blocks) blocks x 1000 readings")
        var figures: [Figure] = []
        figures += try checkFigures(options: options)
        figures.append(try storageFigure(options: options))
        print("")
        for figure in figures { print(figure.verdictLine) }
        if let path = options.jsonPath {
            let report = Report(cores: cores, cpu: cpuModel(), figures: figures)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: path))
            print("wrote \(path)")
        }
        if options.strict, figures.contains(where: { !$0.pass }) { exit(1) }
    }

    static func parseOptions() -> Options {
        var options = Options()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        func number(_ name: String) -> Int {
            guard let text = arguments.next(), let value = Int(text), value > 0 else {
                usage("\(name) needs a positive number")
            }
            return value
        }
        while let argument = arguments.next() {
            switch argument {
            case "--json":
                guard let path = arguments.next() else { usage("--json needs a file") }
                options.jsonPath = path
            case "--rounds": options.rounds = number(argument)
            case "--blocks": options.blocks = number(argument)
            case "--devices": options.devices = number(argument)
            case "--strict": options.strict = true
            case "-h", "--help": usage(nil)
            default: usage("unknown argument '\(argument)'")
            }
        }
        return options
    }

    static func usage(_ problem: String?) -> Never {
        if let problem { FileHandle.standardError.write(Data("ledger-figures: \(problem)\n".utf8)) }
        print("usage: ledger-figures [--json FILE] [--rounds N] [--blocks N] [--devices N] [--strict]")
        exit(problem == nil ? 0 : 2)
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }
}

/// One promised figure, measured.
struct Figure: Codable {
    var name: String
    var value: Double
    var unit: String
    var target: String
    var pass: Bool
    var details: [String: Double]

    var verdictLine: String {
        let shown = String(format: "%.3f", value)
        return "\(pass ? "PASS" : "MISS")  \(name): \(shown) \(unit) (target \(target))"
    }
}

/// What `--json` writes.
struct Report: Codable {
    var cores: Int
    var cpu: String
    var figures: [Figure]
}
