import Foundation
import Synchronization

/// A failure of a bounded wait.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was waited for.
    public var what: String
    /// `timed out: what`.
    public var description: String { "timed out: \(what)" }

    /// Makes one.
    public init(what: String) { self.what = what }
}

/// How much longer than its stated limit a test waits: 3 unless `MEDLEDGER_TEST_PATIENCE` says
/// otherwise. A limit is written for an idle machine; CI's machine may be twice as slow and share
/// its cores with the rest of the suite, and a wait that ends in time costs nothing more.
public let testPatience: Int = {
    let stated = ProcessInfo.processInfo.environment["MEDLEDGER_TEST_PATIENCE"].flatMap { Int($0) } ?? 3
    return min(max(stated, 1), 100)
}()

/// How long a test waits for the final receipts of the transactions it submits: the
/// submitter's own 60 s, times `testPatience`.
public let transactionWait: Duration = .seconds(60) * testPatience

/// Runs `body`, failing with `TimedOut` after `limit` (times `testPatience`). The body runs in its
/// own task, so even a wait that ignores cancellation cannot hang the test.
/// - Parameters:
///   - limit: the longest wait on an idle machine.
///   - what: what is waited for, for the failure.
///   - body: the work.
public func within<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let limit = limit * testPatience
    let once = Once()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            if once.claim() { continuation.resume(with: result) }
        }
        Task {
            try? await Task.sleep(for: limit)
            if once.claim() {
                work.cancel()
                continuation.resume(throwing: TimedOut(what: "\(what) (waited \(limit))"))
            }
        }
    }
}

/// Polls `condition` every `interval` until it holds, failing with `TimedOut` after `limit`
/// (times `testPatience`):
/// for outcomes that are states of another process or file, which send no event.
/// - Parameters:
///   - limit: the longest wait.
///   - what: what is waited for.
///   - interval: how often to look.
///   - condition: the state waited for.
public func eventually(
    _ limit: Duration, _ what: String, every interval: Duration = .milliseconds(50),
    _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await within(limit, what) {
        while try await !condition() {
            try await Task.sleep(for: interval)
        }
    }
}

/// True for the first caller only.
public final class Once: Sendable {
    private let taken = Mutex(false)

    /// Makes one.
    public init() {}

    /// Whether this is the first call.
    public func claim() -> Bool {
        taken.withLock { taken in
            defer { taken = true }
            return !taken
        }
    }
}
