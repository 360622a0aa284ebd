import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How the node, the tool and the fleet set up swift-log.
public enum LogBootstrap {
    /// Sets the process's log handler once: swift-log's text lines on standard error, or one JSON
    /// object a line (`JSONLogHandler`).
    /// - Parameters:
    ///   - json: JSON lines rather than text.
    ///   - level: the lowest level written.
    public static func bootstrap(json: Bool, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Writes each record as one JSON object on one line of standard error: `time` (RFC 3339, UTC,
/// ms), `level`, `label`, `source`, `message`, and every metadata key (the logger's and the
/// record's, the record's winning) as a string field. Lines from several threads never interleave.
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    /// The logger's metadata.
    public var metadata: Logger.Metadata = [:]
    /// Metadata from the task or thread.
    public var metadataProvider: Logger.MetadataProvider?
    /// The lowest level written.
    public var logLevel: Logger.Level = .info
    private static let lock = Mutex(())

    /// A handler for one logger.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    /// One metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one record.
    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadataProvider?.get() ?? [:] { fields[key] = "\(value)" }
        for (key, value) in metadata { fields[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { fields[key] = "\(value)" }
        fields["time"] = Self.timestamp()
        fields["level"] = event.level.rawValue
        fields["label"] = label
        fields["source"] = event.source
        fields["message"] = "\(event.message)"
        guard var data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        Self.lock.withLock { _ in FileHandle.standardError.write(data) }
    }

    /// Now as `2026-01-31T12:34:56.789Z`.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + "\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
