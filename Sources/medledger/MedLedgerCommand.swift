import ArgumentParser

/// The `medledger` command-line tool.
@main
struct MedLedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medledger",
        abstract: "A permissioned ledger for medical sensor data over MQTT.",
        subcommands: [
            KeygenCommand.self, ChannelCommand.self, ReadingCommand.self, VerifyCommand.self, SampleChainCommand.self,
            QueryCommand.self, VerifyProofCommand.self, NodeCommand.self, DevnetCommand.self, DeviceCommand.self,
            BrokerCommand.self, BenchCommand.self,
            // Access contracts (docs/CONTRACTS.md).
            ContractCommand.self, ConsentCommand.self, ProfessionalCommand.self, TreatmentCommand.self,
            AccessCommand.self,
        ]
    )
}
