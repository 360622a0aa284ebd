internal import Dispatch
public import MedLedgerCore
internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// Checks a batch of signatures on every core. Workers take small chunks of the batch from a
/// shared counter until none is left, so a core that is busy with something else (or slower)
/// holds up the batch by one chunk at most, not by a whole share.
public struct ParallelSignatureVerifier: SignatureVerifier {
    /// How many workers run at once.
    public let workers: Int
    /// How many signatures a worker takes at a time.
    public static let chunkSize = 16

    /// Makes a verifier.
    /// - Parameter workers: the parallelism; by default the number of active cores.
    public init(workers: Int? = nil) {
        self.workers = max(1, workers ?? ProcessorCount.active)
    }

    /// Runs `transform` for every index on every core; the results are in index order.
    public func map<T: Sendable>(count: Int, _ transform: @Sendable (Int) -> T) -> [T] {
        guard workers > 1, count > Self.chunkSize else { return (0..<count).map(transform) }
        let chunkCount = (count + Self.chunkSize - 1) / Self.chunkSize
        let next = Atomic<Int>(0)
        let slots = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        let out = UnsafeMutableBufferPointerBox(slots)
        DispatchQueue.concurrentPerform(iterations: min(workers, chunkCount)) { _ in
            while true {
                let chunk = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard chunk < chunkCount else { return }
                let start = chunk * Self.chunkSize
                for index in start..<min(start + Self.chunkSize, count) {
                    (out.buffer.baseAddress! + index).initialize(to: transform(index))
                }
            }
        }
        defer { slots.deallocate() }
        return (0..<count).map { (slots.baseAddress! + $0).move() }
    }
}

/// Carries the result buffer into the concurrent workers. Safe because every worker initializes
/// only the indexes of the chunks it took (each chunk is taken once) and `concurrentPerform`
/// returns only after all of them finished.
private struct UnsafeMutableBufferPointerBox<T>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<T>
    init(_ buffer: UnsafeMutableBufferPointer<T>) { self.buffer = buffer }
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
