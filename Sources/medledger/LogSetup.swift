import ArgumentParser
import Logging
import MedLedgerNode

/// How the tool's long-running commands log.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    /// swift-log's text lines on standard error.
    case text
    /// One JSON object a line on standard error: time, level, label, message and the metadata
    /// (channel, node, height, round, ...) as fields.
    case json
}

/// A log level named on the command line.
struct LogLevel: ExpressibleByArgument {
    let level: Logger.Level

    init?(argument: String) {
        guard let level = Logger.Level(rawValue: argument) else { return nil }
        self.level = level
    }

    init(_ level: Logger.Level) { self.level = level }

    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}

enum LogSetup {
    /// Sets the process's log handler once.
    static func bootstrap(format: LogFormat, level: LogLevel) {
        LogBootstrap.bootstrap(json: format == .json, level: level.level)
    }
}
