import Dispatch

/// Runs an actor's jobs on its own serial dispatch queue instead of Swift's cooperative pool.
///
/// A node's work is synchronous and can block (SQLite writes synced to disk before a vote goes
/// out); on its own queue that blocks only the node, never the pool every task in the process
/// shares (several nodes run in one test process).
final class QueueExecutor: SerialExecutor {
    let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
}
