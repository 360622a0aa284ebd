import Foundation
public import Logging
import Synchronization

/// A Mosquitto configuration: the text of a `mosquitto.conf`.
public struct MosquittoConfig: Hashable, Sendable {
    /// The configuration text.
    public var text: String

    /// Wraps configuration text.
    public init(text: String) { self.text = text }

    /// Reads a configuration file.
    /// - Throws: `BrokerError` when it cannot be read.
    public init(contentsOf path: String) throws(BrokerError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BrokerError(.invalidConfiguration, "cannot read the broker configuration '\(path)'")
        }
        text = String(decoding: data, as: UTF8.self)
    }

    /// The ports of its `listener` lines, in order.
    public var listenerPorts: [Int] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "listener" else { return nil }
            return Int(words[1])
        }
    }
}

/// A running `mosquitto` process started from a configuration on loopback ports, with its own
/// directory (its rewritten configuration, copies of the files it reads, its persistence and its
/// log). Stop it with `stop()`, or use `withBroker`, which always does.
///
/// The configuration's `listener` ports are replaced by free loopback ports (or by those given),
/// its `persistence_location` by the broker's directory, its log goes to `mosquitto.log` there,
/// and the files it names (certificates, keys, ACL, password file) are copied in and made
/// readable by the `mosquitto` user, which a broker started as root switches to.
public final class MosquittoBroker: Sendable {
    /// The loopback address the listeners bind to.
    public let host: String
    /// The port of the first listener.
    public var port: Int { ports[0] }
    /// The ports of the listeners, in the configuration's order.
    public let ports: [Int]
    /// The configured port of each listener mapped to the port it runs on.
    public let portMap: [Int: Int]
    /// The broker's process id.
    public let pid: Int32
    /// The broker's directory.
    public let directory: String
    /// The broker's log file.
    public var logPath: String { "\(directory)/mosquitto.log" }
    /// The configuration as it was started (ports substituted).
    public let config: MosquittoConfig
    private let original: MosquittoConfig
    private let logger: Logger
    private let stopped = Mutex(false)

    private init(
        host: String, ports: [Int], portMap: [Int: Int], pid: Int32, directory: String, config: MosquittoConfig,
        original: MosquittoConfig, logger: Logger
    ) {
        self.host = host
        self.ports = ports
        self.portMap = portMap
        self.pid = pid
        self.directory = directory
        self.config = config
        self.original = original
        self.logger = logger
    }

    deinit {
        stopNow()
    }

    /// The `mosquitto` program: `$MOSQUITTO` if set, else the first of /usr/sbin/mosquitto,
    /// /usr/local/sbin/mosquitto, /usr/bin/mosquitto that exists.
    public static var executable: String {
        if let path = ProcessInfo.processInfo.environment["MOSQUITTO"], !path.isEmpty { return path }
        for path in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return "mosquitto"
    }

    /// A loopback port that was free a moment ago.
    /// - Throws: `BrokerError.Code.io` when no socket can be bound.
    public static func freePort() throws(BrokerError) -> Int { try FreePort.allocate() }

    /// Starts a broker and waits until every listener accepts connections.
    /// - Parameters:
    ///   - config: the configuration.
    ///   - directory: the broker's directory (made if missing); keep it to restart with the same
    ///     persistence.
    ///   - ports: listener ports to use instead of free ones, keyed by the configured port.
    ///   - timeout: the longest wait for the listeners.
    ///   - logger: where the start and stop are logged.
    /// - Throws: `BrokerError`: `.invalidConfiguration`, `.spawnFailed`, `.exited` (with the
    ///   log), `.timeout`, `.io`.
    public static func start(
        config: MosquittoConfig, in directory: String, ports: [Int: Int] = [:], timeout: Duration = .seconds(15),
        logger: Logger
    ) async throws(BrokerError) -> MosquittoBroker {
        var lastError: BrokerError?
        for _ in 0..<5 {
            do {
                return try await startOnce(
                    config: config, in: directory, ports: ports, timeout: timeout, logger: logger)
            } catch let error
                where error.code == .exited && error.message.contains("Address already in use")
                && ports.isEmpty
            {
                // Another process took a free port between the check and the bind: try new ones.
                lastError = error
                continue
            }
        }
        throw lastError ?? BrokerError(.exited, "the broker could not bind its ports")
    }

