import Dispatch

/// Runs an actor's jobs on its own serial dispatch queue instead of Swift's cooperative pool.
///
/// A node's work is synchronous and can block (SQLite writes synced to disk before a vote goes
/// out); on its own queue that blocks only the node, never the pool every task in the process
/// shares (several nodes run in one test process). Its timers and the results of its block checks
/// are delivered on this queue too (`LedgerNode.onQueue`), so a node keeps time even while
/// CPU-bound work elsewhere in its process holds every thread of that pool.
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

    /// Code running on the queue runs on the actor (`assumeIsolated` asks this when no task runs).
    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}
