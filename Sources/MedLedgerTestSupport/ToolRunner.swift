public import Foundation
import Synchronization

/// Runs the built `medledger` binary (or any program) as a real process, for end-to-end tests.
public enum ToolRunner {
    /// What a finished process left.
    public struct Result: Sendable {
        /// The exit status (or 128 + signal).
        public var status: Int32
        /// Everything it wrote to standard output.
        public var stdout: String
        /// Everything it wrote to standard error.
        public var stderr: String
    }

    /// The `medledger` executable next to the test bundle (`MEDLEDGER_BIN` overrides it).
    public static var medledgerPath: String {
        if let path = ProcessInfo.processInfo.environment["MEDLEDGER_BIN"] { return path }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("medledger").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        return root.appendingPathComponent(".build/debug/medledger").standardized.path
    }

    /// Starts a process whose output goes to files in `directory`; the caller waits or kills it.
    /// - Parameters:
    ///   - executable: the program's path.
    ///   - arguments: its arguments.
    ///   - directory: where its output files go (and its working directory).
    public static func start(_ executable: String, _ arguments: [String], in directory: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let name = UUID().uuidString.prefix(8)
        let out = "\(directory)/.\(name).out"
        let err = "\(directory)/.\(name).err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardInput = FileHandle.nullDevice
        process.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
        try process.run()
        outputs.withLock { $0[process.processIdentifier] = (out, err) }
        return process
    }

    private static let outputs = Mutex<[Int32: (String, String)]>([:])

    /// Waits for a started process (killing it after `timeout` seconds) and collects its output.
    public static func finish(_ process: Process, timeout: Double = 120) -> Result {
        let status = ProcessExit.wait(process, timeout: .milliseconds(Int(timeout * 1000)))
        let (out, err) = outputs.withLock { $0.removeValue(forKey: process.processIdentifier) } ?? ("", "")
        return Result(
            status: status, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// Runs a program to the end.
    /// - Parameters:
    ///   - executable: the program's path.
    ///   - arguments: its arguments.
    ///   - directory: its working directory.
    ///   - timeout: seconds before it is killed.
    public static func run(_ executable: String, _ arguments: [String], in directory: String, timeout: Double = 120)
        throws -> Result
    {
        finish(try start(executable, arguments, in: directory), timeout: timeout)
    }

    /// Runs `medledger` with arguments to the end.
    public static func medledger(_ arguments: String..., in directory: String) throws -> Result {
        try run(medledgerPath, arguments, in: directory)
    }
}
