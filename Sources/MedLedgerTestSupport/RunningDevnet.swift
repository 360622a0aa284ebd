public import Foundation

/// `medledger devnet` running as its own process, as a user runs it, for end-to-end tests: started
/// in a test's directory, waited for until every node has written its status file, stopped with
/// SIGINT (the devnet then stops its nodes and verifies every replica), and whatever it left
/// running killed by PID.
public final class RunningDevnet: @unchecked Sendable {
    // @unchecked Sendable: `process` is only started, signalled and waited for by the test's own
    // task; everything else is immutable.
    /// The devnet's directory (DIR/devnet.json, DIR/nodes, DIR/data, DIR/logs).
    public let directory: String
    /// The `medledger devnet` process.
    public let process: Process
    /// The node ids, from DIR/devnet.json.
    public let nodes: [String]
    private let brokerPid: Int32

    private struct Description: Decodable {
        var brokerPid: Int32
        var nodes: [String: String]
    }

    /// A node's status file, as much of it as tests read.
    public struct NodeStatus: Decodable, Sendable {
        /// Its process id.
        public var pid: Int32
        /// Its ledger height.
        public var height: UInt64
    }

    /// Starts `medledger devnet --dir DIR --devices 0` and waits until every node is up.
    /// - Parameters:
    ///   - parent: where DIR is made (DIR is `parent/devnet`; the devnet's output files go in `parent`).
    ///   - channel: the channel id.
    ///   - arguments: more arguments for `medledger devnet`.
    ///   - limit: the longest wait for the nodes.
    /// - Throws: when the devnet exits or its nodes do not start in time.
    public static func start(
        in parent: String, channel: String, arguments: [String] = [], limit: Duration = .seconds(90)
    ) async throws -> RunningDevnet {
        let directory = "\(parent)/devnet"
        let process = try ToolRunner.start(
            ToolRunner.medledgerPath,
            ["devnet", "--dir", directory, "--devices", "0", "--channel", channel, "--status-interval", "1"]
                + arguments, in: parent)
        let box = ProcessBox(process)
        do {
            try await eventually(limit, "the devnet's nodes") {
                guard box.process.isRunning else { throw FixtureError("medledger devnet exited") }
                guard let description = Self.description(directory) else { return false }
                return description.nodes.keys.allSatisfy {
                    FileManager.default.fileExists(atPath: "\(directory)/nodes/\($0).status.json")
                }
            }
        } catch {
            kill(process.processIdentifier, SIGINT)
            let result = ToolRunner.finish(process, timeout: 30)
            if let description = Self.description(directory) { kill(description.brokerPid, SIGKILL) }
            throw FixtureError("the devnet did not start: \(error)\n\(result.stdout)\n\(result.stderr)")
        }
        let description = Self.description(directory)!
        return RunningDevnet(
            directory: directory, process: process, nodes: description.nodes.keys.sorted(),
            brokerPid: description.brokerPid)
    }

    private init(directory: String, process: Process, nodes: [String], brokerPid: Int32) {
        self.directory = directory
        self.process = process
        self.nodes = nodes
        self.brokerPid = brokerPid
    }

    private static func description(_ directory: String) -> Description? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/devnet.json") else { return nil }
        return try? JSONDecoder().decode(Description.self, from: data)
    }

    /// A node's status file, if it has written one.
    public func status(_ id: String) -> NodeStatus? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/nodes/\(id).status.json") else {
            return nil
        }
        return try? JSONDecoder().decode(NodeStatus.self, from: data)
    }

    /// Stops the devnet with SIGINT and waits for it (it stops its nodes and verifies every replica),
    /// then kills anything it left running.
    /// - Returns: what the devnet printed and its exit status.
    public func stop(timeout: Double = 90) -> ToolRunner.Result {
        kill(process.processIdentifier, SIGINT)
        let result = ToolRunner.finish(process, timeout: timeout)
        killLeftovers()
        return result
    }

    /// Kills (SIGKILL) the broker and every node the devnet started, should they still run.
    public func killLeftovers() {
        Self.killIfRunning(brokerPid, "mosquitto")
        for id in nodes { if let pid = status(id)?.pid { Self.killIfRunning(pid, "medledger") } }
    }

    /// Kills a process only while it still runs the program named (a pid can be reused).
    private static func killIfRunning(_ pid: Int32, _ program: String) {
        guard pid > 0, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
            String(decoding: data, as: UTF8.self).contains(program)
        else { return }
        kill(pid, SIGKILL)
    }
}

/// A process handed to a polling closure.
private final class ProcessBox: @unchecked Sendable {
    // @unchecked Sendable: the closure only asks whether the process still runs.
    let process: Process
    init(_ process: Process) { self.process = process }
}
