import Foundation
public import Testing

/// Which tests a run takes: `MEDLEDGER_TESTS=fast` (scripts/test.sh --fast) leaves out the tests
/// marked `.network`, for a developer's inner loop; unset, every test runs.
public enum TestKinds {
    /// Whether this run leaves out the network tests (and runs fewer simulation seeds).
    public static let fastOnly = ProcessInfo.processInfo.environment["MEDLEDGER_TESTS"] == "fast"
}

extension Trait where Self == ConditionTrait {
    /// Marks a test or suite that crosses the network or starts processes (a real broker, nodes,
    /// the `medledger` binary): left out of a fast run.
    public static var network: Self {
        .enabled(if: !TestKinds.fastOnly, "a network test: left out of a fast run (MEDLEDGER_TESTS=fast)")
    }
}
