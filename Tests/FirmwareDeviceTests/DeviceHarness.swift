import Foundation
import MedLedgerCore
import MedLedgerTestSupport

/// What went wrong in the test harness itself (a process that would not start, a wait that timed out).
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The repository's root directory.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../..").standardized.path

/// The C reference device, built once per test process with the project's script.
enum CDevice {
    /// The built binary (`MEDLEDGER_DEVICE_BIN` overrides it, e.g. with the sanitizer build).
    static let binary: Result<String, HarnessError> = {
        if let path = ProcessInfo.processInfo.environment["MEDLEDGER_DEVICE_BIN"] { return .success(path) }
        do {
            let scratch = try TemporaryDirectory("build-device")  // ToolRunner leaves its output files there
            defer { scratch.remove() }
            let built = try ToolRunner.run(
                "/bin/bash", ["\(repositoryRoot)/scripts/build-device.sh"], in: scratch.path, timeout: 300)
            guard built.status == 0 else {
                return .failure(HarnessError("scripts/build-device.sh failed:\n\(built.stdout)\n\(built.stderr)"))
            }
        } catch {
            return .failure(HarnessError("cannot run scripts/build-device.sh: \(error)"))
        }
        return .success("\(repositoryRoot)/firmware-sim/c/build/medledger-device")
    }()

    /// The unit-test program the same build makes.
    static var unitTests: String {
        URL(fileURLWithPath: (try? binary.get()) ?? "\(repositoryRoot)/firmware-sim/c/build/medledger-device")
            .deletingLastPathComponent().appendingPathComponent("test-device").path
    }
}

/// A child process with its output in files, stopped by its PID (SIGTERM, then SIGKILL).
final class ChildProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    let name: String

    init(_ executable: String, _ arguments: [String], in directory: String, name: String) throws {
        self.name = name
        stdoutPath = "\(directory)/\(name).out"
        stderrPath = "\(directory)/\(name).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    /// Complete lines written to standard output so far.
    var lines: [String] {
        let text = stdout
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeLast()  // the part after the last newline: empty, or a line still being written
        return lines
    }

    /// The exit status once the process has ended (128 + signal when killed).
    var exitStatus: Int32? { ProcessExit.status(of: process) }

    /// Waits for the process to end by itself.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await eventually("\(name) to exit", timeout: timeout, context: self.report) { self.exitStatus != nil }
        return exitStatus ?? -1
    }

    /// Stops the process: SIGTERM, and SIGKILL if it is still running after `grace`.
    @discardableResult
    func stop(grace: Duration = .seconds(3)) async -> Int32 {
        if exitStatus == nil {
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + grace
            while exitStatus == nil, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        }
        return ProcessExit.wait(process, timeout: .zero)
    }

    /// Output for a failure message.
    var report: String { "--- \(name) stdout:\n\(stdout)--- \(name) stderr:\n\(stderr)" }
}

