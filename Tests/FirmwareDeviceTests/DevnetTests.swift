import Foundation
import MedLedgerCore
import MedLedgerNode
import MedLedgerStore
import MedLedgerTestSupport
import Testing

/// `medledger devnet` as a user runs it: real processes (the broker, every node, the devnet
/// itself), and the C reference device, which shares no code with the pipeline, as the device.
@Suite("The devnet with the C reference device", .serialized, .network)
struct DevnetTests {
    /// A running devnet in the setup's directory, and what it wrote.
    struct Devnet {
        let process: ChildProcess
        let directory: String
        let file: DevnetFile

        var broker: String { "\(file.broker.host):\(file.broker.port)" }

        func status(_ id: String) -> NodeStatus? {
            guard let data = FileManager.default.contents(atPath: "\(directory)/nodes/\(id).status.json") else {
                return nil
            }
            return try? JSONDecoder().decode(NodeStatus.self, from: data)
        }

        func height(_ id: String) -> UInt64 { status(id)?.height ?? 0 }

        /// Kills what the devnet started, should the devnet itself not have stopped it.
        func killLeftovers() {
            kill(file.brokerPid, SIGKILL)
            for id in file.nodes.keys { if let pid = status(id)?.pid { kill(pid, SIGKILL) } }
        }
    }

    func startDevnet(_ setup: DeviceSetup) async throws -> Devnet {
        let directory = setup.directory.file("devnet")
        let process = try ChildProcess(
            ToolRunner.medledgerPath,
            ["devnet", "--dir", directory, "--devices", "0", "--channel", setup.channel, "--status-interval", "1"],
            in: setup.directory.path, name: "devnet")
        setup.running.add(process)
        try await eventually("the devnet's nodes", timeout: .seconds(60), context: process.report) {
            process.stdout.contains("devnet.json")
                && (0..<6).allSatisfy { index in
                    let id = index < 4 ? "validator-\(index + 1)" : "manager-\(index - 3)"
                    return FileManager.default.fileExists(atPath: "\(directory)/nodes/\(id).status.json")
                }
        }
        let file = try DevnetFile.load(directory: directory)
        return Devnet(process: process, directory: directory, file: file)
    }

    func register(_ setup: DeviceSetup, on devnet: Devnet) throws {
        try provisionManagerKeys(setup, devnet)
        let result = try ToolRunner.medledger(
            "device", "register", "--devnet", devnet.directory, "--device", setup.device, "--public-key",
            setup.publicKeyPath, "--patient", "patient-7", in: setup.directory.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("committed at height"))
    }

    /// Provisions the device with the devnet's managers' public keys, written by
    /// `medledger channel manager-keys` as an operator would (the harness passes every key in
    /// `managers/` as `--manager-key`).
    func provisionManagerKeys(_ setup: DeviceSetup, _ devnet: Devnet) throws {
        let result = try ToolRunner.medledger(
            "channel", "manager-keys", "--genesis", devnet.file.genesis, "--out", "managers", in: setup.directory.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.split(separator: "\n").count
                == devnet.file.nodes.keys.filter { $0.hasPrefix("manager") }.count)
    }

    /// Runs the device until every reading it makes is committed.
    func runDevice(_ setup: DeviceSetup, _ devnet: Devnet, count: Int, name: String) async throws -> DeviceProcess {
        let device = try setup.start(
            brokers: [devnet.broker],
            ["--count", "\(count)", "--interval-ms", "20", "--exit-when-committed", "--timeout-ms", "90000"],
            name: name)
        let status = try await device.process.waitForExit(timeout: .seconds(100))
        #expect(status == 0, "\(device.process.report)")
        return device
    }

    @Test func theCDevicesReadingsAreCommittedAndVerifyAndTheChainSurvivesCrashedValidators() async throws {
        try await DeviceSetup.with { setup in
            let devnet = try await startDevnet(setup)
            do {
                try await crashesAndRecovery(setup, devnet)
            } catch {
                await devnet.process.stop(grace: .seconds(20))
                devnet.killLeftovers()
                throw error
            }
        }
    }

