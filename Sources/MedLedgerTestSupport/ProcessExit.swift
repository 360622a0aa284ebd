public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Waiting for a child process without trusting Foundation alone to notice that it ended.
///
/// swift-corelibs-foundation can miss a child's exit: its `Process` then stays running and
/// `waitUntilExit()` blocks for ever while the child is a zombie (seen in CI: a `make` that had
/// finished, never reaped, hung the whole test run). So these also ask the kernel (`waitpid`
/// with `WNOHANG`), and when they reap the child themselves they keep its status.
public enum ProcessExit {
    private static let reaped = Mutex<[ObjectIdentifier: (pid: Int32, status: Int32)]>([:])

    /// The process's exit status (128 + the signal when a signal ended it), or nil while it runs.
    public static func status(of process: Process) -> Int32? {
        let pid = process.processIdentifier
        let key = ObjectIdentifier(process)
        if let known = reaped.withLock({ $0[key] }), known.pid == pid { return known.status }
        if !process.isRunning {
            return process.terminationReason == .uncaughtSignal
                ? 128 + process.terminationStatus : process.terminationStatus
        }
        guard pid > 0 else { return nil }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else {
            // Running, or Foundation is reaping it now (its `isRunning` follows).
            return nil
        }
        let signal = raw & 0x7f
        let status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        reaped.withLock { $0[key] = (pid, status) }
        return status
    }

    /// Waits until the process ends, killing it (SIGKILL) once `timeout` has passed.
    /// - Returns: its exit status, or 128 + the signal that ended it.
    public static func wait(_ process: Process, timeout: Duration) -> Int32 {
        let deadline = ContinuousClock.now + timeout
        var killed = false
        while true {
            if let status = status(of: process) { return status }
            if !killed, ContinuousClock.now >= deadline {
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
            usleep(5_000)
        }
    }
}