/// Waits until a condition holds, polling every 10 ms, for `timeout` times `testPatience` (as
/// every wait of the suite: a limit is written for an idle machine); throws naming what it waited
/// for and what it saw.
func eventually(
    _ what: @autoclosure () -> String, timeout: Duration = .seconds(20),
    context: @autoclosure () -> String = "", _ condition: () throws -> Bool
) async throws {
    let limit = timeout * testPatience
    let deadline = ContinuousClock.now + limit
    while try !condition() {
        guard ContinuousClock.now < deadline else {
            // A task starved past the deadline has looked only a few times (and a condition that
            // acts, such as publishing a probe, has acted only a few times): look once more after
            // a moment before failing. (A probe published on the last look arrived, unseen.)
            try await Task.sleep(for: .milliseconds(500))
            if try condition() { return }
            throw HarnessError("timed out after \(limit) waiting for \(what())\n\(context())")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A TCP listener on 127.0.0.1 that never accepts: the kernel completes the handshake, and a
/// client's CONNECT is never answered (a broker that hangs).
final class SilentListener {
    let port: Int
    private let fd: Int32

    init() throws {
        (fd, port) = try boundLoopbackSocket()
        guard listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw HarnessError("listen: \(String(cString: strerror(errno)))")
        }
    }

    func close() { _ = Glibc.close(fd) }
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
func freeLoopbackPort() throws -> Int {
    let (fd, port) = try boundLoopbackSocket()
    close(fd)
    return port
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel chose, and that port.
private func boundLoopbackSocket() throws -> (Int32, Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
        close(fd)
        throw HarnessError("bind: \(String(cString: strerror(errno)))")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else {
        close(fd)
        throw HarnessError("getsockname: \(String(cString: strerror(errno)))")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A Mosquitto broker on a free loopback port, for one test. (A small launcher local to these
/// tests: config and log in files the `mosquitto` user can read and write, since mosquitto
/// started as root drops to that user; stopped by PID.)
final class TestBroker {
    let port: Int
    let directory: String
    let process: ChildProcess

    /// Starts a broker and waits until it listens; the test's clean-up stops it.
    /// - Parameters:
    ///   - setup: the test's directory (config and log go there) and clean-up.
    ///   - extraConfig: lines added to the listener's config (TLS, password file).
    static func start(for setup: DeviceSetup, extraConfig: [String] = []) async throws -> TestBroker {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            do {
                let broker = try await TestBroker(port: port, directory: setup.directory.path, extraConfig: extraConfig)
                setup.running.add(broker.process)
                return broker
            } catch {
                lastError = error  // most likely the port was taken in between: try another
            }
        }
        throw lastError ?? HarnessError("the broker did not start")
    }

    private init(port: Int, directory: String, extraConfig: [String]) async throws {
        self.port = port
        self.directory = directory
        let log = "\(directory)/mosquitto-\(port).log"
        let config = "\(directory)/mosquitto-\(port).conf"
        let lines =
            ["listener \(port) 127.0.0.1"] + extraConfig + [
                "allow_anonymous \(extraConfig.contains { $0.hasPrefix("password_file") } ? "false" : "true")",
                "persistence false",
                "log_dest file \(log)",
                "log_type error", "log_type warning", "log_type notice", "log_type information",
                "max_queued_messages 10000",
            ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: config, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: log, contents: nil, attributes: [.posixPermissions: 0o666])
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        process = try ChildProcess("/usr/sbin/mosquitto", ["-c", config], in: directory, name: "mosquitto-\(port)")
        let process = process
        do {
            try await eventually("mosquitto on port \(port) to run", timeout: .seconds(10), context: process.report) {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if text.contains("Error") || !process.process.isRunning {
                    throw HarnessError("mosquitto on port \(port) failed:\n\(text)\n\(process.report)")
                }
                return text.contains(" running")
            }
        } catch {
            await process.stop(grace: .seconds(1))
            throw error
        }
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Stops the broker (SIGTERM, SIGKILL after 3 s).
    func stop() async { await process.stop() }
}

/// A subscriber (mosquitto_sub, QoS 1) writing every message as `topic hex` to a file.
final class Subscriber {
    let process: ChildProcess
    let port: Int
    let probeTopic: String

    /// Starts the subscriber and waits until its subscription is in place (a probe message
    /// published after it arrives).
    static func start(broker: TestBroker, topics: [String], for setup: DeviceSetup) async throws -> Subscriber {
        let subscriber = try Subscriber(broker: broker, topics: topics, in: setup.directory.path)
        setup.running.add(subscriber.process)
        try await subscriber.waitForProbe()
        return subscriber
    }

    private init(broker: TestBroker, topics: [String], in directory: String) throws {
        port = broker.port
        let id = "sub-\(UUID().uuidString.prefix(8))"
        probeTopic = "probe/\(id)"
        var arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-i", id, "-q", "1", "-F", "%t %x"]
        for topic in topics + [probeTopic] { arguments += ["-t", topic] }
        process = try ChildProcess("/usr/bin/mosquitto_sub", arguments, in: directory, name: id)
    }

    private func waitForProbe() async throws {
        var lastProbe = ContinuousClock.now - .seconds(1)
        try await eventually("the subscriber's probe", timeout: .seconds(10), context: self.process.report) {
            if self.process.lines.contains(where: { $0.hasPrefix(self.probeTopic + " ") }) { return true }
            if ContinuousClock.now - lastProbe > .milliseconds(200) {
                lastProbe = .now
                try MQTTClient.publish(port: self.port, topic: self.probeTopic, payload: Array("probe".utf8))
            }
            return false
        }
    }

    /// Every message received so far, probes left out.
    var messages: [(topic: String, bytes: [UInt8])] {
        process.lines.compactMap { line in
            guard let space = line.firstIndex(of: " ") else { return nil }
            let topic = String(line[..<space])
            guard topic != probeTopic, let bytes = Hex.decode(line[line.index(after: space)...]) else { return nil }
            return (topic, bytes)
        }
    }

    /// The signed readings received so far, decoded (a message that does not decode is an error).
    func readings() throws -> [(topic: String, signed: SignedReading)] {
        try messages.map { ($0.topic, try SignedReading(decoding: $0.bytes)) }
    }

    /// The seq of every reading received so far, in arrival order.
    func seqs() throws -> [UInt64] { try readings().map(\.signed.reading.seq) }

    func stop() async { await process.stop() }
}

/// One-shot MQTT operations with the Mosquitto command-line clients.
enum MQTTClient {
    /// Publishes one message at QoS 1 and waits for `mosquitto_pub` to finish.
    static func publish(
        port: Int, topic: String, payload: [UInt8], clientID: String? = nil,
        credentials: (user: String, password: String)? = nil
    ) throws {
        let directory = try TemporaryDirectory("pub")
        defer { directory.remove() }
        let file = directory.file("payload")
        try Data(payload).write(to: URL(fileURLWithPath: file))
        var arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-q", "1", "-t", topic, "-f", file]
        if let clientID { arguments += ["-i", clientID] }
        if let credentials { arguments += ["-u", credentials.user, "-P", credentials.password] }
        let result = try ToolRunner.run("/usr/bin/mosquitto_pub", arguments, in: directory.path, timeout: 20)
        guard result.status == 0 else {
            throw HarnessError("mosquitto_pub to \(topic) failed (\(result.status)): \(result.stderr)")
        }
    }
}

/// What a test gives the device: a directory, a key, the ids and topics.
struct DeviceSetup {
    let directory: TemporaryDirectory
    let channel: String
    let device: String
    let keyPath: String
    let publicKey: PublicKey
    let publicKeyPath: String
    /// The key of the manager the test answers as (`manager-1`); the device is given its public
    /// key with `--manager-key` unless a test gives keys of its own.
    static let managerKey = try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 0x6D, count: 32))
    var managerKeyPath: String { directory.file("manager-1.pub") }

    /// The device's `--manager-key` options: the keys in `managers/` when a test provisioned the
    /// device with a channel's (`medledger channel manager-keys --out managers`), else manager-1's.
    var managerKeyArguments: [String] {
        let provisioned = directory.file("managers")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: provisioned)) ?? [])
            .filter { $0.hasSuffix(".pub") }.sorted()
        guard !names.isEmpty else { return ["--manager-key", "manager-1=\(managerKeyPath)"] }
        return names.flatMap { ["--manager-key", "\($0.dropLast(4))=\(provisioned)/\($0)"] }
    }
    /// Every process the test started, stopped by `cleanUp()`.
    let running = RunningProcesses()

    var readingsTopic: String { "medledger/v1/\(channel)/readings/\(device)" }
    var receiptsTopic: String { "medledger/v1/\(channel)/receipts/\(device)" }
    var seqPath: String { directory.file("device.seq") }

    /// How a test makes the device's key.
    enum KeySource {
        /// MedLedgerCore's `PrivateKey` in memory, written as PKCS#8 PEM (fast: most tests).
        case library
        /// `medledger keygen --alg ed25519 --out FILE`, as the README tells a user.
        case keygen
        /// `openssl genpkey`: Ed25519 or P-256.
        case openssl
    }

    /// A fresh directory and device id, and a key made the given way.
    static func make(_ algorithm: SignatureAlgorithm = .ed25519, key source: KeySource = .library) throws
        -> DeviceSetup
    {
        let directory = try TemporaryDirectory("cdevice")
        let keyPath = directory.file("device.key")
        let publicKeyPath = directory.file("device.pub")
        switch source {
        case .library:
            let key = PrivateKey(generating: algorithm)
            try key.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
            try key.publicKey.pemRepresentation.write(toFile: publicKeyPath, atomically: true, encoding: .utf8)
        case .keygen:
            let made = try ToolRunner.medledger(
                "keygen", "--alg", algorithm.rawValue, "--out", keyPath, in: directory.path)
            guard made.status == 0 else { throw HarnessError("medledger keygen: \(made.stderr)") }
            try made.stdout.write(toFile: publicKeyPath, atomically: true, encoding: .utf8)
        case .openssl:
            let generate =
                algorithm == .ed25519
                ? ["genpkey", "-algorithm", "ed25519", "-out", keyPath]
                : ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keyPath]
            let made = try ToolRunner.run("/usr/bin/openssl", generate, in: directory.path)
            guard made.status == 0 else { throw HarnessError("openssl genpkey: \(made.stderr)") }
            let pub = try ToolRunner.run(
                "/usr/bin/openssl", ["pkey", "-in", keyPath, "-pubout", "-out", publicKeyPath], in: directory.path)
            guard pub.status == 0 else { throw HarnessError("openssl pkey: \(pub.stderr)") }
        }
        let publicKey = try PublicKey(pem: try String(contentsOfFile: publicKeyPath, encoding: .utf8))
        try managerKey.publicKey.pemRepresentation.write(
            toFile: directory.file("manager-1.pub"), atomically: true, encoding: .utf8)
        return DeviceSetup(
            directory: directory, channel: "ward-7", device: "dev-\(UUID().uuidString.prefix(8).lowercased())",
            keyPath: keyPath, publicKey: publicKey, publicKeyPath: publicKeyPath)
    }

    /// The device's command line for these brokers, plus `extra` options.
    func arguments(brokers: [String], _ extra: [String]) -> [String] {
        brokers.flatMap { ["--broker", $0] }
            + ["--channel", channel, "--device", device, "--key", keyPath, "--seq-file", seqPath]
            + (extra.contains("--manager-key") ? [] : managerKeyArguments) + extra
    }

    /// Starts the device.
    func start(brokers: [String], _ extra: [String], name: String = "device") throws -> DeviceProcess {
        let process = try ChildProcess(
            try CDevice.binary.get(), arguments(brokers: brokers, extra), in: directory.path, name: name)
        running.add(process)
        return DeviceProcess(process: process)
    }

    /// Stops every process the test started and removes the directory.
    func cleanUp() async {
        await running.stopAll()
        directory.remove()
    }

    /// Runs a test body with a fresh setup, and cleans up after it whatever happens.
    static func with(
        _ algorithm: SignatureAlgorithm = .ed25519, key source: KeySource = .library,
        _ body: (DeviceSetup) async throws -> Void
    ) async throws {
        let setup = try make(algorithm, key: source)
        do {
            try await body(setup)
        } catch {
            await setup.cleanUp()
            throw error
        }
        await setup.cleanUp()
    }

    /// A receipt as manager-1 publishes it to the device (final ones signed).
    func published(_ receipt: Receipt) throws -> [UInt8] {
        try receipt.published(topic: receiptsTopic, manager: "manager-1", key: Self.managerKey)
    }

    /// Publishes a receipt to the device, as a manager does.
    func sendReceipt(_ receipt: Receipt, port: Int, credentials: (user: String, password: String)? = nil) throws {
        try MQTTClient.publish(
            port: port, topic: receiptsTopic, payload: try published(receipt), credentials: credentials)
    }

    /// A committed receipt at a made-up height.
    static func committed(_ seq: UInt64, height: UInt64 = 1) -> Receipt {
        Receipt(seq: seq, status: .committed(height: height, blockHash: Hash256.sha256(Array("block \(height)".utf8))))
    }
}

/// The processes one test started.
final class RunningProcesses {
    private(set) var all: [ChildProcess] = []
    func add(_ process: ChildProcess) { all.append(process) }

    /// SIGTERM to all at once, then SIGKILL to any still running after 3 s (mosquitto takes
    /// over a second to stop on SIGTERM; stopping them together keeps the clean-up short).
    func stopAll() async {
        for child in all where child.process.isRunning { kill(child.pid, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(3)
        for child in all {
            while child.process.isRunning, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            await child.stop(grace: .zero)
        }
    }
}

/// The running device and its event lines (`published seq=3`, `broker 127.0.0.1:1883`, ...).
struct DeviceProcess {
    let process: ChildProcess

    var lines: [String] { process.lines }

    /// The lines of one event kind, each as its `key=value` fields (a `reason=` runs to the end).
    func events(_ kind: String) -> [[String: String]] {
        lines.compactMap { Self.parse($0, kind: kind) }
    }

    /// The seqs of one event kind, in order.
    func seqs(_ kind: String) -> [UInt64] { events(kind).compactMap { $0["seq"].flatMap { UInt64($0) } } }

    /// The index of the first line of `kind` whose fields include `fields`, after line `after`.
    func index(of kind: String, _ fields: [String: String] = [:], after: Int = -1) -> Int? {
        lines.indices.first { index in
            index > after
                && Self.parse(lines[index], kind: kind).map { event in
                    fields.allSatisfy { event[$0.key] == $0.value }
                } == true
        }
    }

    static func parse(_ line: String, kind: String) -> [String: String]? {
        guard line == kind || line.hasPrefix(kind + " ") else { return nil }
        var fields: [String: String] = [:]
        var rest = Substring(line.dropFirst(kind.count)).drop { $0 == " " }
        if kind == "broker" || kind == "broker-down" || kind == "broker-lost" {
            let address = rest.prefix { $0 != " " }
            fields["address"] = String(address)
            rest = rest.dropFirst(address.count).drop { $0 == " " }
        }
        while !rest.isEmpty {
            if rest.hasPrefix("reason=") {
                fields["reason"] = String(rest.dropFirst("reason=".count))
                break
            }
            let field = rest.prefix { $0 != " " }
            if let equals = field.firstIndex(of: "=") {
                fields[String(field[..<equals])] = String(field[field.index(after: equals)...])
            }
            rest = rest.dropFirst(field.count).drop { $0 == " " }
        }
        return fields
    }

    /// Waits for an event line.
    func waitFor(_ kind: String, _ fields: [String: String] = [:], after: Int = -1, timeout: Duration = .seconds(20))
        async throws
    {
        try await eventually("device line '\(kind) \(fields)'", timeout: timeout, context: process.report) {
            index(of: kind, fields, after: after) != nil
        }
    }

    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await process.waitForExit(timeout: timeout)
    }

    @discardableResult
    func stop() async -> Int32 { await process.stop() }
}