    func crashesAndRecovery(_ setup: DeviceSetup, _ devnet: Devnet) async throws {
        try register(setup, on: devnet)
        _ = try await runDevice(setup, devnet, count: 10, name: "device-1")

        // One validator crashes (SIGKILL): the chain goes on.
        let fourth = try #require(devnet.status("validator-4"))
        kill(fourth.pid, SIGKILL)
        _ = try await runDevice(setup, devnet, count: 10, name: "device-2")

        // A second one crashes: nothing can be committed. The managers accept the device's readings,
        // and the device sends them again and again, getting no committed receipt.
        let third = try #require(devnet.status("validator-3"))
        kill(third.pid, SIGKILL)
        let device = try setup.start(
            brokers: [devnet.broker],
            [
                "--count", "5", "--interval-ms", "20", "--exit-when-committed", "--timeout-ms", "90000",
                "--resend-ms", "400",
            ],
            name: "device-3")
        try await eventually("two rounds of resending", timeout: .seconds(30), context: device.process.report) {
            device.lines.filter { $0.hasPrefix("accepted seq=") }.count >= 5
                && device.lines.filter { $0.hasPrefix("resent seq=") }.count >= 10
        }
        #expect(!device.lines.contains { $0.hasPrefix("committed") }, "nothing is committed without a quorum")
        let stalled = (1...2).map { devnet.height("validator-\($0)") }.max() ?? 0

        // Restart the third as its own process: it catches up and the chain goes on.
        let restarted = try ChildProcess(
            ToolRunner.medledgerPath, ["node", "--config", devnet.file.nodes["validator-3"]!],
            in: setup.directory.path, name: "validator-3-again")
        setup.running.add(restarted)
        #expect(try await device.process.waitForExit(timeout: .seconds(100)) == 0, "\(device.process.report)")
        try await eventually("validator-3 catches up", timeout: .seconds(30)) {
            devnet.height("validator-3") >= devnet.height("manager-1") && devnet.height("manager-1") > stalled
        }

        // The registrar assigns the device to another patient, by the deployment's form of the
        // command (the broker's URL, the channel, the key): the next readings are that patient's.
        let assigned = try ToolRunner.medledger(
            "device", "assign", "--broker", "mqtt://\(devnet.broker)", "--channel", setup.channel,
            "--registrar-key", devnet.file.registrarKey, "--device", setup.device, "--patient", "patient-8",
            in: setup.directory.path)
        #expect(assigned.status == 0 && assigned.stdout.contains("committed at height"), "\(assigned.stderr)")
        _ = try await runDevice(setup, devnet, count: 5, name: "device-4")

        // Revoked, the device's next reading is refused for it.
        let revoked = try ToolRunner.medledger(
            "device", "revoke", "--devnet", devnet.directory, "--device", setup.device, in: setup.directory.path)
        #expect(revoked.status == 0 && revoked.stdout.contains("committed at height"), "\(revoked.stderr)")
        let refused = try setup.start(
            brokers: [devnet.broker],
            ["--count", "1", "--interval-ms", "20", "--timeout-ms", "30000"],
            name: "device-5")
        try await eventually(
            "the revoked device's reading refused", timeout: .seconds(30), context: refused.process.report
        ) {
            refused.lines.contains {
                $0.hasPrefix("rejected seq=31 signer=manager-") && $0.hasSuffix(" reason=revoked-device")
            }
        }
        await refused.process.stop(grace: .seconds(5))
        await restarted.stop(grace: .seconds(10))

        // Ctrl-C: the devnet stops everything and verifies every replica.
        kill(devnet.process.pid, SIGINT)
        let status = try await devnet.process.waitForExit(timeout: .seconds(60))
        #expect(status == 0, "\(devnet.process.report)")
        #expect(devnet.process.stdout.contains("every replica verifies from genesis"))

        let store = try LedgerStore(path: devnet.file.databases["validator-1"]!)
        let readings = try store.readings(matching: ReadingQuery(device: setup.device))
        #expect(readings.map(\.seq) == Array(1...30))
        #expect(readings.prefix(25).allSatisfy { $0.patient == "patient-7" })
        #expect(readings.suffix(5).allSatisfy { $0.patient == "patient-8" })
        for reading in readings {
            let signed = try SignedReading(decoding: reading.bytes)
            try signed.message.verify(with: setup.publicKey)
        }
    }
}
