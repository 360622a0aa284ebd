import ArgumentParser
import Foundation
import Logging
import Synchronization

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
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                switch format {
                case .text: StreamLogHandler.standardError(label: label)
                case .json: JSONLogHandler(label: label)
                }
            handler.logLevel = level.level
            return handler
        }
    }
}

/// Writes each record as one JSON line on standard error.
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    private static let lock = Mutex(())

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata { fields[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { fields[key] = "\(value)" }
        fields["time"] = ISO8601DateFormatter().string(from: Date())
        fields["level"] = event.level.rawValue
        fields["label"] = label
        fields["message"] = "\(event.message)"
        guard var data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        Self.lock.withLock { _ in FileHandle.standardError.write(data) }
    }
}
