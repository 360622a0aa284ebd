internal import Dispatch
public import MedLedgerCore
internal import Synchronization

extension LedgerFixture {
    /// A body of readings with consecutive global indexes, signed on every core.
    /// - Parameters:
    ///   - range: the global indexes.
    ///   - workers: how many threads sign.
    public func readingBody(_ range: Range<Int>, workers: Int) -> BlockBody {
        let chunks = max(1, min(workers, range.count))
        let parts = Mutex<[Int: [[UInt8]]]>([:])
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = range.lowerBound + range.count * chunk / chunks
            let end = range.lowerBound + range.count * (chunk + 1) / chunks
            let signed = (start..<end).map(signedReading)
            parts.withLock { $0[chunk] = signed }
        }
        let readings = parts.withLock { parts in (0..<chunks).flatMap { parts[$0] ?? [] } }
        return BlockBody(readings: readings, transactions: [])
    }
}
