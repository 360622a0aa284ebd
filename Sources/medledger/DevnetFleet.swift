import Foundation
import Logging
import MedLedgerBroker
import MedLedgerCore
import MedLedgerFleet
import MedLedgerMQTT
import MedLedgerNode
import MedLedgerStore

/// The devnet's fleet of simulated devices: made (or reloaded) in DIR/fleet, registered through
/// the channel's registrar, run in this process until the devnet stops, then drained and audited
/// against a manager's replica.
struct DevnetFleet {
    let fleet: Fleet
    let running: Task<FleetReport, any Error>
    /// The database the fleet is audited against, and its first height of this run.
    let auditDatabase: String
    let fromHeight: UInt64

    /// Makes the fleet, registers its devices and starts it.
    static func start(
        _ command: DevnetCommand, directory: String, genesis: Genesis, broker: MosquittoBroker,
        description: DevnetFile
    ) async throws -> DevnetFleet {
        let logger = Logger(label: "medledger.devnet.fleet")
        var options = FleetOptions(
            devices: command.devices, brokers: [MQTTEndpoint(host: broker.host, port: broker.port)], genesis: genesis,
            stateDirectory: "\(directory)/fleet")
        options.rate = command.rate
        options.seed = command.seed
        do {
            options.faults = try FaultPlan(parsing: command.faults)
        } catch {
            throw ToolError("--faults: \(error)")
        }
        // A devnet keeps running until it is stopped: readings in flight then get this long.
        options.drainTime = .seconds(20)
        let fleet: Fleet
        do {
            fleet = try Fleet(options: options, logger: logger)
        } catch {
            throw ToolError("the fleet: \(error)")
        }
        let key = try Files.privateKey(description.registrarKey)
        let summary: Fleet.RegistrationSummary
        do {
            summary = try await fleet.register(registrarID: description.registrarId, registrarKey: key)
        } catch {
            await fleet.shutdown()
            throw ToolError("registering the fleet: \(error)")
        }
        say(
            "devnet: fleet of \(command.devices) devices in \(directory)/fleet (seed \(command.seed)"
                + (command.faults.isEmpty ? "" : ", faults \(command.faults)") + "): \(summary.registered) registered, "
                + "\(summary.alreadyRegistered) already, \(summary.leftUnregistered) left unregistered on purpose")
        // Readings of this run are audited from the height after the ledger's current one.
        let database = description.databases[genesis.managers[0].id] ?? description.anyDatabase ?? ""
        let fromHeight = (try? LedgerStore(path: database).height).map { $0 + 1 } ?? 1
        let running = Task { () throws -> FleetReport in try await fleet.run() }
        return DevnetFleet(fleet: fleet, running: running, auditDatabase: database, fromHeight: fromHeight)
    }

    /// The fleet's part of the status line.
    func statusLine() async -> String { await fleet.stats().statusLine }

    /// Stops publishing and waits for the receipts in flight (the accounting comes with `audit`).
    func stop() async throws {
        await fleet.stop()
        do {
            _ = try await running.value
        } catch {
            throw ToolError("the fleet: \(error)")
        }
    }

    /// The accounting checked against the manager's replica (once the nodes have stopped).
    func audit() async throws -> FleetReport {
        let report: Result<FleetReport, FleetError>
        do {
            report = .success(
                try await fleet.audit(againstDatabase: auditDatabase, fromHeight: fromHeight, timeout: .seconds(5)))
        } catch {
            report = .failure(error)
        }
        await fleet.shutdown()
        do {
            return try report.get()
        } catch {
            throw ToolError("auditing the fleet: \(error)")
        }
    }
}