    private static func startOnce(
        config: MosquittoConfig, in directory: String, ports fixed: [Int: Int], timeout: Duration, logger: Logger
    ) async throws(BrokerError) -> MosquittoBroker {
        let files = BrokerFiles(directory: directory)
        try files.prepare()
        var portMap: [Int: Int] = [:]
        for configured in config.listenerPorts where portMap[configured] == nil {
            if let port = fixed[configured] {
                portMap[configured] = port
            } else {
                portMap[configured] = try FreePort.allocate()
            }
        }
        guard !portMap.isEmpty else {
            throw BrokerError(.invalidConfiguration, "the configuration has no 'listener PORT' line")
        }
        let rewritten = try ConfigRewriter(files: files, portMap: portMap).rewrite(config.text)
        let configPath = "\(directory)/mosquitto.conf"
        try files.write(rewritten, to: configPath)
        FileLimit.raise(to: 65536)
        let pid = try Spawner.spawn(
            executable, arguments: ["-c", configPath], logPath: "\(directory)/mosquitto.log")
        let ports = config.listenerPorts.map { portMap[$0]! }
        let broker = MosquittoBroker(
            host: "127.0.0.1", ports: ports, portMap: portMap, pid: pid, directory: directory,
            config: MosquittoConfig(text: rewritten), original: config, logger: logger)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pending = Set(ports)
        while !pending.isEmpty {
            if let status = Spawner.exitStatus(pid) {
                broker.stopped.withLock { $0 = true }
                throw BrokerError(
                    .exited, "mosquitto exited (\(status)) before it accepted connections:\n\(broker.logTail())")
            }
            for candidate in pending where FreePort.accepts(host: "127.0.0.1", port: candidate) {
                pending.remove(candidate)
            }
            if pending.isEmpty { break }
            if clock.now >= deadline {
                broker.stopNow()
                throw BrokerError(
                    .timeout,
                    "mosquitto did not accept connections on \(pending.sorted()) within \(timeout):\n"
                        + broker.logTail())
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        logger.debug("mosquitto started", metadata: ["pid": "\(pid)", "ports": "\(ports)", "dir": "\(directory)"])
        return broker
    }

    /// Stops the broker: SIGTERM (it saves its persistence), then SIGKILL after 5 seconds.
    /// Safe to call more than once.
    public func stop() async {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        _ = kill(pid, SIGTERM)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while Spawner.exitStatus(pid) == nil {
            if clock.now >= deadline {
                logger.warning("mosquitto ignored SIGTERM; killing it", metadata: ["pid": "\(pid)"])
                _ = kill(pid, SIGKILL)
                _ = Spawner.wait(pid)
                break
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        logger.debug("mosquitto stopped", metadata: ["pid": "\(pid)"])
    }

    /// Stops without suspending (for deinit and failures): SIGTERM, a short wait, then SIGKILL.
    private func stopNow() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        _ = kill(pid, SIGTERM)
        for _ in 0..<500 {
            if Spawner.exitStatus(pid) != nil { return }
            usleep(10_000)
        }
        _ = kill(pid, SIGKILL)
        _ = Spawner.wait(pid)
    }

    /// Sends SIGKILL at once (to test a crash); the persistence keeps what was last saved.
    public func kill9() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        _ = kill(pid, SIGKILL)
        _ = Spawner.wait(pid)
    }

    /// Whether the process still runs.
    public var isRunning: Bool {
        stopped.withLock { $0 } ? false : Spawner.exitStatus(pid) == nil
    }

    /// Stops the broker if it runs, and starts it again from the same configuration, directory
    /// (so the same persistence) and ports.
    /// - Throws: as `start`.
    public func restart(timeout: Duration = .seconds(15)) async throws(BrokerError) -> MosquittoBroker {
        await stop()
        return try await MosquittoBroker.start(
            config: original, in: directory, ports: portMap, timeout: timeout, logger: logger)
    }

    /// The last lines of the broker's log.
    public func logTail(lines: Int = 40) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "(no log)" }
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// Starts a broker, runs `body` with it, and stops it whatever happens.
/// - Parameters:
///   - config: the configuration.
///   - directory: the broker's directory.
///   - logger: handed to the broker.
///   - body: what to do while it runs.
/// - Throws: what `start` or `body` throws.
public func withBroker<T>(
    config: MosquittoConfig, in directory: String, logger: Logger,
    _ body: (MosquittoBroker) async throws -> T
) async throws -> T {
    let broker = try await MosquittoBroker.start(config: config, in: directory, logger: logger)
    do {
        let result = try await body(broker)
        await broker.stop()
        return result
    } catch {
        await broker.stop()
        throw error
    }
}
