internal import Dispatch
public import MedLedgerCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// Checks a batch of signatures on every core: the batch is cut into one contiguous chunk per
/// worker and `DispatchQueue.concurrentPerform` runs the chunks in parallel.
public struct ParallelSignatureVerifier: SignatureVerifier {
    /// How many workers run at once.
    public let workers: Int

    /// Makes a verifier.
    /// - Parameter workers: the parallelism; by default the number of active cores.
    public init(workers: Int? = nil) {
        self.workers = max(1, workers ?? ProcessorCount.active)
    }

    /// Checks each job; the results are in the jobs' order.
    public func verify(_ jobs: [SignatureJob]) -> [Bool] {
        guard workers > 1, jobs.count > 1 else { return jobs.map { $0.run() } }
        let chunks = min(workers, jobs.count)
        var results = [Bool](repeating: false, count: jobs.count)
        results.withUnsafeMutableBufferPointer { buffer in
            let out = UnsafeMutableBufferPointerBox(buffer)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = jobs.count * chunk / chunks
                let end = jobs.count * (chunk + 1) / chunks
                for index in start..<end { out.buffer[index] = jobs[index].run() }
            }
        }
        return results
    }
}

/// Carries the result buffer into the concurrent workers. Safe because every worker writes only
/// its own disjoint index range and `concurrentPerform` returns only after all of them finished.
private struct UnsafeMutableBufferPointerBox: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Bool>
    init(_ buffer: UnsafeMutableBufferPointer<Bool>) { self.buffer = buffer }
}

/// The machine's processor count.
public enum ProcessorCount {
    /// The number of processors the system has online.
    public static var active: Int {
        var count = 0
        #if canImport(Glibc)
            count = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #endif
        return max(1, count)
    }
}
