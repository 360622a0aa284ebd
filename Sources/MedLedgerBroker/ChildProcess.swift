import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A process this one started (a devnet's nodes, a test's tool runs): its output goes to a log
/// file, never a pipe, and it is stopped by PID, with SIGKILL as the last resort.
public final class ChildProcess: Sendable {
    /// The process id.
    public let pid: Int32
    /// Where its standard output and error go.
    public let logPath: String
    /// What was started, for messages.
    public let commandLine: String
    private let status = Mutex<Int32?>(nil)

    /// Starts a program.
    /// - Parameters:
    ///   - executable: the program (a path, or a name looked up on PATH).
    ///   - arguments: its arguments.
    ///   - logPath: the file its output is appended to.
    /// - Throws: `BrokerError.Code.spawnFailed` when it cannot be started.
    public init(_ executable: String, arguments: [String], logPath: String) throws(BrokerError) {
        pid = try Spawner.spawn(executable, arguments: arguments, logPath: logPath)
        self.logPath = logPath
        commandLine = ([executable] + arguments).joined(separator: " ")
    }

    /// The raw wait status once the process has ended (reaping it), nil while it runs.
    public var exitStatus: Int32? {
        status.withLock { status in
            if status == nil, let ended = Spawner.exitStatus(pid) { status = ended }
            return status
        }
    }

    /// Whether the process is still running.
    public var isRunning: Bool { exitStatus == nil }

    /// The exit code when it exited normally (nil while running or when a signal ended it).
    public var exitCode: Int32? {
        guard let status = exitStatus, status & 0x7F == 0 else { return nil }
        return (status >> 8) & 0xFF
    }

    /// Sends a signal (SIGKILL to crash it, SIGTERM to ask it to stop).
    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `grace` for it, then kills it.
    /// - Parameter grace: how long it may take to stop cleanly.
    /// - Returns: whether it stopped on its own.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) async -> Bool {
        guard isRunning else { return true }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if !isRunning { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(pid, SIGKILL)
        let status = Spawner.wait(pid)
        self.status.withLock { $0 = status }
        return false
    }

    /// Waits until the process ends.
    /// - Returns: its exit code (128 + the signal when a signal ended it).
    public func wait() async -> Int32 {
        while isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        let status = exitStatus ?? 0
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}
