import Dispatch

/// Runs CPU-bound synchronous test work off Swift's cooperative pool, on one shared serial queue
/// (one piece at a time), and waits for its result.
///
/// The cooperative pool has one thread per core, and the tests of a run share it: a test that
/// computes for seconds on it holds a whole core's worth of every other test's tasks (the
/// network tests' fleets, clients and waits), and two such tests hold all of it. Work given here
/// runs on that queue's one thread, so all of it together takes at most one core and the rest
/// stays with the run.
/// Record issues from the result, in the test: that thread has no test context.
/// - Parameter body: the work.
/// - Returns: what it returned.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        cpuBoundQueue.async { continuation.resume(returning: body()) }
    }
}

/// A serial queue: its thread is not one of the cooperative pool's nor of Dispatch's global ones.
private let cpuBoundQueue = DispatchQueue(label: "medledger.tests.cpu-bound")
